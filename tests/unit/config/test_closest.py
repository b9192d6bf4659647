"""The "did you mean" keyword: walk._closest's pruned search against the two
difflib.get_close_matches passes it replaced (issue 17), word for word."""

from __future__ import annotations

import difflib
import random

from hafast.config.grammar import TABLE
from hafast.config.walk import _closest


def _reference(ctx: str, word: str) -> str | None:
    """What _closest answered before: a 0.6 pass, then a 0.0 pass when it found none."""
    names = list(TABLE[ctx])
    best = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not best:
        best = difflib.get_close_matches(word, names, n=1, cutoff=0.0)
    return best[0] if best else None


def _words(rng: random.Random, n: int) -> list[str]:
    keywords = sorted({k for rows in TABLE.values() for k in rows})
    alphabet = "abcdefghijklmnopqrstuvwxyz_-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZé{}\""
    out = ["", "a", "_", "x" * 250, "real_server" * 30, "priority", "prio", "vrrp"]
    while len(out) < n:
        pick = rng.random()
        if pick < 0.4:  # a typo of a keyword: the usual case
            w = list(rng.choice(keywords))
            for _ in range(rng.randint(1, 3)):
                op, i = rng.random(), rng.randrange(len(w) + 1)
                if op < 0.3 and i < len(w):
                    del w[i]
                elif op < 0.6:
                    w.insert(i, rng.choice(alphabet))
                elif i + 1 < len(w):
                    w[i], w[i + 1] = w[i + 1], w[i]
            out.append("".join(w))
        elif pick < 0.6:  # two keywords run together, or a piece of one
            a, b = rng.choice(keywords), rng.choice(keywords)
            out.append(a[: rng.randint(0, len(a))] + b[rng.randint(0, len(b)):])
        else:  # noise, short and long
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    return out


def test_closest_matches_get_close_matches() -> None:
    rng = random.Random(17)
    contexts = sorted(TABLE)
    words = _words(rng, 3000)
    for i, word in enumerate(words):
        # every context for the fixed words, a few random ones for the rest
        ctxs = contexts if i < 8 else rng.sample(contexts, 3)
        for ctx in ctxs:
            assert _closest(ctx, word, len(TABLE[ctx])) == _reference(ctx, word), (ctx, word)
