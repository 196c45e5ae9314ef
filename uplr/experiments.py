"""The experiment grid: every benchmark, every row of the paper's Table 3 and every stage, declared once.

Everything that needs to know what a row is reads this module: the dvc.yaml renderer
(uplr/pipelines.py), the CLI's ``--row`` choices, the training job builder (uplr/stages/train.py),
the MLflow params each stage logs, the resume fingerprint, and the tables (labels, components,
parents). Adding a row is one :class:`Row` entry here plus the code that trains it.

What a stage *reads* is declared as config keys (``train``, ``data.source.root``, ...): dvc.yaml lists
exactly these as params, MLflow logs exactly these, the resume fingerprint hashes exactly these, and
tests/test_grid.py runs every stage on tiny data through a recorder of config reads and checks that
the declared keys and the recorded ones agree, both ways. Sections in :data:`NOT_INPUTS` are never a
dependency: they decide where a result is recorded, not what it is.

This module imports nothing from uplr but :mod:`uplr.errors`, so every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uplr.errors import UplrError

# ----------------------------------------------------------------------------------------------------
# benchmarks


@dataclass(frozen=True)
class BenchmarkInfo:
    name: str  # params.yaml `benchmark`, MLflow tag uplr.benchmark
    title: str  # how tables name it
    folder: str  # the folder of its dvc.yaml and params.yaml, relative to the repository root


BENCHMARKS: dict[str, BenchmarkInfo] = {
    "embedded": BenchmarkInfo("embedded", "embedded benchmark (synthetic)", "."),
    "gta5_cityscapes": BenchmarkInfo("gta5_cityscapes", "GTA5 → Cityscapes", "pipelines/gta5_cityscapes"),
    "synthia_cityscapes": BenchmarkInfo("synthia_cityscapes", "SYNTHIA → Cityscapes", "pipelines/synthia_cityscapes"),
    "cityscapes_nthu": BenchmarkInfo("cityscapes_nthu", "Cityscapes → NTHU Cross-City", "pipelines/cityscapes_nthu"),
}
REAL_BENCHMARKS = tuple(b for b in BENCHMARKS if b != "embedded")

NOT_INPUTS = ("tracking", "benchmark", "seeds")
"""Config keys that are no stage's dependency: the MLflow experiment and the benchmark's name label
where a run is recorded; ``seeds`` is the grid's axis (each stage gets its seed on the command line)."""

# ----------------------------------------------------------------------------------------------------
# what the stages read (config keys; a section stands for every key in it)

DATA_SOURCE = ("data.source",)
SOURCE_LOADER = ("data.source.dataset", "data.source.split", "data.source.size", "data.source.city",
                 "data.source.strict")  # the translated copy is read with the source's loader, at its own root
WORKERS = ("data.num_workers",)  # data loader workers: training streams only
DATA_TARGET = ("data.target.dataset", "data.target.root", "data.target.split", "data.target.size",
               "data.target.city", "data.target.strict")
TARGET_VAL = ("data.target.dataset", "data.target.root", "data.target.val_split", "data.target.size",
              "data.target.city", "data.target.strict")
MODEL_ARCH = ("model.trunk", "model.num_classes", "model.multi_level", "model.aspp_all_branches", "model.freeze_bn")
INFER = (*MODEL_ARCH, "evaluate.batch_size", "train.device", "train.amp", "train.threads")
TRAIN = ("model", "train")
ADVERSARIAL = ("adversarial",)
TRANSLATED = ("translate.out",)
SR = ("resample",)
TGAA = ("tgaa",)
TGAA_WEIGHTS = ("tgaa.weights", "tgaa.boost")  # how TGAA's last S_k weighs the source (rows continuing +TGAA)
SELECTORS = ("upst.bins", "upst.gmm_rule", "upst.threshold", "upst.bdl_cap", "upst.cbst_portion")
UPST_LABELS = ("upst.method", *SELECTORS, "upst.save_confidence")
UPST_TRAIN = ("upst.iterations", "upst.rounds", "upst.lr_schedule")


def _keys(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for g in groups for k in g))


# ----------------------------------------------------------------------------------------------------
# rows


@dataclass(frozen=True)
class Row:
    """One configuration that is trained (a row of Table 3, or the oracle)."""

    id: str  # MLflow tag uplr.row, the CLI's --row, the stage names train_<id> / evaluate_<id>
    label: str  # how the tables name it
    components: tuple[str, ...]  # Table 3's ticks (AA, IT, SR, TGAA, UPST)
    parent: str | None  # the row above it in Table 3: the Δ column compares with it
    labeled: str  # the labelled stream: "source", "translated" (the IT stage's output) or "target"
    adversarial: bool = False  # output-space adversarial adaptation on the target train images
    weights: str | None = None  # None (uniform), "sr" (soft balance) or "tgaa" (towards S_k, t stages)
    pseudo: bool = False  # + the target train images with pseudo labels (self-training)
    init_from: str | None = None  # continues this row's model (and discriminators) instead of model.init
    table: str = "table3"  # the paper table it belongs to ("" = none: the oracle)
    reads: tuple[str, ...] = ()  # config keys the training stage reads
    needs_target_labels: bool = False  # only where the target train split is labelled
    entry: str = "uplr.stages.train"  # the module whose run() trains it (its code: uplr/codedeps.py)
    overrides: tuple[tuple[str, str], ...] = ()  # config values this row pins (a variant of another row)
    labels: str = ""  # pseudo labels: "" = the pseudo_label stage's, else the LABELS variant's
    steps_from: str = ""  # a control row continued from its parent: the section ("tgaa", "upst") whose
    # iterations and lr_schedule it trains with (as long as the row it is the control for)
    versus: str | None = None  # a variant or control: the row of Table 3 it is compared with
    doc: str = ""

    @property
    def train_stage(self) -> str:
        return f"train_{self.id}"

    @property
    def eval_stage(self) -> str:
        return f"evaluate_{self.id}"

    @property
    def uses_class_stats(self) -> bool:
        return self.weights is not None



_ROWS = (
    Row("source_only", "Source only", (), None, "source", reads=_keys(DATA_SOURCE, WORKERS, TRAIN),
        doc="DeepLab-v2 on the source labels"),
    Row("aa", "+AA", ("AA",), "source_only", "source", adversarial=True,
        reads=_keys(DATA_SOURCE, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL),
        doc="+ output-space adversarial adaptation on unlabelled target images"),
    Row("it", "+IT", ("AA", "IT"), "aa", "translated", adversarial=True,
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL),
        doc="+ the source set translated to the target style (the translate stage)"),
    Row("sr", "+SR", ("AA", "IT", "SR"), "it", "translated", adversarial=True, weights="sr",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL, SR),
        entry="uplr.stages.train_sr", doc="+ soft-balance resampling of source images over all classes"),
    Row("tgaa", "+TGAA", ("AA", "IT", "SR", "TGAA"), "sr", "translated", adversarial=True, weights="tgaa",
        init_from="sr",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TARGET_VAL, TRAIN, ADVERSARIAL, SR, TGAA,
                    ("evaluate.batch_size",)), entry="uplr.stages.train_tgaa",
        doc="continues the +SR model and its discriminators for tgaa.iterations, drawing source images "
            "towards the top-k uncertain target classes S_k, re-ranked with the model being trained at the "
            "start of each of tgaa.stages stages; each stage's snapshot is evaluated (Figure 6)"),
    Row("upst", "+UPST", ("AA", "IT", "SR", "TGAA", "UPST"), "tgaa", "translated", adversarial=True,
        weights="tgaa", pseudo=True, init_from="tgaa",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL, SR, TGAA_WEIGHTS,
                    UPST_TRAIN, UPST_LABELS, ("evaluate.batch_size",)),
        entry="uplr.stages.train_upst",
        doc="continues the +TGAA model: every component above it (source CE on the translated set with "
            "TGAA's last weights, the adversarial term with its discriminators) plus CE on its "
            "uncertainty-aware pseudo labels"),
    Row("oracle", "Oracle (target-supervised)", (), None, "target", table="",
        reads=_keys(DATA_TARGET, WORKERS, TRAIN), needs_target_labels=True,
        doc="target labels: the target-supervised upper bound (not a UDA method)"),
)
_UPST_READS = _keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL, SR, TGAA_WEIGHTS, UPST_TRAIN,
                    UPST_LABELS, ("evaluate.batch_size",))
_VARIANTS = (
    # controls: as many steps as the component's row, without the component
    Row("sr_more", "+SR, continued (control for +TGAA)", ("AA", "IT", "SR"), "sr", "translated", adversarial=True,
        weights="sr", init_from="sr", table="variants", steps_from="tgaa", versus="tgaa", entry="uplr.stages.train_more",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL, SR,
                    ("tgaa.iterations", "tgaa.lr_schedule")),
        doc="the +SR model continued for tgaa.iterations with SR's weights over all classes: what +TGAA's "
            "steps give without S_k"),
    Row("tgaa_more", "+TGAA, continued (control for +UPST)", ("AA", "IT", "SR", "TGAA"), "tgaa", "translated",
        adversarial=True, weights="tgaa", init_from="tgaa", table="variants", steps_from="upst", versus="upst",
        entry="uplr.stages.train_more",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TRAIN, ADVERSARIAL, SR, TGAA_WEIGHTS,
                    ("upst.iterations", "upst.lr_schedule")),
        doc="the +TGAA model continued for upst.iterations without pseudo labels: what +UPST's steps give "
            "without self-training"),
    # self-training on each baseline's pseudo labels: GMM vs thresholds, end to end
    *(Row(f"upst_{m}", f"+UPST, {m} pseudo labels", ("AA", "IT", "SR", "TGAA", "UPST"), "tgaa", "translated",
          adversarial=True, weights="tgaa", pseudo=True, init_from="tgaa", table="variants", labels=m, versus="upst",
          overrides=(("upst.method", m),), entry="uplr.stages.train_upst", reads=_UPST_READS,
          doc=f"+UPST self-trained on the {m} baseline's pseudo labels instead of the GMM's")
      for m in ("threshold", "bdl", "cbst")),
    # the paper's choices against ours
    Row("tgaa_scratch", "+TGAA from scratch (tgaa.init: scratch)", ("AA", "IT", "SR", "TGAA"), "sr", "translated",
        adversarial=True, weights="tgaa", init_from="sr", table="variants", overrides=(("tgaa.init", "scratch"),),
        versus="tgaa",
        entry="uplr.stages.train_tgaa",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TARGET_VAL, TRAIN, ADVERSARIAL, SR,
                    tuple(f"tgaa.{k}" for k in ("k", "stages", "nan_policy", "weights", "boost", "init")),
                    ("evaluate.batch_size",)),
        doc="TGAA trained from model.init for train.iterations (the +SR model only ranks stage 1): the "
            "suite's earlier reading of the paper"),
    Row("tgaa_sk_only", "+TGAA, S_k-only weights (tgaa.weights: sk_only)", ("AA", "IT", "SR", "TGAA"), "sr",
        "translated", adversarial=True, weights="tgaa", init_from="sr", table="variants",
        overrides=(("tgaa.weights", "sk_only"),), versus="tgaa", entry="uplr.stages.train_tgaa",
        reads=_keys(SOURCE_LOADER, TRANSLATED, WORKERS, DATA_TARGET, TARGET_VAL, TRAIN, ADVERSARIAL, SR,
                    tuple(f"tgaa.{k}" for k in ("k", "stages", "nan_policy", "weights", "init", "iterations",
                                                "lr_schedule")), ("evaluate.batch_size",)),
        doc="TGAA's weights by the literal formula over S_k only (SR's balance of the other classes dropped)"),
    Row("upst_monotone", "+UPST, monotone GMM rule (upst.gmm_rule: monotone)", ("AA", "IT", "SR", "TGAA", "UPST"),
        "tgaa", "translated", adversarial=True, weights="tgaa", pseudo=True, init_from="tgaa", table="variants",
        labels="monotone", overrides=(("upst.gmm_rule", "monotone"),), versus="upst",
        entry="uplr.stages.train_upst", reads=_UPST_READS,
        doc="+UPST on GMM pseudo labels kept by the monotone rule (never a pixel more uncertain than a "
            "rejected one) instead of the posterior rule"),
)
ROWS: dict[str, Row] = {r.id: r for r in (*_ROWS, *_VARIANTS)}
"""Every row: Table 3's in order, the oracle, then the variants and controls."""

LABELS: dict[str, tuple[tuple[str, str], ...]] = {
    "": (),
    **{m: (("upst.method", m),) for m in ("threshold", "bdl", "cbst")},
    "monotone": (("upst.gmm_rule", "monotone"),),
}
"""Pseudo-label variants: the pseudo_label stage's (``""``) and one stage per baseline."""

TABLE3_COMPONENTS = ("AA", "IT", "SR", "TGAA", "UPST")
PSEUDO_FROM = "tgaa"
"""The row whose model writes UPST's round-1 pseudo labels (and whose labels pseudo_quality scores)."""
FIGURE6_STAGE0 = "sr"
"""Figure 6's S0: the row before TGAA."""


def row(row_id: str) -> Row:
    try:
        return ROWS[row_id]
    except KeyError:
        raise UplrError(f"unknown row {row_id!r}; valid rows are {', '.join(ROWS)}") from None


def label(row_id: str) -> str:
    """How tables name a row (stage snapshots such as ``tgaa@S2`` keep their tag)."""
    return ROWS[row_id].label if row_id in ROWS else row_id


def table_rows(table: str) -> tuple[str, ...]:
    """The rows of one table (``table3``, ``variants``, ``""`` for the oracle), in order."""
    return tuple(r.id for r in ROWS.values() if r.table == table)


# ----------------------------------------------------------------------------------------------------
# stages other than the training rows


@dataclass(frozen=True)
class StageSpec:
    """A stage kind: its entry point (a module of uplr/stages/) and the config keys it reads."""

    name: str
    entry: str  # python module whose code (and everything it imports within uplr) the stage runs
    reads: tuple[str, ...]
    per_row: bool = False  # one stage per row (evaluate_<row>)
    extra_code: tuple[str, ...] = field(default=())  # data files the stage reads besides modules


STAGES: dict[str, StageSpec] = {s.name: s for s in (
    StageSpec("generate", "uplr.stages.generate", ("generate",)),
    StageSpec("translate", "uplr.stages.translate", _keys(DATA_SOURCE, DATA_TARGET, ("translate",))),
    StageSpec("class_stats", "uplr.stages.class_stats", _keys(DATA_SOURCE, ("model.num_classes",))),
    StageSpec("train", "uplr.stages.train", ()),  # per row: Row.reads and Row.entry
    StageSpec("pseudo_label", "uplr.stages.pseudo", _keys(DATA_TARGET, INFER, UPST_LABELS)),
    StageSpec("pseudo_quality", "uplr.stages.pseudo", _keys(DATA_TARGET, INFER, SELECTORS, ("upst.quality_methods",))),
    StageSpec("evaluate", "uplr.stages.evaluate",
              _keys(TARGET_VAL, INFER, ("evaluate.checkpoint", "evaluate.save_predictions")), per_row=True),
    StageSpec("tables", "uplr.report.tables", (), extra_code=("uplr/report/paper_tables.yaml",)),
)}


def stage_reads(stage: str, row_id: str | None = None) -> tuple[str, ...]:
    """The config keys a stage kind reads (training: the row's)."""
    if stage == "train":
        return row(row_id or "").reads
    try:
        return STAGES[stage].reads
    except KeyError:
        raise UplrError(f"unknown stage kind {stage!r}; valid: {', '.join(STAGES)}") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m uplr.experiments stages TABLE [TABLE ...]``: the evaluation stages of those tables' rows
    (``table3``, ``variants``, ``oracle``), for make targets; ``rows``: every row id."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["rows"]:
        print(" ".join(ROWS))
        return 0
    if args[:1] != ["stages"] or len(args) < 2:
        print("usage: python -m uplr.experiments stages TABLE [TABLE ...] | rows", file=sys.stderr)
        return 2
    tables = ["" if t == "oracle" else t for t in args[1:]]
    print(" ".join(r.eval_stage for r in ROWS.values() if r.table in tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
