# cython: language_level=3
"""The lexer's plain-line scan (compiled twin of ``plainscan_py``; see its docstrings).

Reads the characters in place (no per-line slice, strip or split) and builds each token
and line straight into its tuple subclass (one allocation, as ``tuple.__new__`` on a
NamedTuple does in two).  Any line it is unsure of, it leaves to the lexer.

>>> from typing import NamedTuple
>>> class Tok(NamedTuple):
...     text: str
...     file: str
...     line: int
...     col: int
...     quoted: bool = False
>>> class Ln(NamedTuple):
...     tokens: tuple
...     raw: str = ""
>>> lines = []
>>> scan_plain("a b {\\n", 0, 6, "k.conf", 1, lines, [], {}, 100, Tok, Ln)
(7, 3)
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF

cdef extern from "Python.h":
    int PyUnicode_KIND(object u)
    void* PyUnicode_DATA(object u)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index)
    object PyUnicode_Substring(object u, Py_ssize_t start, Py_ssize_t end)
    PyObject* PyDict_SetDefault(object d, object key, object default) except NULL
    object PyType_GenericAlloc(PyTypeObject* t, Py_ssize_t nitems)
    object PyTuple_New(Py_ssize_t n)
    void PyTuple_SET_ITEM(object t, Py_ssize_t i, object v)  # steals v
    PyObject* PyTuple_GET_ITEM(object t, Py_ssize_t i)  # borrowed

__all__ = ["scan_plain"]

cdef str _OPEN = "{"
cdef str _CLOSE = "}"


cdef inline bint _is_ws(Py_UCS4 c) noexcept:
    # keepalived's WHITE_SPACE_STR: " \t\f\n\r\v"
    return c == 32 or (9 <= c <= 13)


cdef inline object _interned(dict words, object s):
    return <object>PyDict_SetDefault(words, s, s)


cdef inline object _token(PyTypeObject* t, object text, object file, object line, object col):
    # A NamedTuple instance filled in place; PyTuple_SET_ITEM steals, hence the INCREFs.
    cdef object tok = PyType_GenericAlloc(t, 5)
    Py_INCREF(text)
    PyTuple_SET_ITEM(tok, 0, text)
    Py_INCREF(file)
    PyTuple_SET_ITEM(tok, 1, file)
    Py_INCREF(line)
    PyTuple_SET_ITEM(tok, 2, line)
    Py_INCREF(col)
    PyTuple_SET_ITEM(tok, 3, col)
    Py_INCREF(False)
    PyTuple_SET_ITEM(tok, 4, False)
    return tok


cdef inline object _line(PyTypeObject* t, tuple tokens, object raw):
    cdef object ln = PyType_GenericAlloc(t, 2)
    Py_INCREF(tokens)
    PyTuple_SET_ITEM(ln, 0, tokens)
    Py_INCREF(raw)
    PyTuple_SET_ITEM(ln, 1, raw)
    return ln


def scan_plain(
    str text,
    Py_ssize_t pos,
    Py_ssize_t end,
    str file,
    object lineno,
    list lines,
    list open_braces,
    dict words,
    Py_ssize_t limit,
    type token_t,
    type line_t,
):
    if not (issubclass(token_t, tuple) and issubclass(line_t, tuple)):
        raise TypeError("token_t and line_t must be tuple subclasses (NamedTuples)")
    cdef PyTypeObject* tt = <PyTypeObject*>token_t
    cdef PyTypeObject* lt = <PyTypeObject*>line_t
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef Py_ssize_t n = len(text)
    cdef Py_ssize_t ln = lineno
    cdef Py_ssize_t nl, b, e, he, i, col, nwords
    cdef Py_UCS4 c, last
    cdef bint opens, ok, prev_space
    cdef object line_obj, head, w, tok
    cdef tuple toks
    if end > n:
        end = n
    while pos <= end:
        if len(lines) >= limit:
            break
        nl = pos
        while nl < end and PyUnicode_READ(kind, data, nl) != 10:
            nl += 1
        b = pos
        while b < nl and _is_ws(PyUnicode_READ(kind, data, b)):
            b += 1
        if b == nl:
            pos = nl + 1
            ln += 1
            continue
        e = nl
        while _is_ws(PyUnicode_READ(kind, data, e - 1)):
            e -= 1
        col = b - pos + 1
        last = PyUnicode_READ(kind, data, e - 1)
        if e - b == 1 and (last == 123 or last == 125):  # '{' '}'
            if last == 123 or not open_braces:
                break
            open_braces.pop()
            tok = _token(tt, _CLOSE, file, ln, col)
            lines.append(_line(lt, (tok,), _CLOSE))
            pos = nl + 1
            ln += 1
            continue
        opens = last == 123 and PyUnicode_READ(kind, data, e - 2) == 32
        he = e - 2 if opens else e
        # printable ASCII, no brace, single blanks, no blank at the end: else the lexer's
        ok = PyUnicode_READ(kind, data, he - 1) != 32
        prev_space = False
        nwords = 1
        i = b
        while ok and i < he:
            c = PyUnicode_READ(kind, data, i)
            if c < 32 or c > 126 or c == 123 or c == 125:
                ok = False
            elif c == 32:
                if prev_space:
                    ok = False
                prev_space = True
                nwords += 1
            else:
                prev_space = False
            i += 1
        if not ok:
            break
        line_obj = ln  # one int per line, shared by its tokens
        head = _interned(words, PyUnicode_Substring(text, b, he))
        toks = _words(text, kind, data, b, he, nwords, head, words, tt, file, line_obj, col)
        lines.append(_line(lt, toks, head))
        if opens:
            tok = _token(tt, _OPEN, file, line_obj, col + (he - b) + 1)
            open_braces.append((tok, <object>PyTuple_GET_ITEM(toks, 0)))
            lines.append(_line(lt, (tok,), _OPEN))
        pos = nl + 1
        ln += 1
    return pos, ln


cdef tuple _words(
    str text, int kind, void* data, Py_ssize_t b, Py_ssize_t he, Py_ssize_t nwords,
    object head, dict words, PyTypeObject* tt, object file, object line, Py_ssize_t col
):
    cdef tuple toks = PyTuple_New(nwords)
    cdef Py_ssize_t i, ws = b, k = 0
    cdef object w, tok
    if nwords == 1:
        tok = _token(tt, head, file, line, col)
        Py_INCREF(tok)
        PyTuple_SET_ITEM(toks, 0, tok)
        return toks
    for i in range(b, he + 1):
        if i == he or PyUnicode_READ(kind, data, i) == 32:
            w = _interned(words, PyUnicode_Substring(text, ws, i))
            tok = _token(tt, w, file, line, col + (ws - b))
            Py_INCREF(tok)
            PyTuple_SET_ITEM(toks, k, tok)
            k += 1
            ws = i + 1
    return toks
