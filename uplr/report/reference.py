"""The paper's numbers (uplr/report/paper_tables.yaml), loaded and validated.

The file holds the rows of the paper's Tables 1-3 (its own and its peers') and the choices behind the
Cross-City table and Figure 6; our rows (labels, components, Figure 6's S0) are the experiment grid's
(uplr/experiments.py). Everything is checked on load:
a misspelt class, benchmark, row or key is an :class:`~uplr.errors.UplrError` naming the file, the
entry and the valid names, never a silently empty column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from uplr import experiments as X
from uplr.data.labels import CLASSES_19, SUBSETS
from uplr.errors import UplrError

DEFAULT_PATH = Path(__file__).with_name("paper_tables.yaml")

# benchmark name (params.yaml `benchmark`, MLflow tag uplr.benchmark) -> display title (the grid's)
BENCHMARKS: dict[str, str] = {name: b.title for name, b in X.BENCHMARKS.items()}
GROUPS = ("AA", "ST")
STAGE_ROW = re.compile(r"^(?P<row>[a-z_]+)@S(?P<stage>[0-9]+)$")


@dataclass(frozen=True)
class PaperEntry:
    """One row of Table 1 or 2 as printed; ``ours`` is our row reproducing it (the paper's own rows)."""

    method: str
    group: str
    iou: dict[str, float | None]
    miou: dict[str, float | None]
    ours: str | None = None


@dataclass(frozen=True)
class ComparisonSpec:
    """Table 1 or 2: per-class IoU of the peers and the paper beside our rows."""

    key: str
    benchmark: str
    title: str
    classes: tuple[str, ...]
    miou: dict[str, str]  # class subset ("19", "16", ...) -> column label
    entries: tuple[PaperEntry, ...]


@dataclass(frozen=True)
class AblationEntry:
    row: str
    components: tuple[str, ...]
    miou: float | None


@dataclass(frozen=True)
class AblationSpec:
    benchmark: str
    title: str
    components: tuple[str, ...]
    also_for: tuple[str, ...]
    entries: tuple[AblationEntry, ...]


@dataclass(frozen=True)
class CrossCitySpec:
    benchmark: str
    title: str
    cities: tuple[str, ...]
    paper: str


@dataclass(frozen=True)
class Figure6Spec:
    stage0: str
    k: int
    classes: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Reference:
    path: Path
    source: dict[str, str]
    rows: dict[str, str]  # our row tag -> label, in display order
    table1: ComparisonSpec
    table2: ComparisonSpec
    table3: AblationSpec
    cross_city: CrossCitySpec
    figure6: Figure6Spec

    def citation(self) -> str:
        s = self.source
        return f'{s["authors"]}, "{s["title"]}", {s["venue"]}'

    def label(self, row: str) -> str:
        """Display label of one of our rows (the tag itself for rows the file does not name)."""
        return self.rows.get(row) or X.label(row)


class _Checker:
    """Typed access to the parsed YAML with errors that name the file and the entry."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, what: str) -> UplrError:
        return UplrError(f"{self.path}: {where}: {what}. Fix the entry (see the comments at the top of the file).")

    def mapping(self, obj: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(obj, dict):
            raise self.fail(where, f"expected a mapping, got {type(obj).__name__}")
        unknown = sorted(set(map(str, obj)) - set(required) - set(optional))
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)}; valid keys are "
                                   f"{', '.join((*required, *optional))}")
        missing = [k for k in required if k not in obj]
        if missing:
            raise self.fail(where, f"missing key(s) {', '.join(missing)}")
        return {str(k): v for k, v in obj.items()}

    def text(self, obj: Any, where: str) -> str:
        if not isinstance(obj, str) or not obj.strip():
            raise self.fail(where, f"expected a non-empty string, got {obj!r}")
        return obj

    def number(self, obj: Any, where: str, nullable: bool = True) -> float | None:
        if obj is None and nullable:
            return None
        if isinstance(obj, bool) or not isinstance(obj, int | float) or not 0 <= obj <= 100:
            raise self.fail(where, f"expected a percentage in [0, 100]{' or null' if nullable else ''}, got {obj!r}")
        return float(obj)

    def name(self, obj: Any, where: str, valid: tuple[str, ...] | list[str], kind: str) -> str:
        if obj not in valid:
            raise self.fail(where, f"unknown {kind} {obj!r}; valid {kind} names are: {', '.join(valid)}")
        return str(obj)

    def names(self, obj: Any, where: str, valid: tuple[str, ...] | list[str], kind: str) -> tuple[str, ...]:
        if not isinstance(obj, list):
            raise self.fail(where, f"expected a list of {kind} names, got {obj!r}")
        out = tuple(self.name(v, f"{where}[{i}]", valid, kind) for i, v in enumerate(obj))
        if len(set(out)) != len(out):
            raise self.fail(where, f"a {kind} is listed twice")
        return out


def _comparison(c: _Checker, key: str, raw: Any, rows: dict[str, str]) -> ComparisonSpec:
    d = c.mapping(raw, key, ("benchmark", "title", "classes", "miou", "entries"))
    bench = c.name(d["benchmark"], f"{key}.benchmark", tuple(BENCHMARKS), "benchmark")
    classes = c.names(d["classes"], f"{key}.classes", CLASSES_19, "class")
    mious = c.mapping(d["miou"], f"{key}.miou", (), tuple(SUBSETS))
    if not mious:
        raise c.fail(f"{key}.miou", f"name at least one class subset ({', '.join(SUBSETS)})")
    miou_labels = {k: c.text(v, f"{key}.miou.{k}") for k, v in mious.items()}
    if not isinstance(d["entries"], list) or not d["entries"]:
        raise c.fail(f"{key}.entries", "expected a non-empty list of rows")
    entries = []
    for i, e in enumerate(d["entries"]):
        where = f"{key}.entries[{i}]"
        e = c.mapping(e, where, ("method", "group", "miou", "iou"), ("ours",))
        where = f"{where} ({e['method']!r})"
        iou = e["iou"]
        if not isinstance(iou, dict):
            raise c.fail(f"{where}.iou", f"expected a mapping class name -> IoU, got {iou!r}")
        for cls in iou:
            c.name(cls, f"{where}.iou", classes, "class")
        missing = [cls for cls in classes if cls not in iou]
        if missing:
            raise c.fail(f"{where}.iou", f"missing class(es) {', '.join(missing)} (write null for '-')")
        miou = c.mapping(e["miou"], f"{where}.miou", tuple(miou_labels))
        entries.append(PaperEntry(
            method=c.text(e["method"], f"{where}.method"),
            group=c.name(e["group"], f"{where}.group", GROUPS, "group"),
            iou={cls: c.number(iou[cls], f"{where}.iou.{cls}") for cls in classes},
            miou={k: c.number(miou[k], f"{where}.miou.{k}") for k in miou_labels},
            ours=None if e.get("ours") is None else c.name(e["ours"], f"{where}.ours", tuple(rows), "row"),
        ))
    return ComparisonSpec(key, bench, c.text(d["title"], f"{key}.title"), classes, miou_labels, tuple(entries))


def _ablation(c: _Checker, raw: Any, rows: dict[str, str]) -> AblationSpec:
    """Table 3: the paper's mIoU per row; components come from the grid (uplr/experiments.py)."""
    d = c.mapping(raw, "table3", ("benchmark", "title", "entries"), ("also_for",))
    entries = []
    for i, e in enumerate(d["entries"] or []):
        e = c.mapping(e, f"table3.entries[{i}]", ("row", "miou"))
        where = f"table3.entries[{i}] ({e['row']!r})"
        row = c.name(e["row"], f"{where}.row", tuple(rows), "row")
        entries.append(AblationEntry(row=row, components=X.ROWS[row].components, miou=c.number(e["miou"], f"{where}.miou")))
    return AblationSpec(
        benchmark=c.name(d["benchmark"], "table3.benchmark", tuple(BENCHMARKS), "benchmark"),
        title=c.text(d["title"], "table3.title"),
        components=X.TABLE3_COMPONENTS,
        also_for=c.names(d.get("also_for") or [], "table3.also_for", tuple(BENCHMARKS), "benchmark"),
        entries=tuple(entries),
    )


def _cross_city(c: _Checker, raw: Any) -> CrossCitySpec:
    from uplr.data.datasets import NTHU_CITIES

    d = c.mapping(raw, "cross_city", ("benchmark", "title", "cities", "paper"))
    return CrossCitySpec(
        benchmark=c.name(d["benchmark"], "cross_city.benchmark", tuple(BENCHMARKS), "benchmark"),
        title=c.text(d["title"], "cross_city.title"),
        cities=c.names(d["cities"], "cross_city.cities", NTHU_CITIES, "city"),
        paper=c.text(d["paper"], "cross_city.paper"),
    )


def _figure6(c: _Checker, raw: Any, rows: dict[str, str]) -> Figure6Spec:
    d = c.mapping(raw, "figure6", ("k",), ("classes",))
    k = d["k"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(CLASSES_19):
        raise c.fail("figure6.k", f"expected a whole number of classes in 1..{len(CLASSES_19)}, got {k!r}")
    per_bench = c.mapping(d.get("classes") or {}, "figure6.classes", (), tuple(BENCHMARKS))
    return Figure6Spec(
        stage0=X.FIGURE6_STAGE0,
        k=k,
        classes={b: c.names(v, f"figure6.classes.{b}", CLASSES_19, "class") for b, v in per_bench.items()},
    )


def load_reference(path: str | Path | None = None) -> Reference:
    """Read and validate the reference file (default: uplr/report/paper_tables.yaml)."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UplrError(f"{path}: cannot read the paper's reference numbers ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise UplrError(f"{path}: not valid YAML ({exc})") from exc
    c = _Checker(path)
    top = c.mapping(raw, "top level", ("source", "table1", "table2", "table3", "cross_city", "figure6"))
    source = c.mapping(top["source"], "source", ("title", "authors", "venue", "transcribed_from"))
    # the grid's Table 3 rows and the oracle, in display order (variants: their own table)
    rows = {r.id: r.label for r in X.ROWS.values() if r.table in ("table3", "")}
    return Reference(
        path=path,
        source={k: c.text(v, f"source.{k}") for k, v in source.items()},
        rows=rows,
        table1=_comparison(c, "table1", top["table1"], rows),
        table2=_comparison(c, "table2", top["table2"], rows),
        table3=_ablation(c, top["table3"], rows),
        cross_city=_cross_city(c, top["cross_city"]),
        figure6=_figure6(c, top["figure6"], rows),
    )
