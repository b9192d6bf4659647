# cython: language_level=3, auto_pickle=False
"""A new instance of a slotted class, its slots set from a dict (compiled twin of
``slotfill_py``; see its docstrings): each descriptor's setter is called from C, with
no bytecode step and no bound-method object per slot.

>>> class P:
...     __slots__ = ("x", "y")
>>> fill(P, (P.x, P.y), ("x", "y"), (0, 5), {"y": 2}).y
2
"""

from cpython.object cimport PyObject, PyTypeObject

cdef extern from "Python.h":
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL  # borrowed
    PyObject* PyTuple_GET_ITEM(object t, Py_ssize_t i)  # borrowed
    Py_ssize_t PyTuple_GET_SIZE(object t)
    PyTypeObject* Py_TYPE(object o)

__all__ = ["fill"]


def fill(type cls, tuple descrs, tuple names, tuple defaults, dict values):
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(descrs)
    cdef PyObject* v
    cdef object descr, value
    cdef PyTypeObject* dt
    if PyTuple_GET_SIZE(names) != n or PyTuple_GET_SIZE(defaults) != n:
        raise ValueError("descrs, names and defaults differ in length")
    obj = object.__new__(cls)
    for i in range(n):
        descr = <object>PyTuple_GET_ITEM(descrs, i)
        v = PyDict_GetItemWithError(values, <object>PyTuple_GET_ITEM(names, i))
        if v == NULL:
            value = <object>PyTuple_GET_ITEM(defaults, i)
        else:
            value = <object>v
        dt = Py_TYPE(descr)
        if dt.tp_descr_set == NULL:
            raise TypeError(f"{descr!r} cannot be set")
        dt.tp_descr_set(descr, obj, value)
    return obj
