"""The keepalived-compatibility table (``docs/compat.md``), made from the grammar.

Every keyword hafast reads, per block, with what hafast does with it:

- **works**: honoured as keepalived documents it;
- **warned**: accepted, ``hafast -t`` warns that it has no effect (leaving it out
  cannot change a failover, a check, a pool or an alert);
- **refused**: ``hafast -t`` reports an error and the config is not used;
- **covered**: a row inside a block that is itself warned or refused;
- **extension**: a hafast keyword keepalived does not know.

The table is generated so it cannot drift from the code: ``tests/unit/config/
test_compat_doc.py`` compares ``docs/compat.md`` and the README's table with them
(rewrite both with ``python -m hafast.config.compat --write``).
"""

from __future__ import annotations

from collections import Counter

from hafast.config.grammar import EXTENSIONS, TABLE, Keyword

_TITLES = {
    "top": "Top level (outside any block)",
}


def _parents() -> dict[str, list[Keyword]]:
    parents: dict[str, list[Keyword]] = {}
    for rows in TABLE.values():
        for kw in rows.values():
            if kw.child is not None and kw.child != kw.context:
                parents.setdefault(kw.child, []).append(kw)
    return parents


def status(kw: Keyword, parents: dict[str, list[Keyword]] | None = None) -> tuple[str, str]:
    """(status, note) of one grammar row."""
    parents = _parents() if parents is None else parents
    if (kw.context, kw.name) in EXTENSIONS:
        return "extension", EXTENSIONS[(kw.context, kw.name)]
    if kw.gap is not None:
        return ("refused" if kw.gap.refuse else "warned"), kw.gap.why
    above = parents.get(kw.context, [])
    if above and all(p.gap is not None for p in above):
        return "covered", f"inside {above[0].name}, which is {status(above[0], parents)[0]}"
    return "works", kw.deprecated


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    parents = _parents()
    counts: Counter[str] = Counter()
    sections: list[str] = []
    for context in TABLE:
        rows = TABLE[context]
        out = [f"### {_TITLES.get(context, f'`{context}`')}", "",
               "| keyword | hafast | note |", "|---|---|---|"]
        for name in sorted(rows):
            st, note = status(rows[name], parents)
            counts[st] += 1
            out.append(f"| `{name}` | {st} | {_cell(note)} |")
        sections.append("\n".join(out))
    summary = ", ".join(f"{counts[k]} {k}" for k in
                        ("works", "warned", "refused", "covered", "extension") if counts[k])
    head = f"""# keepalived compatibility

Generated from `hafast/config/grammar.py` and `hafast/config/support.py` by
`python -m hafast.config.compat --write`; do not edit by hand (the test suite fails when this
file and the code disagree).

Every keyword of keepalived's configuration grammar that hafast reads, per block:

- **works**: honoured as keepalived documents it;
- **warned**: accepted, and `hafast -t` warns that it has no effect in hafast (leaving it
  out cannot change a failover, a check, a pool or an alert);
- **refused**: `hafast -t` reports an error and the configuration is not used, because
  running without it would change what the configuration does;
- **covered**: a keyword inside a block that is itself warned or refused;
- **extension**: a hafast keyword that keepalived does not know.

`hafast -t --json` lists the same diagnostics for tooling (`"code": "unsupported"`).

Rows: {summary}.
"""
    return head + "\n" + "\n\n".join(sections) + "\n"


def render_unsupported() -> str:
    """The README's one table of what hafast does not do: the refused and warned
    keywords, grouped by reason (refusals first)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for rows in TABLE.values():
        for kw in rows.values():
            if kw.gap is not None:
                names = groups.setdefault((kw.gap.level, kw.gap.why), [])
                if kw.name not in names:
                    names.append(kw.name)
    out = ["| hafast -t | keywords | what keepalived does that hafast does not |",
           "|---|---|---|"]
    for (level, why), names in sorted(groups.items(), key=lambda g: (g[0][0] != "refuse",
                                                                      sorted(g[1])[0])):
        words = ", ".join(f"`{n}`" for n in sorted(names))
        verdict = "error" if level == "refuse" else "warning"
        out.append(f"| {verdict} | {words} | {_cell(why)} |")
    return "\n".join(out) + "\n"


README_BEGIN, README_END = "<!-- unsupported:begin -->\n", "<!-- unsupported:end -->"


def write(repo: str) -> None:
    """Rewrite docs/compat.md and the README's table in the checkout at ``repo``."""
    from pathlib import Path

    root = Path(repo)
    (root / "docs" / "compat.md").write_text(render())
    readme = root / "README.md"
    text = readme.read_text()
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(head + README_BEGIN + render_unsupported() + README_END + tail)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:  # python -m hafast.config.compat --write [REPO]
        write(sys.argv[2] if len(sys.argv) > 2 else ".")
    else:
        sys.stdout.write(render())
