"""A table as cells of text, written as Markdown, booktabs LaTeX and CSV.

Cell conventions shared by every table: ``48.1 ± 0.4`` is our mean ± sample std over seeds (no ± for
one seed); ``not run`` marks a configuration with no finished evaluation run; ``n/a`` a class absent
from ground truth and predictions (IoU undefined); ``-`` a number the paper does not report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

NOT_RUN = "not run"
NA = "n/a"
NOT_REPORTED = "-"
CHECK = "✓"


@dataclass
class Figure:
    """A PNG of a report: its file name and how to draw it."""

    name: str
    draw: Callable[[Path], None]


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt(mean: float | None, std: float | None = None, n: int | None = None, digits: int = 1) -> str:
    """``48.8``, ``48.8 ± 0.4``, ``48.8 ± 0.4 (n=3)``; a NaN mean is ``n/a``."""
    if _missing(mean):
        return NA
    s = f"{mean:.{digits}f}"
    if not _missing(std):
        s += f" ± {std:.{digits}f}"
    if n is not None:
        s += f" (n={n})"
    return s


def fmt_paper(value: float | None) -> str:
    """A number as the paper prints it; ``-`` where it reports none."""
    return NOT_REPORTED if value is None else f"{value:.1f}"


def fmt_delta(ours: float | None, paper: float | None, digits: int = 1) -> str:
    """Ours minus the paper's, signed (``+0.3``, ``-1.2``)."""
    if paper is None:
        return NOT_REPORTED
    if _missing(ours):
        return NA
    d = ours - paper
    s = f"{d:+.{digits}f}"
    return s.replace("-", "+") if float(s) == 0 else s  # never "-0.0"


@dataclass
class Table:
    """One output table: ``<name>.md``, ``<name>.tex`` and (our numbers) ``<name>.csv``."""

    name: str
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    text_columns: int = 1  # leading columns that are text (left-aligned)
    rules: list[int] = field(default_factory=list)  # row indices preceded by a rule (new group)
    data: pd.DataFrame | None = None
    figures: list[str] = field(default_factory=list)  # PNG files drawn from the same numbers

    def __post_init__(self) -> None:
        for r in self.rows:
            if len(r) != len(self.header):
                raise ValueError(f"table {self.name}: row {r[:2]} has {len(r)} cells for {len(self.header)} columns")

    def markdown(self) -> str:
        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        align = [":---" if i < self.text_columns else "---:" for i in range(len(self.header))]
        parts = [f"## {self.title}", "", line(self.header), "|" + "|".join(align) + "|"]
        parts += [line(r) for r in self.rows]
        parts.append("")
        for note in self.notes:
            parts += [note, ""]
        for fig in self.figures:
            parts += [f"![{fig}]({fig})", ""]
        return "\n".join(parts)

    def latex(self) -> str:
        spec = "l" * self.text_columns + "r" * (len(self.header) - self.text_columns)
        out = [
            f"% {latex_escape(self.title)}",
            "% Written by `uplr tables` from MLflow evaluation runs; needs \\usepackage{booktabs,amssymb}.",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(latex_escape(h) for h in self.header) + " \\\\",
            "\\midrule",
        ]
        for i, r in enumerate(self.rows):
            if i in self.rules and i > 0:
                out.append("\\midrule")
            out.append(" & ".join(latex_escape(c) for c in r) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", ""]
        return "\n".join(out)

    def csv(self) -> str:
        data = self.data if self.data is not None else pd.DataFrame()
        return data.to_csv(index=False, float_format="%.4f", lineterminator="\n")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "→": r"$\to$", "Δ": r"$\Delta$", "−": r"$-$", CHECK: r"\checkmark",
                  "*": r"$^*$", "–": "--", "—": "---"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    for k, v in _LATEX_UNICODE.items():
        out = out.replace(k, v)
    return re.sub(r"(?<![\w-])-(?=\d)", r"$-$", out)  # a minus sign, not a hyphen
