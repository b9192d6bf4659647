"""report.md and PNG plots from a run's sections.

One table per section: each figure of each case with hafast's median (spread),
each anchor's, and hafast / anchor paired per round.  ``↑`` marks a figure where
higher is better (a ratio above 1 favours hafast), ``↓`` one where lower is better
(a ratio below 1 favours hafast).  Figures measured with no anchor (the hot-path
benchmarks' own figures) follow in a second table.  Plots: throughput and CPU per
1000 checks against the number of real servers, and the detection latency
distributions (cumulative).

Example::

    text = build_report(sections, meta)              # pure: tested with canned data
    write_report(out_dir, sections, meta)            # report.md + *.png + results.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite.model import Row, Section
from benchmarks.suite.stats import Summary, fmt_summary, paired_ratio, summarize

ARROW = {"higher": "↑", "lower": "↓"}
# metrics that make the headline table, per section ("" = every anchored row)
HEADLINE: dict[str, tuple[str, ...]] = {
    "checks": ("CPU per 1000 checks",),
    "detection": ("p50 latency", "p99 latency"),
    "keepalived": ("CPU per 1000 checks", "p50 latency", "p99 latency"),
    "vrrp": ("",),
    "config": ("",),
    "hotpaths": ("",),
}


def ratio_of(row: Row, anchor: str) -> Summary:
    return paired_ratio([_f(v) for v in row.hafast], [_f(v) for v in row.anchors[anchor]])


def _f(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _label(row: Row) -> str:
    metric = row.metric or ""
    unit = f" ({row.unit})" if row.unit else ""
    arrow = ARROW.get(row.better, "")
    return f"{metric}{unit} {arrow}".strip()


def section_table(sec: Section) -> str:
    """The markdown for one section (its comparison table, then other figures)."""
    out: list[str] = []
    anchored = [r for r in sec.rows if r.anchors]
    plain = [r for r in sec.rows if not r.anchors]
    if anchored:
        out.append("| case | figure | hafast | anchor | anchor's figure | hafast / anchor |")
        out.append("|---|---|---|---|---|---|")
        for r in anchored:
            ours = fmt_summary(summarize(v for v in r.hafast if v is not None))
            for name, values in r.anchors.items():
                theirs = fmt_summary(summarize(v for v in values if v is not None))
                ratio = ratio_of(r, name)
                shown = fmt_summary(ratio) + "x" if ratio.n else "—"
                out.append(f"| {r.case} | {_label(r)} | {ours} | {name} | {theirs} | {shown} |")
    if plain:
        if anchored:
            out.append("")
            out.append("Figures with no anchor column (measured side by side inside the "
                       "benchmark that records them, or hafast alone):")
            out.append("")
        out.append("| case | figure | value | note |")
        out.append("|---|---|---|---|")
        for r in plain:
            ours = fmt_summary(summarize(v for v in r.hafast if v is not None))
            out.append(f"| {r.case} | {_label(r)} | {ours} | {r.note} |")
    if not sec.rows:
        out.append("_Not measured._")
    return "\n".join(out)


def headline_rows(sections: Sequence[Section]) -> list[tuple[str, Row, str, Summary]]:
    rows = []
    for sec in sections:
        wanted = HEADLINE.get(sec.name, ("",))
        for r in sec.rows:
            if not any(w == "" or r.metric == w for w in wanted):
                continue
            for anchor in r.anchors:
                ratio = ratio_of(r, anchor)
                if ratio.n:
                    rows.append((sec.title, r, anchor, ratio))
    return rows


def build_report(sections: Sequence[Section], meta: dict[str, Any],
                 plots: dict[str, list[str]] | None = None) -> str:
    """The whole report.md text."""
    plots = plots or {}
    lines = ["# hafast benchmark report", ""]
    lines.append(f"- command: `{meta.get('command', '')}`")
    lines.append(f"- started: {meta.get('started', '')} UTC; wall time "
                 f"{meta.get('wall_seconds', 0.0):.0f} s; mode {meta.get('mode', '')}; "
                 f"rounds {meta.get('rounds', '')}")
    lines.append(f"- machine: {meta.get('machine', '')}")
    lines.append("")
    lines.append(
        "Every figure is the median of its rounds with the spread in brackets (min–max "
        "below four rounds, the interquartile range from four). A ratio is hafast / "
        "anchor computed per round from the two figures measured side by side in that "
        "round, then summarised the same way. ↑: higher is better (a ratio above 1 "
        "favours hafast); ↓: lower is better (a ratio below 1 favours hafast). "
        "These machines are noisy and shared: read the spreads.")
    if meta.get("note"):
        lines += ["", f"**Note:** {meta['note']}"]
    heads = headline_rows(sections)
    if heads:
        lines += ["", "## Headline ratios", "",
                  "| section | case | figure | vs | hafast / anchor |", "|---|---|---|---|---|"]
        for title, r, anchor, ratio in heads:
            lines.append(f"| {title} | {r.case} | {_label(r)} | {anchor} | "
                         f"{fmt_summary(ratio)}x |")
    for k, sec in enumerate(sections, 1):
        lines += ["", f"## {k}. {sec.title}", ""]
        status = sec.status if sec.status != "measured" else f"measured in {sec.seconds:.0f} s"
        lines.append(f"_{status}_")
        lines.append("")
        for note in sec.notes:
            lines.append(f"- {note}")
        if sec.notes:
            lines.append("")
        lines.append(sec.markdown or section_table(sec))
        for png in plots.get(sec.name, []):
            lines += ["", f"![{png}]({png})"]
    return "\n".join(lines) + "\n"


# -- plots ---------------------------------------------------------------------------------


def _series(sec: Section, metric: str) -> dict[str, dict[str, list[tuple[int, Summary]]]]:
    """{kind: {who: [(n, summary), ...]}} for one metric of the checks section."""
    out: dict[str, dict[str, list[tuple[int, Summary]]]] = {}
    for r in sec.rows:
        if r.metric != metric or not r.group:
            continue
        whos = {"hafast": r.hafast, **r.anchors}
        for who, values in whos.items():
            s = summarize(v for v in values if v is not None)
            if s.n:
                out.setdefault(r.group, {}).setdefault(who, []).append((r.n, s))
    return out


def plot_checks(sec: Section, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for metric, fname, ylabel in (("checks/s", "checks_throughput.png", "checks/s"),
                                  ("CPU per 1000 checks", "checks_cpu.png",
                                   "CPU ms per 1000 checks"),
                                  ("whole RSS / real servers", "checks_rss.png",
                                   "KiB RSS per real server")):
        series = _series(sec, metric)
        if not series:
            continue
        fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 4), squeeze=False)
        for ax, (kind, whos) in zip(axes[0], sorted(series.items()), strict=False):
            for who, points in sorted(whos.items()):
                points.sort()
                xs = [p[0] for p in points]
                ys = [p[1].median for p in points]
                lo = [max(p[1].median - p[1].low, 0) for p in points]
                hi = [max(p[1].high - p[1].median, 0) for p in points]
                ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=who)
            ax.set_title(kind)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("real servers")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=90)
        plt.close(fig)
        made.append(fname)
    return made


def plot_samples(sec: Section, out: Path) -> list[str]:
    """Cumulative distribution of each sample set (detection latencies)."""
    if not sec.samples:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sec.samples), figsize=(5 * len(sec.samples), 4),
                             squeeze=False)
    for ax, (title, whos) in zip(axes[0], sorted(sec.samples.items()), strict=False):
        drawn = False
        for who, values in sorted(whos.items()):
            vals = sorted(v for v in values if math.isfinite(v))
            if not vals:
                continue
            ys = [(i + 1) / len(vals) for i in range(len(vals))]
            ax.step(vals, ys, where="post", label=f"{who} (n={len(vals)})")
            drawn = True
        ax.set_title(title)
        ax.set_xlabel(sec.sample_label or "ms")
        ax.set_ylabel("fraction of samples")
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fname = f"{sec.name}_latency.png"
    fig.savefig(out / fname, dpi=90)
    plt.close(fig)
    return [fname]


def write_report(out: Path, sections: Sequence[Section], meta: dict[str, Any],
                 *, plots: bool = True) -> Path:
    """Write results.json, the PNGs and report.md into ``out``; return report.md's path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(
        {"meta": meta, "sections": [s.as_dict() for s in sections]}, indent=1) + "\n")
    made: dict[str, list[str]] = {}
    if plots:
        try:
            for sec in sections:
                pngs = (plot_checks(sec, out) if sec.name == "checks" else []) + plot_samples(
                    sec, out)
                if pngs:
                    made[sec.name] = pngs
        except ImportError:
            meta = dict(meta, note=(meta.get("note", "") + " matplotlib is not installed: "
                                    "no plots (pip install matplotlib).").strip())
    path = out / "report.md"
    path.write_text(build_report(sections, meta, made))
    return path


def load_results(path: Path) -> tuple[list[Section], dict[str, Any]]:
    """Sections and meta back from a results.json (to rebuild a report)."""
    data = json.loads(path.read_text())
    return [Section.from_dict(s) for s in data["sections"]], dict(data["meta"])
