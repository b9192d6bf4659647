"""Build the Cython hot paths under hafast/_core.

Each compiled module ``<name>_c`` has a pure-Python twin ``<name>_py``; the
chooser ``hafast/_core/<name>.py`` picks one at import time.  Set
HAFAST_DEBUG_BUILD=1 for bounds checks and line tracing in the extensions.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("HAFAST_DEBUG_BUILD") == "1"

# name -> extra Extension keyword arguments
CORE_MODULES: dict[str, dict[str, list[str]]] = {
    "checksum_c": {},
    "vrrp_codec_c": {},
    "icmp_batch_c": {},
    "md5stream_c": {"libraries": ["crypto"]},
    "checkq_c": {},
    "sockset_c": {},
}

# HAFAST_BUILD_ONLY=checksum_c,vrrp_codec_c builds a subset (developer convenience
# while a module is being written); a normal install builds all of them.
_only = {n for n in os.environ.get("HAFAST_BUILD_ONLY", "").split(",") if n}

extensions = [
    Extension(
        f"hafast._core.{name}",
        [f"hafast/_core/{name}.pyx"],
        extra_compile_args=["-O2"] if not DEBUG else ["-O0", "-g"],
        **kwargs,
    )
    for name, kwargs in CORE_MODULES.items()
    if not _only or name in _only
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
