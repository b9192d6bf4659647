"""The compiled core's modules: the one list that setup.py, the chooser
(:mod:`hafast._core._select`), tox, ``./dev lint`` and the tests read.

A name ``<name>`` stands for ``<name>_c.pyx`` (+ its ``.pyi`` stub), the pure twin
``<name>_py.py`` and the chooser ``<name>.py``.  Nothing here needs a build or another
module, so setup.py runs this file by path before anything is built or installed.

``python -m hafast._core._modules`` prints the compiled modules' import names, one a
line; ``--stubtest [ARGS]`` runs mypy's stubtest on them (the lint step's check that
every ``.pyi`` says what its ``.so`` holds).

Example::

    >>> MODULES[0], compiled("checksum")
    ('checksum', 'hafast._core.checksum_c')
"""

from __future__ import annotations

MODULES = ("checksum", "vrrp_codec", "icmp_batch", "md5stream", "checkq", "sockset",
           "plainscan", "treefeed", "slotfill")

# The libraries a module links, for setuptools.Extension(libraries=...).
LIBRARIES: dict[str, tuple[str, ...]] = {"md5stream": ("crypto",)}  # OpenSSL EVP


def compiled(name: str) -> str:
    """The import name of ``name``'s compiled module."""
    return f"hafast._core.{name}_c"


def _main(argv: list[str]) -> int:
    import os
    import sys

    names = [compiled(n) for n in MODULES]
    if argv[:1] == ["--stubtest"]:
        # exec, not a child: tox and ./dev see stubtest's own exit status
        os.execv(sys.executable, [sys.executable, "-m", "mypy.stubtest", *argv[1:], *names])
    if argv:
        print("usage: python -m hafast._core._modules [--stubtest [STUBTEST ARGS]]",
              file=sys.stderr)
        return 2
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
