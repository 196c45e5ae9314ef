"""One typed default configuration with strict overrides.

``params.yaml`` (what DVC tracks) is merged onto the dataclass defaults below: an unknown key is an
error that lists the valid ones, and a value of the wrong type is an error that names the key and the
expected type. Command-line overrides (``-o train.iterations=10``) go through the same checks.

Paths in the config are relative to the directory that holds the params file (the DVC stage's
working directory), never absolute in the files we ship.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from uplr.errors import UplrError


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

    dataset: str = "gta5"
    root: str = "data/embedded/source"
    split: str = "all"
    size: list[int] = field(default_factory=lambda: [256, 128])
    city: str = ""  # NTHU Cross-City only: Rome, Rio, Tokyo or Taipei
    strict: bool = False  # True: an unusable listed frame is an error instead of a logged skip


@dataclass
class TargetConfig(DomainConfig):
    dataset: str = "cityscapes"
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

    trunk: str = "resnet18"  # resnet101 (paper) | resnet18 | resnet18_half (CPU runs: half-width ResNet-18)
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
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA; ignored on the CPU
    deterministic: bool = True


@dataclass
class AdversarialConfig:
    """AA: output-space adversarial adaptation (AdaptSegNet; ADVENT's self-information input as an option)."""

    d_input: str = "softmax"  # softmax | self_information (ADVENT)
    ndf: int = 64  # discriminator width: 64-128-256-512-1 (the peers'); the embedded benchmark uses 16
    d_lr: float = 1e-4
    d_betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    lambda_adv_main: float = 0.001
    lambda_adv_aux: float = 0.0002


@dataclass
class TranslateConfig:
    """IT: image translation of the source set into the target style."""

    method: str = "fda"  # fda (built in) | external (a translated copy made elsewhere, e.g. CycleGAN)
    beta: float = 0.01  # FDA window side = floor(min(H, W) * beta)
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
    nan_policy: str = "first"  # classes never predicted on the target rank as most uncertain
    init: str = "sr"  # sr: continue the +SR model (the paper's chain) | scratch: train from model.init
    iterations: int = 150  # with init sr: steps added to the +SR model (scratch: train.iterations)
    lr_schedule: str = "continue"  # continue: the chain's poly schedule goes on | restart: from train.lr


@dataclass
class UPSTConfig:
    """UPST: uncertainty-aware pseudo labels (per-class GMM on entropy) and self-training."""

    method: str = "gmm"  # gmm (UPLR) | threshold | bdl | cbst
    bins: int = 2048  # entropy / confidence histogram bins (streamed statistics)
    threshold: float = 0.9
    bdl_cap: float = 0.9
    cbst_portion: float = 0.2
    rounds: int = 1  # pseudo-label + self-training rounds
    iterations: int = 300  # self-training iterations per round
    lr_schedule: str = "continue"  # continue: the chain's poly schedule goes on from the +TGAA model | restart
    save_confidence: bool = False  # also write float16 confidence maps next to the labels
    quality_methods: list[str] = field(default_factory=lambda: ["gmm", "threshold", "bdl", "cbst"])


@dataclass
class EvaluateConfig:
    batch_size: int = 4
    checkpoint: str = "last"  # which snapshot is scored and reported: the last one
    save_predictions: bool = True


@dataclass
class TrackingConfig:
    experiment: str = "uplr-embedded"


@dataclass
class Config:
    benchmark: str = "embedded"
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


def _check_value(value: Any, tp: Any, where: str, source: str) -> Any:
    """Return ``value`` converted to ``tp`` when that is lossless, else raise a UplrError."""
    origin = typing.get_origin(tp)
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


BENCHMARKS = ("embedded", "gta5_cityscapes", "synthia_cityscapes", "cityscapes_nthu")


def _validate(cfg: Config, source: str) -> None:
    """Checks on values (types are checked while merging)."""
    if cfg.benchmark not in BENCHMARKS:
        raise UplrError(f"{source}: `benchmark` is {cfg.benchmark!r}, which names no known pipeline; valid: "
                        f"{', '.join(BENCHMARKS)} (each has its dvc.yaml: the root one, or pipelines/<benchmark>/)")


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
    _validate(cfg, str(params) if params is not None else "overrides")
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
