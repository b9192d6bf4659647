"""What a section hands the report: rows of per-round values, side by side.

A :class:`Row` is one figure of one case (``TCP_CHECK 1000`` / ``checks/s``) with
hafast's value and each anchor's value for every round, aligned by round index
(``None`` where a peer did not run that round).  The report summarises each list
(:func:`~benchmarks.suite.stats.summarize`) and pairs them per round for the ratio
(:func:`~benchmarks.suite.stats.paired_ratio`).  Everything is plain data, so a
run is saved as ``results.json`` and a report can be rebuilt from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Values = list[float | None]


@dataclass
class Row:
    case: str
    metric: str
    unit: str
    better: str = "higher"  # or "lower": which way the ratio hafast/anchor is good
    hafast: Values = field(default_factory=list)
    anchors: dict[str, Values] = field(default_factory=dict)
    group: str = ""  # plot series (checker kind) ...
    n: int = 0  # ... and x (real servers)
    note: str = ""

    def add(self, round_index: int, who: str, value: float | None) -> None:
        """Record ``value`` for ``who`` ("hafast" or an anchor) in round ``round_index``."""
        values = self.hafast if who == "hafast" else self.anchors.setdefault(who, [])
        while len(values) <= round_index:
            values.append(None)
        values[round_index] = value


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # raw samples for distribution plots: {plot title: {who: [values]}}
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    seconds: float = 0.0
    status: str = "measured"  # or "not measured" (notes say why), "failed"
    sample_label: str = ""  # x axis of the samples' plot
    # tables already written (figures that are not per-round numbers: the reliability
    # section's counts and verdicts); shown instead of the rows' table
    markdown: str = ""

    def row(self, case: str, metric: str, unit: str, better: str = "higher", *,
            group: str = "", n: int = 0) -> Row:
        """The row for (case, metric), made on first use."""
        for r in self.rows:
            if r.case == case and r.metric == metric:
                return r
        r = Row(case, metric, unit, better, group=group, n=n)
        self.rows.append(r)
        return r

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Section:
        rows = [Row(**r) for r in d.get("rows", [])]
        return cls(d["name"], d["title"], rows, list(d.get("notes", [])),
                   dict(d.get("samples", {})), float(d.get("seconds", 0.0)),
                   str(d.get("status", "measured")), str(d.get("sample_label", "")),
                   str(d.get("markdown", "")))
