# cython: language_level=3, auto_pickle=False
"""The config loader's statement tree (compiled twin of ``treefeed_py``; see its
docstrings).

The same loop over the same tuples, with the lexer's two brace lines and the plain
statement read without a bytecode step, and each :class:`Node` made without an
``__init__`` call: at 37,000 real servers that is 160,000 nodes from 235,000 lines.

>>> tok = lambda w: (w, "k.conf", 1, 1, False)
>>> stack = [[]]
>>> level = feed([((tok("a"),), "a"), ((tok("{"),), "{"), ((tok("}"),), "}")],
...              stack, [], stack[0], print)
>>> stack[0][0].children, stack[0][0].close[0]
([], '}')
"""

from cpython.object cimport PyObject

cdef extern from "Python.h":
    PyObject* PyTuple_GET_ITEM(object t, Py_ssize_t i)  # borrowed
    Py_ssize_t PyTuple_GET_SIZE(object t)
    bint PyTuple_Check(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object u)
    Py_UCS4 PyUnicode_READ_CHAR(object u, Py_ssize_t i)
    bint PyUnicode_Check(object o)

__all__ = ["Node", "feed"]


cdef class Node:
    """One statement: its words, and its ``{ }`` children when it opened a block."""

    cdef public object toks
    cdef public object raw
    cdef public object children
    cdef public object close

    def __init__(self, toks, raw=""):
        self.toks = toks
        self.raw = raw
        self.children = None
        self.close = None


cdef inline Node _node(object toks, object raw):
    cdef Node n = Node.__new__(Node)  # children and close start as None
    n.toks = toks
    n.raw = raw
    return n


cdef inline Py_UCS4 _brace(object text):
    # '{' or '}' when text is that one character, else 0
    if PyUnicode_Check(text) and PyUnicode_GET_LENGTH(text) == 1:
        c = PyUnicode_READ_CHAR(text, 0)
        if c == 123 or c == 125:
            return c
    return 0


cdef inline object _item(object t, Py_ssize_t i):
    if not PyTuple_Check(t) or PyTuple_GET_SIZE(t) <= i:
        raise TypeError("lines are (tokens, raw) and tokens (text, file, line, col, quoted)")
    return <object>PyTuple_GET_ITEM(t, i)


def feed(lines, list stack, list openers, list level, report):
    cdef object line, toks, first, t
    cdef Py_UCS4 b0, bt
    cdef Py_ssize_t n
    cdef Node opener
    cdef list cur
    for line in lines:
        toks = _item(line, 0)
        n = PyTuple_GET_SIZE(toks) if PyTuple_Check(toks) else 0
        first = _item(toks, 0)
        b0 = _brace(_item(first, 0))
        if b0 == 125 and n == 1 and not _item(first, 4) and len(stack) > 1:
            (<Node?>openers.pop()).close = first
            stack.pop()
            level = stack[len(stack) - 1]
            continue
        if b0 == 123 and n == 1 and not _item(first, 4) and level:
            opener = level[len(level) - 1]
            if opener.children is None:
                level = []
                opener.children = level
                openers.append(opener)
                stack.append(level)
                continue
        if b0 == 0 and _brace(_item(_item(toks, n - 1), 0)) == 0:
            level.append(_node(toks, _item(line, 1)))
            continue
        cur = []
        for t in toks:
            bt = _brace(_item(t, 0))
            if _item(t, 4) or bt == 0:
                cur.append(t)
                continue
            if cur:
                level.append(_node(tuple(cur), ""))
                cur = []
            if bt == 123:
                # keepalived allows the "{" on the line after its keyword
                if not level or (<Node?>level[len(level) - 1]).children is not None:
                    report(t, "'{' without a keyword before it")
                    opener = _node((t,), "")
                    level.append(opener)
                else:
                    opener = level[len(level) - 1]
                opener.children = []
                openers.append(opener)
                level = opener.children
                stack.append(level)
            elif len(stack) == 1:
                report(t, "'}' does not close any block")
            else:
                (<Node?>openers.pop()).close = t
                stack.pop()
                level = stack[len(stack) - 1]
        if cur:
            level.append(_node(tuple(cur), ""))
    return level
