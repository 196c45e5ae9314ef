"""One typed default configuration with strict overrides.

``params.yaml`` (what DVC tracks) is merged onto the dataclass defaults below: an unknown key is an
error that lists the valid ones, and a value of the wrong type is an error that names the key and the
expected type. Command-line overrides (``-o train.iterations=10``) go through the same checks.

Paths in the config are relative to the directory that holds the params file (the DVC stage's
working directory), never absolute in the files we ship.

Longer than 400 lines because the typed schema, the strict merge and the table of value checks
must agree key by key, so they are kept side by side.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from uplr.errors import UplrError

# ----------------------------------------------------------------------------------------------------
# closed sets: declared once here (the strict loader checks them; the CLI can reuse them as choices)

Benchmark = Literal["embedded", "gta5_cityscapes", "synthia_cityscapes", "cityscapes_nthu"]
DatasetName = Literal["gta5", "synthia", "cityscapes", "nthu"]
Trunk = Literal["resnet101", "resnet18", "resnet18_half"]
Device = Literal["auto", "cpu", "cuda"]
DInput = Literal["softmax", "self_information"]
TranslateMethod = Literal["fda", "external"]
NanPolicy = Literal["first", "last"]
PseudoMethod = Literal["gmm", "threshold", "bdl", "cbst"]
CheckpointChoice = Literal["last"]
TgaaInit = Literal["sr", "scratch"]
LrSchedule = Literal["continue", "restart"]
FdaWindow = Literal["fda", "floor"]
TgaaWeights = Literal["sr_boost_sk", "sk_only"]
GmmRule = Literal["posterior", "monotone"]


# what a value outside the set means, where there is more to say than "is not valid"
CLOSED_SET_HINTS = {
    "benchmark": "names no known pipeline (each has its dvc.yaml: the root one, or pipelines/<benchmark>/)",
}


def choices(closed_set: Any) -> tuple:
    """The values of a closed set declared above, e.g. ``choices(Trunk)`` (for argparse ``choices=``)."""
    return typing.get_args(closed_set)


NUM_CLASSES = 19  # the loaders map every dataset into the 19 Cityscapes trainIds (uplr/data/labels.py)


@dataclass
class GenerateConfig:
    """The embedded benchmark generator (stage ``generate``; see uplr/data/synthetic.py)."""

    seed: int = 2021
    out: str = "data/embedded"
    height: int = 128
    width: int = 256
    n_source: int = 400
    n_target_train: int = 300
    n_target_val: int = 100


@dataclass
class DomainConfig:
    """One dataset on disk.

    ``split`` names a packaged official list (``all``, ``split_train``, ``train``, ``val``, ``test``)
    or, when it contains a ``/`` or ends in ``.txt``, a list file relative to the params file.
    ``size`` is ``[width, height]`` that images are resized to for training (labels: nearest).
    """

    dataset: DatasetName = "gta5"
    root: str = "data/embedded/source"
    split: str = "all"
    size: list[int] = field(default_factory=lambda: [256, 128])
    city: str = ""  # NTHU Cross-City only: Rome, Rio, Tokyo or Taipei
    strict: bool = False  # True: an unusable listed frame is an error instead of a logged skip


@dataclass
class TargetConfig(DomainConfig):
    dataset: DatasetName = "cityscapes"
    root: str = "data/embedded/target"
    split: str = "train"
    val_split: str = "val"


@dataclass
class DataConfig:
    source: DomainConfig = field(default_factory=DomainConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    num_workers: int = 0


@dataclass
class ModelConfig:
    """DeepLab-v2 (ADVENT/AdaptSegNet layout) or the light CPU trunk with the same heads."""

    trunk: Trunk = "resnet18"  # resnet101 (paper) | resnet18 | resnet18_half (CPU runs: half-width ResNet-18)
    num_classes: int = 19
    multi_level: bool = True  # aux classifier on layer3 (layer5) + main on layer4 (layer6)
    aspp_all_branches: bool = True  # False: AdaptSegNet's classifier, whose forward returns inside its loop (branches 6+12 only)
    init: str = "scratch"  # "scratch" or a path to a state_dict file
    freeze_bn: bool = False  # the paper's setting (True) needs pretrained BN statistics


@dataclass
class TrainConfig:
    iterations: int = 400  # training stops here (the reported snapshot is the last one)
    schedule_iterations: int = 0  # length of the poly schedule; 0 = iterations (peers: 250k, stopped at 120k)
    batch_size: int = 4
    lr: float = 2.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    head_lr_mult: float = 10.0
    lambda_seg_aux: float = 0.1
    checkpoint_every: int = 100
    log_every: int = 10
    device: Device = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    deterministic: bool = True
    threads: int = 2  # torch CPU threads, set by every stage (not OMP_NUM_THREADS): fixes the result; 0 = torch's default


@dataclass
class AdversarialConfig:
    """AA: output-space adversarial adaptation (AdaptSegNet; ADVENT's self-information input as an option)."""

    d_input: DInput = "softmax"  # softmax | self_information (ADVENT)
    ndf: int = 64  # discriminator width: 64-128-256-512-1 (the peers'); the embedded benchmark uses 16
    d_lr: float = 1e-4
    d_betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    lambda_adv_main: float = 0.001
    lambda_adv_aux: float = 0.0002


@dataclass
class TranslateConfig:
    """IT: image translation of the source set into the target style."""

    method: TranslateMethod = "fda"  # fda (built in) | external (a translated copy made elsewhere, e.g. CycleGAN)
    beta: float = 0.01  # b = floor(min(H, W) * beta): FDA's half-width (window fda) or the side (floor)
    # fda: FDA's own centred (2b+1) x (2b+1) window, DC included | floor: a b x b window (empty for b = 0)
    window: FdaWindow = "fda"
    seed: int = 0  # picks the target style image of each source image
    out: str = "data/translated/source"  # where the FDA stage writes the translated copy (GTA5/SYNTHIA layout)
    external_root: str = ""  # method: external: the translated source set, same layout as the source


@dataclass
class ResampleConfig:
    """SR: soft-balance resampling of source images (the paper gives no values: ours are defaults)."""

    lam: float = 0.5  # λ in p_c = N_c^λ / Σ N^λ · 1/N_c (0.5: per-pixel weight ∝ 1/sqrt(N_c))
    alpha: float | None = None  # None: auto, the 10-90% spread of p_i spans the sigmoid's slope
    mu: float | None = None  # None: auto, the mu_quantile of p_i
    mu_quantile: float = 0.5


@dataclass
class TGAAConfig:
    """TGAA: resample towards the top-k uncertain target classes, re-ranked over t stages."""

    k: int = 5  # the paper does not give k (its figure shows five classes)
    stages: int = 3  # t: tgaa.iterations are split into t equal stages, S_k re-ranked at the start of each
    nan_policy: NanPolicy = "first"  # classes never predicted on the target rank as most uncertain
    # sr_boost_sk: SR's soft balance over all classes with p_c of the S_k classes times `boost` |
    # sk_only: the paper's formula read literally, p_i over the classes of S_k only
    weights: TgaaWeights = "sr_boost_sk"
    boost: float = 2.0  # weights sr_boost_sk: factor on p_c of the S_k classes (ours: the paper has none)
    init: TgaaInit = "sr"  # sr: continue the +SR model (the paper's chain) | scratch: train from model.init
    iterations: int = 150  # with init sr: steps added to the +SR model (scratch: train.iterations)
    lr_schedule: LrSchedule = "continue"  # continue: the chain's poly schedule goes on | restart: from train.lr


@dataclass
class UPSTConfig:
    """UPST: uncertainty-aware pseudo labels (per-class GMM on entropy) and self-training."""

    method: PseudoMethod = "gmm"  # gmm (UPLR) | threshold | bdl | cbst
    bins: int = 2048  # entropy / confidence histogram bins (streamed statistics)
    # gmm keep rule: posterior (the paper: certainty-mode posterior > 0.5) | monotone (keep I <= the
    # decision boundary nearest above the certain mean: never a pixel more uncertain than a rejected one)
    gmm_rule: GmmRule = "posterior"
    threshold: float = 0.9
    bdl_cap: float = 0.9
    cbst_portion: float = 0.2
    rounds: int = 1  # pseudo-label + self-training rounds
    iterations: int = 300  # self-training iterations per round
    lr_schedule: LrSchedule = "continue"  # continue: the chain's poly schedule goes on from the +TGAA model | restart
    save_confidence: bool = False  # also write float16 confidence maps next to the labels
    quality_methods: list[PseudoMethod] = field(default_factory=lambda: ["gmm", "threshold", "bdl", "cbst"])


@dataclass
class EvaluateConfig:
    batch_size: int = 4
    checkpoint: CheckpointChoice = "last"  # which snapshot is scored and reported: the last one
    save_predictions: bool = True


@dataclass
class TrackingConfig:
    experiment: str = "uplr-embedded"


@dataclass
class Config:
    benchmark: Benchmark = "embedded"
    seeds: list[int] = field(default_factory=lambda: [0])
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    tgaa: TGAAConfig = field(default_factory=TGAAConfig)
    upst: UPSTConfig = field(default_factory=UPSTConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # where the params file lives; relative paths in the config resolve against it
    base_dir: Path = field(default=Path("."), metadata={"internal": True})

    def path(self, value: str | Path) -> Path:
        """Resolve a path from the config against the params file's directory."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p


# ----------------------------------------------------------------------------------------------------
# strict merge


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


_SCI_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _check_value(value: Any, tp: Any, where: str, source: str) -> Any:
    """Return ``value`` converted to ``tp`` when that is lossless, else raise a UplrError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        # a closed set: the exact value (1 is not True, 19.0 is not 19)
        if not any(type(value) is type(a) and value == a for a in allowed):
            raise UplrError(f"{source}: `{where}` is {value!r}, which {CLOSED_SET_HINTS.get(where, 'is not valid')}; "
                            f"valid: {', '.join(repr(a) for a in allowed)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where, source)
            except UplrError:
                continue
        raise UplrError(f"{source}: `{where}` must be one of {[_type_name(a) for a in args]}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise UplrError(f"{source}: `{where}` must be a list, got {type(value).__name__} {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_check_value(v, item_tp, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, str) and _SCI_FLOAT.fullmatch(value.strip()):
            value = float(value)  # "1e-4": a float in YAML 1.2 (and to DVC), a string to PyYAML's YAML 1.1
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UplrError(f"{source}: `{where}` must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UplrError(f"{source}: `{where}` must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise UplrError(f"{source}: `{where}` must be true or false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise UplrError(f"{source}: `{where}` must be a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _merge(obj: Any, data: dict, prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        raise UplrError(f"{source}: `{prefix.rstrip('.') or '<top>'}` must be a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj) if not f.metadata.get("internal")}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            raise UplrError(
                f"{source}: unknown parameter `{where}`; valid keys here are: {', '.join(sorted(fields))}. "
                "Fix the spelling or remove it."
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, f"{where}.", source)
        else:
            setattr(obj, key, _check_value(value, hints[key], where, source))


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise UplrError(f"override `{text}` must look like key.path=value (e.g. train.iterations=10)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key.path=value`` strings (values parsed as YAML) with the same strict checks."""
    for text in overrides:
        keys, value = _parse_override(text)
        nested: Any = value
        for k in reversed(keys):
            nested = {k: nested}
        _merge(cfg, nested, "", f"override `{text}`")
    return cfg


BENCHMARKS = choices(Benchmark)


# ----------------------------------------------------------------------------------------------------
# value checks: one table row per parameter (types and closed sets are checked while merging)


@dataclass(frozen=True)
class Range:
    """A finite number within ``lo``/``hi`` (None: unbounded), each bound open or closed."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return "a finite number"


POSITIVE = Range(0, lo_open=True)
NON_NEGATIVE = Range(0)
FINITE = Range()
AT_LEAST_1 = Range(1)
FRACTION = Range(0, 1, lo_open=True)  # (0, 1]: a share or probability that selects something
UNIT = Range(0, 1)
UNIT_OPEN_TOP = Range(0, 1, hi_open=True)

# dotted name -> range; "name[]" applies to every item of a list. None values (auto) are not checked.
RANGES: dict[str, Range] = {
    "seeds[]": NON_NEGATIVE,
    "generate.seed": NON_NEGATIVE,
    "generate.height": POSITIVE,
    "generate.width": POSITIVE,
    "generate.n_source": POSITIVE,
    "generate.n_target_train": POSITIVE,
    "generate.n_target_val": POSITIVE,
    "data.source.size[]": POSITIVE,
    "data.target.size[]": POSITIVE,
    "data.num_workers": NON_NEGATIVE,
    "train.iterations": POSITIVE,
    "train.schedule_iterations": NON_NEGATIVE,
    "train.batch_size": POSITIVE,
    "train.lr": POSITIVE,
    "train.momentum": UNIT_OPEN_TOP,
    "train.weight_decay": NON_NEGATIVE,
    "train.poly_power": NON_NEGATIVE,
    "train.head_lr_mult": POSITIVE,
    "train.lambda_seg_aux": NON_NEGATIVE,
    "train.checkpoint_every": POSITIVE,
    "train.log_every": POSITIVE,
    "adversarial.ndf": POSITIVE,
    "adversarial.d_lr": POSITIVE,
    "adversarial.d_betas[]": UNIT_OPEN_TOP,
    "adversarial.lambda_adv_main": NON_NEGATIVE,
    "adversarial.lambda_adv_aux": NON_NEGATIVE,
    "translate.beta": UNIT_OPEN_TOP,
    "translate.seed": NON_NEGATIVE,
    "resample.lam": NON_NEGATIVE,
    "resample.alpha": POSITIVE,
    "resample.mu": FINITE,
    "resample.mu_quantile": UNIT,
    "tgaa.k": AT_LEAST_1,  # and <= model.num_classes: see CROSS_CHECKS
    "tgaa.stages": AT_LEAST_1,
    "tgaa.iterations": POSITIVE,
    "tgaa.boost": POSITIVE,  # 1 = SR's weights; below 1 would draw S_k less often
    "upst.bins": Range(2),
    "upst.threshold": FRACTION,
    "upst.bdl_cap": FRACTION,
    "upst.cbst_portion": FRACTION,
    "upst.rounds": AT_LEAST_1,
    "upst.iterations": POSITIVE,
    "evaluate.batch_size": POSITIVE,
}

# dotted name -> (fewest, most) items of a list
LENGTHS: dict[str, tuple[int, int | None]] = {
    "seeds": (1, None),
    "data.source.size": (2, 2),
    "data.target.size": (2, 2),
    "adversarial.d_betas": (2, 2),
    "upst.quality_methods": (1, None),
}


def _get(cfg: Config, name: str) -> Any:
    obj: Any = cfg
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _num_classes(cfg: Config) -> str | None:
    if cfg.model.num_classes != NUM_CLASSES:
        return (f"`model.num_classes` is {cfg.model.num_classes}, but every loader maps its labels into the "
                f"{NUM_CLASSES} Cityscapes trainIds (the 16- and 13-class protocols are scored from those): "
                f"set it to {NUM_CLASSES}")
    return None


def _k_le_classes(cfg: Config) -> str | None:
    if cfg.tgaa.k > cfg.model.num_classes:
        return (f"`tgaa.k` is {cfg.tgaa.k}, but there are only {cfg.model.num_classes} classes "
                f"(`model.num_classes`); choose 1 <= tgaa.k <= {cfg.model.num_classes} (k equal to the number "
                "of classes resamples towards every class: that is SR, not TGAA)")
    return None


def _stages_le_iterations(cfg: Config) -> str | None:
    name = "tgaa.iterations" if cfg.tgaa.init == "sr" else "train.iterations"  # what the stages split
    n = cfg.tgaa.iterations if cfg.tgaa.init == "sr" else cfg.train.iterations
    if cfg.tgaa.stages > n:
        return (f"`tgaa.stages` is {cfg.tgaa.stages}, more than `{name}` ({n}): some TGAA stages would train "
                f"for 0 steps; lower tgaa.stages or raise {name}")
    return None


def _unique(name: str) -> Callable[[Config], str | None]:
    def check(cfg: Config) -> str | None:
        values = _get(cfg, name)
        dup = sorted({v for v in values if values.count(v) > 1})
        return f"`{name}` lists {', '.join(map(repr, dup))} more than once; remove the repeats" if dup else None

    return check


# checks that involve more than one value (or more than a range); each returns a message or None
CROSS_CHECKS: list[Callable[[Config], str | None]] = [
    _num_classes,
    _k_le_classes,
    _unique("seeds"),
    _unique("upst.quality_methods"),
]


def _range_error(name: str, value: Any, rng: Range) -> str | None:
    if value is None or (not isinstance(value, bool) and isinstance(value, int | float) and value in rng):
        return None
    kind = "an integer" if isinstance(value, int) else "a finite number"
    return f"`{name}` is {value!r}, but it must be {kind} {rng}" if str(rng) != "a finite number" else \
        f"`{name}` is {value!r}, but it must be a finite number"


def validation_errors(cfg: Config) -> list[str]:
    """Every value check that fails, as messages naming the dotted parameter (empty: the config is valid)."""
    errors = []
    for name, (lo, hi) in LENGTHS.items():
        n = len(_get(cfg, name))
        if n < lo or (hi is not None and n > hi):
            want = f"exactly {lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            errors.append(f"`{name}` has {n} items, but it must have {want}")
    for key, rng in RANGES.items():
        if key.endswith("[]"):
            name = key[:-2]
            items = [(f"{name}[{i}]", v) for i, v in enumerate(_get(cfg, name))]
        else:
            items = [(key, _get(cfg, key))]
        errors += [e for e in (_range_error(n, v, rng) for n, v in items) if e]
    if not errors:  # cross checks assume the single values are sane
        errors += [e for e in (check(cfg) for check in CROSS_CHECKS) if e]
    return errors


def _validate(cfg: Config, source: str) -> None:
    """Checks on values (types and closed sets are checked while merging): the first failure, one line."""
    errors = validation_errors(cfg)
    if errors:
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''}: {'; '.join(errors[1:])})" \
            if len(errors) > 1 else ""
        raise UplrError(f"{source}: {errors[0]}; fix the value{more}")


def check_tgaa(cfg: Config, class_counts: Any, where: str = "params") -> None:
    """The TGAA row's checks that need more than the config: ``tgaa.k`` against the classes present in
    the source class statistics (``class_counts``: n_images x C pixel counts; a class without a source
    pixel cannot be resampled towards) and ``tgaa.stages`` against ``train.iterations``.
    """
    err = _stages_le_iterations(cfg)
    if err:
        raise UplrError(f"{where}: {err}")
    check_k_present(cfg.tgaa.k, class_counts, where)


def check_k_present(k: int, class_counts: Any, where: str = "params") -> None:
    """``tgaa.k`` against the classes present in the source class statistics (known only at run time)."""
    totals = [int(v) for v in (class_counts.sum(0) if hasattr(class_counts, "sum") else class_counts)]
    present = sum(v > 0 for v in totals)
    if not 1 <= k <= present:
        raise UplrError(f"{where}: `tgaa.k` is {k}, but only {present} of {len(totals)} classes have source "
                        f"pixels (class statistics); choose 1 <= tgaa.k <= {present} (and below it for TGAA to "
                        "differ from SR, which resamples towards every class)")


def load_config(params: str | Path | None = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Defaults, then the params file (if given), then the overrides; every step strict."""
    cfg = Config()
    if params is not None:
        path = Path(params)
        if not path.is_file():
            raise UplrError(f"{path}: params file not found; run from the repository root or pass --params PATH")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UplrError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
        _merge(cfg, data, "", str(path))
        cfg.base_dir = path.resolve().parent
    apply_overrides(cfg, overrides or [])
    where = str(params) if params is not None else "defaults"
    _validate(cfg, f"{where} with overrides {' '.join(overrides)}" if overrides else where)
    return cfg


def to_dict(cfg: Any) -> dict:
    """The config as plain data (without internal fields), e.g. for MLflow params."""
    out = {}
    for f in dataclasses.fields(cfg):
        if f.metadata.get("internal"):
            continue
        v = getattr(cfg, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else v
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
