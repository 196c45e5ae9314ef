"""Config validation: every numeric range and closed set is checked at load, naming the dotted parameter."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import numpy as np
import pytest

from uplr import config as C
from uplr.config import RANGES, Range, check_k_present, choices, load_config, validation_errors
from uplr.errors import UplrError

REPO = Path(__file__).resolve().parents[1]


def _violating(rng: Range) -> list[float]:
    """Values just outside ``rng`` (and a non-finite one)."""
    out = [math.nan]
    if rng.lo is not None:
        out.append(rng.lo if rng.lo_open else rng.lo - 1)
    if rng.hi is not None:
        out.append(rng.hi if rng.hi_open else rng.hi + 1)
    return out


def _override(key: str, value) -> str:
    """An override that puts ``value`` where ``key`` (maybe ``name[]``) points."""
    if key.endswith("[]"):
        name = key[:-2]
        current = list(C._get(C.Config(), name))
        current[0] = value
        return f"{name}={current}".replace("nan", ".nan")
    return f"{key}={'.nan' if isinstance(value, float) and math.isnan(value) else value}"


def _is_int(key: str) -> bool:
    v = C._get(C.Config(), key[:-2] if key.endswith("[]") else key)
    v = v[0] if isinstance(v, list) else v
    return isinstance(v, int) and not isinstance(v, bool)


CASES = [(k, v) for k, rng in RANGES.items() for v in _violating(rng) if not (math.isnan(v) and _is_int(k))]


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_every_range_is_checked_and_named(key, value):
    if _is_int(key):
        value = int(value)
    name = key[:-2] + "[0]" if key.endswith("[]") else key
    with pytest.raises(UplrError) as e:
        load_config(None, [_override(key, value)])
    msg = str(e.value)
    assert f"`{name}`" in msg and "\n" not in msg and "must be" in msg


@pytest.mark.parametrize("key", [k for k in RANGES if not k.endswith("[]")])
def test_range_bounds_themselves_are_accepted(key):
    rng = RANGES[key]
    if rng.lo is not None and not rng.lo_open:
        value = rng.lo
    elif rng.hi is not None and not rng.hi_open:
        value = rng.hi
    else:
        value = (rng.lo if rng.lo is not None else 0) + 0.5 if not _is_int(key) else (rng.lo or 0) + 1
    load_config(None, [f"{key}={value}"])  # no error


def test_range_describes_itself():
    assert str(Range(0, lo_open=True)) == "> 0"
    assert str(Range(0, 1, lo_open=True)) == "in (0, 1]"
    assert str(Range(0, 1, hi_open=True)) == "in [0, 1)"
    assert str(Range(2)) == ">= 2"
    assert 1 in Range(0, 1, lo_open=True) and 0 not in Range(0, 1, lo_open=True)
    assert math.inf not in Range() and math.nan not in Range(0)


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ("train.batch_size=0", "train.batch_size"),
        ("train.checkpoint_every=0", "train.checkpoint_every"),
        ("evaluate.batch_size=0", "evaluate.batch_size"),
        ("train.iterations=-5", "train.iterations"),
        ("tgaa.stages=0", "tgaa.stages"),
        ("tgaa.k=-1", "tgaa.k"),
        ("tgaa.k=50", "tgaa.k"),
        ("model.num_classes=5", "model.num_classes"),
        ("train.lr=.inf", "train.lr"),
        ("upst.cbst_portion=0", "upst.cbst_portion"),
        ("upst.bins=1", "upst.bins"),
        ("translate.beta=1.0", "translate.beta"),
        ("data.source.size=[0, 32]", "data.source.size[0]"),
        ("data.target.size=[64]", "data.target.size"),
        ("data.num_workers=-1", "data.num_workers"),
    ],
)
def test_the_issue_cases_name_the_parameter(override, name):
    with pytest.raises(UplrError) as e:
        load_config(None, [override])
    msg = str(e.value)
    assert f"`{name}`" in msg and "top_k_uncertain" not in msg and "\n" not in msg
    assert override in msg  # where it came from


def test_a_bad_value_in_the_params_file_names_the_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train: {batch_size: 0}\n")
    with pytest.raises(UplrError, match=r"params\.yaml: `train\.batch_size` is 0, but it must be an integer > 0"):
        load_config(p)
    # an override can repair it: validation runs once, on the merged result
    assert load_config(p, ["train.batch_size=2"]).train.batch_size == 2


def test_several_problems_are_all_listed_on_one_line():
    with pytest.raises(UplrError) as e:
        load_config(None, ["train.batch_size=0", "train.log_every=0"])
    msg = str(e.value)
    assert "`train.batch_size`" in msg and "`train.log_every`" in msg and "1 more problem" in msg


CLOSED = [
    ("model.trunk", "resnet50", C.Trunk),
    ("train.device", "gpu", C.Device),
    ("upst.method", "otsu", C.PseudoMethod),
    ("adversarial.d_input", "logits", C.DInput),
    ("translate.method", "cyclegan", C.TranslateMethod),
    ("evaluate.checkpoint", "best", C.CheckpointChoice),
    ("tgaa.init", "imagenet", C.TgaaInit),
    ("upst.lr_schedule", "cosine", C.LrSchedule),
    ("tgaa.nan_policy", "middle", C.NanPolicy),
    ("data.source.dataset", "kitti", C.DatasetName),
    ("data.target.dataset", "GTA5", C.DatasetName),
    ("benchmark", "gta5_to_mars", C.Benchmark),
    ("upst.quality_methods", "[gmm, otsu]", C.PseudoMethod),
]


@pytest.mark.parametrize(("key", "value", "closed"), CLOSED, ids=[c[0] for c in CLOSED])
def test_closed_sets_list_their_values(key, value, closed):
    with pytest.raises(UplrError) as e:
        load_config(None, [f"{key}={value}"])
    msg = str(e.value)
    assert f"`{key}" in msg and all(repr(v) in msg for v in choices(closed)) and "\n" not in msg


def test_closed_sets_agree_with_the_code_that_uses_them():
    from uplr.data.datasets import DATASETS
    from uplr.method.pseudo import SELECTORS
    from uplr.method.uncertainty import NAN_POLICIES
    from uplr.model.deeplab import TRUNKS

    assert set(choices(C.Trunk)) == set(TRUNKS)
    assert set(choices(C.DatasetName)) == set(DATASETS)
    assert set(choices(C.PseudoMethod)) == set(SELECTORS)
    assert set(choices(C.NanPolicy)) == set(NAN_POLICIES)
    assert set(choices(C.Benchmark)) == set(C.BENCHMARKS)
    hints = typing.get_type_hints(C.ModelConfig)
    assert hints["trunk"] is C.Trunk


def test_an_integer_is_not_a_closed_set_string():
    with pytest.raises(UplrError, match="is not valid"):
        load_config(None, ["model.trunk=18"])


@pytest.mark.parametrize("params", [None, REPO / "params.yaml", *sorted((REPO / "pipelines").glob("*/params.yaml"))],
                         ids=lambda p: "defaults" if p is None else str(Path(p).relative_to(REPO)))
def test_defaults_and_shipped_params_are_valid(params):
    cfg = load_config(params)
    assert validation_errors(cfg) == []


def test_tgaa_k_above_the_classes_present_is_an_error():
    counts = np.zeros((3, 19), dtype=np.int64)
    counts[:, :4] = 10  # four classes have source pixels
    check_k_present(4, counts)
    with pytest.raises(UplrError, match=r"`tgaa\.k` is 5, but only 4 of 19 classes have source pixels"):
        check_k_present(5, counts, "stats.npz")
    with pytest.raises(UplrError, match="tgaa.k"):
        check_k_present(0, counts)


def test_tgaa_stages_cannot_exceed_iterations_in_a_tgaa_run():
    from uplr.config import check_tgaa

    counts = np.ones((2, 19), dtype=np.int64)
    cfg = load_config(None, ["tgaa.init=scratch", "train.iterations=4", "tgaa.stages=5"])  # other rows do not care
    with pytest.raises(UplrError, match=r"`tgaa\.stages` is 5, more than `train\.iterations` \(4\)"):
        check_tgaa(cfg, counts)
    cfg = load_config(None, ["tgaa.iterations=4", "tgaa.stages=5"])  # continuing the +SR model: its steps
    with pytest.raises(UplrError, match=r"`tgaa\.stages` is 5, more than `tgaa\.iterations` \(4\)"):
        check_tgaa(cfg, counts)
    check_tgaa(load_config(None, ["tgaa.iterations=5", "tgaa.stages=5"]), counts)


def test_exponent_floats_are_numbers_as_in_yaml_1_2(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("train: {lr: 1e-4}\nadversarial: {d_lr: 2E-4}\n")
    cfg = load_config(p, ["upst.threshold=9e-1"])
    assert (cfg.train.lr, cfg.adversarial.d_lr, cfg.upst.threshold) == (1e-4, 2e-4, 0.9)
    with pytest.raises(UplrError, match="must be an integer"):
        load_config(None, ["train.iterations=1e3"])  # an integer field stays strict
    with pytest.raises(UplrError, match="must be a number"):
        load_config(None, ["train.lr=fast"])
