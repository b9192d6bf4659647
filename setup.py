"""Build the Cython hot paths under hafast/_core.

Each compiled module ``<name>_c`` has a pure-Python twin ``<name>_py``; the
chooser ``hafast/_core/<name>.py`` picks one at import time.  Set
HAFAST_DEBUG_BUILD=1 for bounds checks and line tracing in the extensions.
"""

import os
import runpy

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("HAFAST_DEBUG_BUILD") == "1"

# The module list lives in hafast/_core/_modules.py.  It is run by path, not imported:
# importing hafast here would need the package (and its dependencies) before the build,
# and a PEP 517 backend does not put the source tree on sys.path.
_core = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "hafast", "_core", "_modules.py"))

# HAFAST_BUILD_ONLY=checksum_c,vrrp_codec_c builds a subset (developer convenience
# while a module is being written); a normal install builds all of them.
_only = {n for n in os.environ.get("HAFAST_BUILD_ONLY", "").split(",") if n}

extensions = [
    Extension(
        f"hafast._core.{name}_c",
        [f"hafast/_core/{name}_c.pyx"],
        extra_compile_args=["-O2"] if not DEBUG else ["-O0", "-g"],
        libraries=list(_core["LIBRARIES"].get(name, ())),
    )
    for name in _core["MODULES"]
    if not _only or f"{name}_c" in _only
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
