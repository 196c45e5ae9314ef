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
INFER = (*MODEL_ARCH, "evaluate.batch_size", "train.device", "train.amp")
TRAIN = ("model", "train")
ADVERSARIAL = ("adversarial",)
TRANSLATED = ("translate.out",)
SR = ("resample",)
TGAA = ("tgaa",)
TGAA_WEIGHTS = ("tgaa.k", "tgaa.nan_policy")  # what decides S_k's weights (UPST keeps TGAA's last ones)
SELECTORS = ("upst.bins", "upst.threshold", "upst.bdl_cap", "upst.cbst_portion")
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
    init_from: str | None = None  # starts from this row's model instead of model.init
    rank_from: str | None = None  # TGAA: the model that ranks the classes of stage S1
    table: str = "table3"  # the paper table it belongs to ("" = none: the oracle)
    reads: tuple[str, ...] = ()  # config keys the training stage reads
    needs_target_labels: bool = False  # only where the target train split is labelled
    entry: str = "uplr.stages.train"  # the module whose run() trains it (its code: uplr/codedeps.py)
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

    @property
    def inputs(self) -> tuple[str, ...]:
        """Upstream models this row's training reads (its parent models in the chain)."""
        return tuple(r for r in (self.rank_from, self.init_from) if r)


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
ROWS: dict[str, Row] = {r.id: r for r in _ROWS}
"""Every row, in Table 3's order, the oracle last."""

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


def rows_before_pseudo() -> tuple[str, ...]:
    """Rows trained before the pseudo-label stage (everything that is not self-training)."""
    return tuple(r.id for r in _ROWS if not r.pseudo)


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
