"""Lexer alone on the issue-3 config shape (37,000 real servers), plain and in the
shapes that leave the fast path: a comment on every line, a parameter on every real
server, the same farm written as one ~SEQ line.  CPU time (the machine is shared);
reported with ``figures``, never asserted.

The goal belongs to lexer + loader together (<= 1.0 s, benchmarks/test_bench_config.py);
the lexer's share should stay well under half of it.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.test_bench_config import make_big_config


def _variants() -> dict[str, str]:
    plain = make_big_config()
    commented = "\n".join(line + "  # note" if line.strip() else line for line in plain.split("\n"))
    params = "$W=1\n" + plain.replace("weight 1", "weight $W")
    seq = (
        "global_defs {\n    router_id bench\n}\nvirtual_server 10.0.0.1 80 {\n"
        "~SEQ(A, 0, 147) ~SEQ(B, 1, 250) real_server 172.16.$A.$B 80 "
        "{ weight 1 TCP_CHECK { connect_timeout 3 } }\n}\n"
    )
    return {"plain": plain, "comment on every line": commented, "parameters": params, "~SEQ": seq}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("lexbench")
    out = {}
    for i, (name, text) in enumerate(_variants().items()):
        path = d / f"v{i}.conf"
        path.write_text(text)
        out[name] = path
    return out


def test_bench_lexer(files: dict[str, Path], figures: Any) -> None:
    from hafast.config.lexer import read_config

    for name, path in files.items():
        best = float("inf")
        lines = 0
        for _ in range(2):
            t0 = time.process_time()
            res = read_config(path)
            best = min(best, time.process_time() - t0)
            lines = len(res.lines)
            assert not res.diagnostics
            del res
            gc.collect()
        figures.add(f"config lexer CPU time, 37k real servers, {name}", best, "s", lines=lines)
