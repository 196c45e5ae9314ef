"""``make tables``: rebuild reports/ from MLflow alone, the paper's numbers beside ours.

Our numbers come only from MLflow evaluation runs (uplr/report/runs.py), as mean ± sample std over
seeds with n; the paper's from uplr/report/paper_tables.yaml (uplr/report/reference.py). Written per
table: Markdown, booktabs LaTeX and CSV (our numbers with std, n, seeds and the MLflow run ids), plus
PNG figures and an index ``README.md``. The output is deterministic for a given set of runs (sorted,
no timestamps), so rebuilding it changes nothing unless the runs changed.

Tables: 1 (GTA5 → Cityscapes) and 2 (SYNTHIA → Cityscapes) with the peers' rows, our rows tgaa
("Ours (AA)") and upst ("Ours (ST)") and the delta to the paper; 3 (the ablation) for GTA5 and the
embedded benchmark; Cross-City (per-city mIoU over the 13 NTHU classes); the embedded benchmark's
per-class table; Figure 6 (IoU of infrequent classes over TGAA's stages, rows ``tgaa@S<k>``).

Longer than 400 lines because every table shares the cell and note conventions defined at its top; the
Markdown/LaTeX/CSV writing itself is in render.py and the figures in figures.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from uplr import experiments as X
from uplr.data.labels import CLASSES_19, SUBSETS
from uplr.io import sweep_stale, write_text
from uplr.report import figures
from uplr.report.reference import (
    BENCHMARKS,
    STAGE_ROW,
    AblationSpec,
    ComparisonSpec,
    CrossCitySpec,
    Reference,
    load_reference,
)
from uplr.report.render import CHECK, NOT_RUN, Figure, Table, fmt, fmt_delta, fmt_paper
from uplr.report.runs import MIOU_COLUMNS, aggregate, class_pixel_fraction, evaluation_runs
from uplr.report.stats import PairedDelta, fmt_paired, paired_t_interval

log = logging.getLogger(__name__)

VALUE_COLUMNS = [*CLASSES_19, *MIOU_COLUMNS]
MIOU19 = "miou/19"
EMBEDDED = "embedded"
# files whose number depends on the runs (one per benchmark with data); stale ones are removed
_VARIABLE_PREFIXES = ("figure6_", "table3_", "pseudo_quality_", "variants_")

CONVENTIONS = (
    "Cells: `mean ± std` is our mean over seeds with the sample standard deviation (n-1; no ± for one "
    "seed), n the number of seeds; `not run` = no finished evaluation run of that configuration in "
    "MLflow; `n/a` = class absent from ground truth and predictions (IoU undefined); `-` = not reported "
    "by the paper. When a configuration and seed was evaluated more than once, the newest run counts."
)


class Results:
    """Our aggregated numbers, looked up by (benchmark, row, city)."""

    def __init__(self, runs: pd.DataFrame):
        self.runs = runs
        self.agg = aggregate(runs, VALUE_COLUMNS) if not runs.empty else pd.DataFrame(
            columns=["benchmark", "row", "city", "n"])
        self._index = {(r["benchmark"], r["row"], r["city"]): r for _, r in self.agg.iterrows()}

    def get(self, benchmark: str, row: str, city: str = "") -> pd.Series | None:
        return self._index.get((benchmark, row, city))

    def per_seed(self, benchmark: str, row: str, column: str, city: str = "") -> dict[int, float]:
        """One value per seed (the newest run of each seed) of ``row``."""
        if self.runs.empty:
            return {}
        g = self.runs[(self.runs["benchmark"] == benchmark) & (self.runs["row"] == row) & (self.runs["city"] == city)]
        return {int(s): float(v) for s, v in zip(g["seed"], g[column], strict=True)} if column in g else {}

    def paired(self, benchmark: str, row: str, parent: str | None, column: str = "miou/19") -> PairedDelta:
        """The paired difference ``row`` − ``parent`` over their common seeds."""
        if parent is None:
            return PairedDelta(np.nan, np.nan, np.nan, 0)
        return paired_t_interval(self.per_seed(benchmark, row, column), self.per_seed(benchmark, parent, column))

    def rows_of(self, benchmark: str) -> list[str]:
        return sorted({r for b, r, _ in self._index if b == benchmark})

    def cities_of(self, benchmark: str) -> list[str]:
        return sorted({c for b, _, c in self._index if b == benchmark})

    def benchmarks(self) -> list[str]:
        return sorted({b for b, _, _ in self._index})


# ----------------------------------------------------------------------------------------------------
# shared pieces


def _ours(r: pd.Series | None, cols: list[str]) -> list[str]:
    if r is None:
        return [NOT_RUN] * len(cols)
    return [fmt(r[c], r[f"{c}_std"]) for c in cols]


def _n(r: pd.Series | None) -> str:
    return "0" if r is None else str(int(r["n"]))


def _record(r: pd.Series | None, cols: list[str], **keys: object) -> dict:
    """One CSV row of our numbers: mean, std and non-NaN count per column, with seeds and run ids."""
    rec: dict = {**keys, "status": NOT_RUN if r is None else "ok", "n": 0 if r is None else int(r["n"]),
                 "seeds": "" if r is None else r["seeds"], "run_ids": "" if r is None else r["run_ids"],
                 "checkpoints": "" if r is None else r["checkpoints"]}
    for c in cols:
        rec[c] = np.nan if r is None else r[c]
        rec[f"{c}_std"] = np.nan if r is None else r[f"{c}_std"]
        rec[f"{c}_n"] = 0 if r is None else int(r[f"{c}_n"])
    return rec


def _snapshots(found: list[pd.Series | None]) -> str:
    names = sorted({c for r in found if r is not None for c in str(r["checkpoints"]).split(",") if c})
    return f" Snapshot scored: {', '.join(names)}." if names else ""


def _extra_rows(res: Results, ref: Reference, benchmark: str) -> list[str]:
    """Rows with runs that the reference file does not name (shown after the named ones)."""
    return [r for r in res.rows_of(benchmark) if r not in ref.rows and not STAGE_ROW.match(r)]


# ----------------------------------------------------------------------------------------------------
# Tables 1 and 2


def comparison_table(spec: ComparisonSpec, res: Results, ref: Reference) -> Table:
    """The paper's Table 1 or 2, our row under the paper's own, then the delta ours − paper."""
    miou_cols = [f"miou/{k}" for k in spec.miou]
    cols = [*spec.classes, *miou_cols]
    header = ["Group", "Method", *spec.classes, *spec.miou.values(), "n"]
    rows: list[list[str]] = []
    rules: list[int] = []
    records, found = [], []
    group = None
    for e in spec.entries:
        if e.group != group:
            rules.append(len(rows))
            group = e.group
        paper = [e.iou[c] for c in spec.classes] + [e.miou[k] for k in spec.miou]
        rows.append([e.group, e.method if e.ours is None else f"{e.method}, paper", *map(fmt_paper, paper), "paper"])
        if e.ours is None:
            continue
        r = res.get(spec.benchmark, e.ours)
        found.append(r)
        rows.append([e.group, f"{e.method}, ours (row {e.ours})", *_ours(r, cols), _n(r)])
        deltas = [NOT_RUN] * len(cols) if r is None else [fmt_delta(r[c], p) for c, p in zip(cols, paper, strict=True)]
        rows.append([e.group, f"{e.method}, Δ ours − paper", *deltas, _n(r)])
        rec = _record(r, cols, benchmark=spec.benchmark, method=e.method, row=e.ours)
        for c, p in zip(cols, paper, strict=True):
            rec[f"{c}_paper"] = np.nan if p is None else p
            rec[f"{c}_delta"] = np.nan if r is None or p is None else r[c] - p
        records.append(rec)
    number = spec.title.split(".")[0]
    ours_rows = ", ".join(f"{e.method} = row `{e.ours}`" for e in spec.entries if e.ours)
    notes = [
        f"Paper rows (AA = adversarial adaptation, ST = self-training): as printed in {ref.citation()}, "
        f"{number}; peers' numbers are the paper's quotes (single runs), transcribed in "
        "uplr/report/paper_tables.yaml.",
        f"Ours: MLflow evaluation runs of benchmark `{spec.benchmark}` ({ours_rows}; the paper's AA result is "
        f"after TGAA, its ST result after UPST); every mIoU is the mean of the run's per-class IoU over the "
        f"subset, then averaged over seeds.{_snapshots(found)} Run ids: {spec.key}_{spec.benchmark}.csv. "
        "Δ = our mean − the paper's number.",
        CONVENTIONS,
    ]
    return Table(f"{spec.key}_{spec.benchmark}", spec.title, header, rows, notes, text_columns=2, rules=rules,
                 data=pd.DataFrame(records))


# ----------------------------------------------------------------------------------------------------
# Table 3


def ablation_table(spec: AblationSpec, benchmark: str, res: Results, ref: Reference) -> tuple[Table, Figure | None]:
    """The ablation rows with their components; the paper's mIoU and Δ only on the paper's benchmark."""
    paper_applies = benchmark == spec.benchmark
    header = ["Method", *spec.components, "mIoU (ours)", "n", "Δ to the row above (paired, 95% CI)",
              "mIoU (paper)", *(["Δ ours − paper"] if paper_applies else [])]
    rows, records, found = [], [], []
    for e in spec.entries:
        r = res.get(benchmark, e.row)
        found.append(r)
        checks = [CHECK if c in e.components else "" for c in spec.components]
        ours = _ours(r, [MIOU19])[0]
        parent = X.ROWS[e.row].parent if e.row in X.ROWS else None
        step = res.paired(benchmark, e.row, parent)
        if paper_applies:
            tail = [fmt_paper(e.miou), NOT_RUN if r is None else fmt_delta(r[MIOU19], e.miou)]
        else:
            tail = ["different benchmark"]
        rows.append([ref.label(e.row), *checks, ours, _n(r), "" if parent is None else fmt_paired(step), *tail])
        rec = _record(r, [MIOU19], benchmark=benchmark, method=ref.label(e.row), row=e.row)
        rec.update({"parent": parent or "", "delta_parent_mean": step.mean, "delta_parent_low": step.low,
                    "delta_parent_high": step.high, "delta_parent_n": step.n, "delta_parent_shown": step.shown})
        if paper_applies:
            rec[f"{MIOU19}_paper"] = np.nan if e.miou is None else e.miou
            rec[f"{MIOU19}_delta"] = np.nan if r is None or e.miou is None else r[MIOU19] - e.miou
        records.append(rec)
    title = spec.title if paper_applies else \
        f"Ablation (the rows of Table 3) on the {BENCHMARKS[benchmark]}: mIoU over 19 classes (%)"
    name = f"table3_{benchmark}"
    notes = [
        f"Ours: MLflow evaluation runs of benchmark `{benchmark}`; mIoU = mean of the run's per-class IoU over "
        f"the 19 classes, then mean ± std over seeds.{_snapshots(found)} Run ids: {name}.csv.",
        "Δ to the row above: the mean over seeds of (this row − the row above, same seed) with its 95% "
        "t-interval; `not shown` when the interval spans 0 (the seeds do not show a gain or a loss). +TGAA "
        "continues the +SR model and +UPST the +TGAA model (uplr/experiments.py), so their Δ includes "
        "the extra steps: the variants table holds the controls that train as long without the component.",
        (f"Paper: {ref.citation()}, Table 3 (one run each). Δ = our mean − the paper's number."
         if paper_applies else
         f"The paper's Table 3 is measured on {BENCHMARKS[spec.benchmark]}; this is a different benchmark, "
         "so no paper number applies and no delta is shown."),
        CONVENTIONS,
    ]
    fig = None
    if any(r is not None for r in found):
        fig = Figure(f"{name}.png", lambda target: figures.ablation_bars(
            target, title, [ref.label(e.row) for e in spec.entries],
            [(np.nan, np.nan) if r is None else (r[MIOU19], r[f"{MIOU19}_std"]) for r in found],
            [e.miou for e in spec.entries] if paper_applies else None))
    table = Table(name, title, header, rows, notes, text_columns=1 + len(spec.components),
                  data=pd.DataFrame(records), figures=[fig.name] if fig else [])
    return table, fig


def variants_table(benchmark: str, res: Results) -> Table:
    """The controls and variants of the grid, each against the Table 3 row it is an alternative to."""
    col = "Δ this − compared row (paired, 95% CI)"
    header = ["Variant", "compared with", "mIoU (ours)", "n", col, "Δ to its parent (paired, 95% CI)"]
    rows, records = [], []
    for rid in X.table_rows("variants"):
        spec = X.ROWS[rid]
        r = res.get(benchmark, rid)
        versus = res.paired(benchmark, rid, spec.versus)
        parent = res.paired(benchmark, rid, spec.parent)
        rows.append([spec.label, X.label(spec.versus or ""), _ours(r, [MIOU19])[0], _n(r), fmt_paired(versus),
                     fmt_paired(parent)])
        rec = _record(r, [MIOU19], benchmark=benchmark, method=spec.label, row=rid)
        rec.update({"versus": spec.versus, "delta_versus_mean": versus.mean, "delta_versus_low": versus.low,
                    "delta_versus_high": versus.high, "delta_versus_n": versus.n, "parent": spec.parent,
                    "delta_parent_mean": parent.mean, "delta_parent_low": parent.low,
                    "delta_parent_high": parent.high, "delta_parent_n": parent.n})
        records.append(rec)
    name = f"variants_{benchmark}"
    notes = [
        f"MLflow evaluation runs of benchmark `{benchmark}`; mIoU over 19 classes, mean ± std over seeds. Each "
        "Δ is the mean over seeds of the per-seed difference with its 95% t-interval; `not shown` when it "
        "spans 0. Rows are defined in uplr/experiments.py (`make variants`).",
        "Controls: `+SR, continued` trains the +SR model as many steps as +TGAA adds, without S_k, so "
        "`+TGAA − it` is what S_k gives at equal steps; `+TGAA, continued` likewise for +UPST's pseudo labels. "
        "`+UPST, <baseline> pseudo labels` self-trains on a threshold, BDL or CBST selection instead of the GMM.",
        CONVENTIONS,
    ]
    title = f"Variants and controls, {BENCHMARKS[benchmark]}: mIoU over 19 classes (%)"
    return Table(name, title, header, rows, notes, text_columns=2, data=pd.DataFrame(records))


# ----------------------------------------------------------------------------------------------------
# Cross-City


def _canonical_city(city: str, known: tuple[str, ...]) -> str:
    return next((k for k in known if k.lower() == city.lower()), city)


def cross_city_table(spec: CrossCitySpec, res: Results, ref: Reference) -> Table:
    """Rows = our configurations, columns = the cities' mIoU over the 13 NTHU classes; no paper numbers."""
    col = "miou/nthu13"
    nthu = [CLASSES_19[i] for i in SUBSETS["nthu13"]]
    by_city = {_canonical_city(c, spec.cities): c for c in res.cities_of(spec.benchmark) if c}
    if "" in res.cities_of(spec.benchmark):
        log.warning("evaluation runs of %s without a uplr.city tag are left out of the Cross-City table",
                    spec.benchmark)
    cities = [*spec.cities, *sorted(c for c in by_city if c not in spec.cities)]
    rows, records = [], []
    for tag in [*ref.rows, *_extra_rows(res, ref, spec.benchmark)]:
        cells = []
        for city in cities:
            r = res.get(spec.benchmark, tag, by_city[city]) if city in by_city else None
            cells.append(NOT_RUN if r is None else fmt(r[col], r[f"{col}_std"], int(r["n"])))
            records.append(_record(r, [col, *nthu], benchmark=spec.benchmark, method=ref.label(tag), row=tag,
                                   city=city))
        rows.append([ref.label(tag), *cells, spec.paper])
    name = f"crosscity_{spec.benchmark}"
    notes = [
        f"Ours: MLflow evaluation runs of benchmark `{spec.benchmark}`, one column per city (tag uplr.city); "
        "mIoU = mean of the run's per-class IoU over the 13 NTHU classes (road, sidewalk, building, light, "
        "sign, vegetation, sky, person, rider, car, bus, motorcycle, bicycle), then mean ± std over seeds "
        f"(n = seeds per cell). Per-class means and run ids: {name}.csv.",
        f"Paper: the paper evaluates on the Cross-City dataset, but our source, {ref.source['transcribed_from']}, "
        "prints no Cross-City numbers, so there is nothing to compare with.",
        CONVENTIONS,
    ]
    return Table(name, spec.title, ["Method", *cities, "Paper"], rows, notes, data=pd.DataFrame(records))


# ----------------------------------------------------------------------------------------------------
# per-class table of one benchmark (the embedded one)


def per_class_table(benchmark: str, res: Results, ref: Reference, name: str) -> Table:
    cols = [*CLASSES_19, MIOU19]
    rows, records, found = [], [], []
    for tag in [*ref.rows, *_extra_rows(res, ref, benchmark)]:
        r = res.get(benchmark, tag)
        found.append(r)
        rows.append([ref.label(tag), *_ours(r, cols), _n(r)])
        records.append(_record(r, cols, benchmark=benchmark, method=ref.label(tag), row=tag))
    notes = [
        f"MLflow evaluation runs of benchmark `{benchmark}` on its target val split; mIoU = mean of the run's "
        f"per-class IoU, then mean ± std over seeds.{_snapshots(found)} The oracle is trained on target labels "
        f"(an upper bound). Run ids: {name}.csv.",
        CONVENTIONS,
    ]
    title = f"Per-class IoU, {BENCHMARKS[benchmark]}: target val (%)"
    return Table(name, title, ["Method", *CLASSES_19, "mIoU", "n"], rows, notes, data=pd.DataFrame(records))


# ----------------------------------------------------------------------------------------------------
# Figure 6


def stage_rows(res: Results, benchmark: str, row: str = "tgaa") -> list[tuple[int, str]]:
    """(stage number, row tag) of TGAA's intermediate stages ``tgaa@S<k>`` with runs, by stage."""
    out = []
    for tag in res.rows_of(benchmark):
        m = STAGE_ROW.match(tag)
        if m and m["row"] == row:
            out.append((int(m["stage"]), tag))
    return sorted(out)


def figure6_classes(benchmark: str, ref: Reference, frequency: dict[str, float] | None,
                    base: pd.Series | None) -> tuple[list[str], str, str]:
    """The classes Figure 6 follows, the rule that chose them (caption) and a short name for the titles."""
    k = ref.figure6.k
    if benchmark in ref.figure6.classes:
        return (list(ref.figure6.classes[benchmark]), "the classes listed in paper_tables.yaml (figure6.classes)",
                "selected classes")
    if frequency:
        present = [c for c in CLASSES_19 if frequency.get(c, 0.0) > 0]
        chosen = sorted(present, key=lambda c: (frequency[c], CLASSES_19.index(c)))[:k]
        return chosen, (f"the {len(chosen)} classes with the smallest share of labelled pixels in the target val "
                        "ground truth (the generate run's summary.json in MLflow)"), "infrequent classes"
    if base is None:
        return [], "none (no run to choose classes from)", "no classes"
    scored = [c for c in CLASSES_19 if not np.isnan(base[c])]
    chosen = sorted(scored, key=lambda c: (base[c], CLASSES_19.index(c)))[:k]
    return chosen, (f"no class frequencies in MLflow for this benchmark (list them in paper_tables.yaml, "
                    f"figure6.classes), so the {len(chosen)} classes with the lowest IoU at the first stage "
                    "shown"), "lowest-IoU classes"


def figure6(benchmark: str, res: Results, ref: Reference, frequency: dict[str, float] | None) -> tuple[Table, Figure]:
    """IoU of (by default) infrequent classes over S0 (the row before TGAA) and TGAA's stages S1..St."""
    stage0 = ref.figure6.stage0
    stages = [(0, stage0), *stage_rows(res, benchmark)]
    found = [res.get(benchmark, tag) for _, tag in stages]
    base = next((r for r in found if r is not None), None)
    classes, rule, which = figure6_classes(benchmark, ref, frequency, base)
    labels = [f"S{k}" for k, _ in stages]
    rows, records = [], []
    for (k, tag), r in zip(stages, found, strict=True):
        rows.append([f"S{k}", tag, *_ours(r, classes), _n(r)])
        for c in classes:
            records.append({"benchmark": benchmark, "stage": f"S{k}", "row": tag, "class": c,
                            "mean": np.nan if r is None else r[c], "std": np.nan if r is None else r[f"{c}_std"],
                            "n": 0 if r is None else int(r[f"{c}_n"]), "seeds": "" if r is None else r["seeds"],
                            "run_ids": "" if r is None else r["run_ids"]})
    name = f"figure6_{benchmark}"
    title = f"Figure 6 (ours), {BENCHMARKS[benchmark]}: IoU of {which} over TGAA's sampling stages (%)"
    series = {c: [(np.nan, np.nan) if r is None else (r[c], r[f"{c}_std"]) for r in found] for c in classes}
    plot_title = f"IoU of {which} over TGAA's sampling stages\n{BENCHMARKS[benchmark]} (ours)"
    fig = Figure(f"{name}.png", lambda target: figures.stage_plot(target, plot_title, labels, series))
    notes = [
        f"S0 = row `{stage0}` (the configuration before TGAA), S1..St = rows `tgaa@S1`.. (TGAA after each "
        "re-ranking of the uncertain classes), scored at the end of each stage; points are means over seeds, "
        "error bars the sample std. TGAA trains on the same iteration budget as the other rows, split into t "
        "equal stages, so S1..S(t-1) are models part-way through training: only St compares with S0.",
        f"Classes: {rule}. The paper's Figure 6 shows \"selected infrequent categories\" without naming them "
        "in our source. Run ids: " + f"{name}.csv.",
        CONVENTIONS,
    ]
    header = ["Stage", "Row", *classes, "n"]
    return Table(name, title, header, rows, notes, text_columns=2, data=pd.DataFrame(records),
                 figures=[fig.name]), fig


# ----------------------------------------------------------------------------------------------------
# assembly


def build(runs: pd.DataFrame, ref: Reference,
          frequency: Callable[[str], dict[str, float] | None] = lambda b: None) -> tuple[list[Table], list[Figure]]:
    """Every table and figure from the evaluation runs (``frequency(benchmark)`` feeds Figure 6)."""
    unknown = sorted(set(runs["benchmark"]) - set(BENCHMARKS)) if not runs.empty else []
    if unknown:
        log.warning("evaluation runs of unknown benchmark(s) %s are not in any table (known: %s)",
                    ", ".join(map(repr, unknown)), ", ".join(BENCHMARKS))
    res = Results(runs)
    tables: list[Table] = [comparison_table(ref.table1, res, ref), comparison_table(ref.table2, res, ref)]
    figs: list[Figure] = []
    for bench in [ref.table3.benchmark, *ref.table3.also_for]:
        t, f = ablation_table(ref.table3, bench, res, ref)
        tables.append(t)
        figs += [f] if f else []
    for bench in [EMBEDDED, *(b for b in res.benchmarks() if b != EMBEDDED and b in BENCHMARKS
                              and any(res.get(b, r) is not None for r in X.table_rows("variants")))]:
        tables.append(variants_table(bench, res))
    tables.append(cross_city_table(ref.cross_city, res, ref))
    tables.append(per_class_table(EMBEDDED, res, ref, EMBEDDED))
    for bench in [b for b in res.benchmarks() if b in BENCHMARKS and stage_rows(res, b)]:
        needs_freq = bench not in ref.figure6.classes
        t, f = figure6(bench, res, ref, frequency(bench) if needs_freq else None)
        tables.append(t)
        figs.append(f)
    return tables, figs


def describe_store(uri: str, root: Path) -> str:
    """The MLflow store as the reports name it: relative to the repository, credentials masked."""
    import re

    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        try:
            return f"the local store `{path.resolve().relative_to(root.resolve())}` (at the repository root)"
        except ValueError:
            return f"the local store `{path.name}` (outside this repository)"
    return f"`{re.sub(r'://[^/@]*@', '://***@', uri)}`"


def index(tables: list[Table], figs: list[Figure], runs: pd.DataFrame, ref: Reference, store: str = "") -> str:
    exps = sorted(set(runs["experiment"])) if not runs.empty else []
    lines = [
        "# UPLR reproduction: tables and figures",
        "",
        f"Built by `uplr tables` from {len(runs)} MLflow evaluation run(s)"
        + (f" in {store}" if store else "")
        + (f", experiment(s) {', '.join(f'`{e}`' for e in exps)}." if exps else " (none found: every row says `not run`).")
        + " Each table's CSV lists the run ids behind every number.",
        f"Paper numbers: {ref.citation()}, transcribed from {ref.source['transcribed_from']} into "
        "uplr/report/paper_tables.yaml.",
        "",
        CONVENTIONS,
        "",
        "| Table | Markdown | CSV (our numbers, run ids) | LaTeX |",
        "|:---|:---|:---|:---|",
    ]
    for t in tables:
        lines.append(f"| {t.title} | [{t.name}.md]({t.name}.md) | [{t.name}.csv]({t.name}.csv) | "
                     f"[{t.name}.tex]({t.name}.tex) |")
    lines += ["", "Figures:", ""]
    lines += [f"- [{f.name}]({f.name})" for f in figs] or ["- none (no runs to draw)"]
    return "\n".join(lines) + "\n"


def write(out: Path, tables: list[Table], figs: list[Figure], readme: str) -> list[Path]:
    """Write every file atomically; remove run-dependent files of an earlier build that are now stale."""
    out = Path(out)
    written = []
    for t in tables:
        for suffix, text in ((".md", t.markdown()), (".tex", t.latex()), (".csv", t.csv())):
            write_text(out / f"{t.name}{suffix}", text)
            written.append(out / f"{t.name}{suffix}")
    for f in figs:
        f.draw(out / f.name)
        written.append(out / f.name)
    write_text(out / "README.md", readme)
    written.append(out / "README.md")
    keep = {p.name for p in written}
    for p in sorted(out.iterdir()):
        if p.is_file() and p.name.startswith(_VARIABLE_PREFIXES) and p.name not in keep:
            log.info("removing stale %s", p)
            p.unlink()
    return written


def run(out: Path, experiments: list[str] | None = None, reference: Path | None = None,
        echo: bool = True) -> list[Path]:
    """Read MLflow, write reports/ (``out``) and, with ``echo``, print the tables (the demo shows them)."""
    sweep_stale(out, inside=True)  # temporaries a killed build left in (or next to) reports/
    ref = load_reference(reference)
    runs = evaluation_runs(experiments)
    tables, figs = build(runs, ref, lambda bench: class_pixel_fraction(bench, experiments))
    from uplr.report.quality import quality_outputs
    from uplr.report.runs import pseudo_quality_runs

    q_tables, q_figs = quality_outputs(pseudo_quality_runs(experiments))
    tables, figs = tables + q_tables, figs + q_figs
    from uplr.track.lineage import repo_root
    from uplr.track.mlflow_run import tracking_uri

    store = describe_store(tracking_uri(), repo_root())
    written = write(Path(out), tables, figs, index(tables, figs, runs, ref, store))
    if echo:
        print("\n".join(t.markdown() for t in tables))  # the command's output, not a log message
    log.info("%d files written to %s from %d evaluation runs", len(written), out, len(runs))
    return written
