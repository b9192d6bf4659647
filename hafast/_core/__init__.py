"""Hot paths, each as a compiled Cython module ``<name>_c`` and a pure-Python twin
``<name>_py`` with the same names.  Import the chooser ``hafast._core.<name>``; it
takes the compiled module when it loads and the twin otherwise (or always, when
HAFAST_NO_EXTENSIONS=1).
"""
