"""The cost model: FLOP and memory measurement of one training iteration, and the GPU-hour estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from uplr.config import load_config
from uplr.errors import UplrError
from uplr.report import cost as R
from uplr.train import cost as C

REPO = Path(__file__).resolve().parents[1]


def test_gpu_hours_hand_computed():
    # 120,000 iterations x 1 TFLOP / (990 TFLOP/s x 0.5) = 242.42 s = 0.06734 h
    assert R.gpu_hours(120_000, 1e12, 0.5) == pytest.approx(242.4242 / 3600, rel=1e-5)
    # 10 iterations of 99 TFLOP at 100 % of a 990 TFLOP/s peak: 1 s
    assert R.gpu_hours(10, 99e12, 1.0) == pytest.approx(1 / 3600)
    assert R.gpu_hours(10, 99e12, 0.35) == pytest.approx(1 / 3600 / 0.35)
    with pytest.raises(UplrError, match="utilisation"):
        R.gpu_hours(1, 1.0, 0.0)


def test_live_tensor_bytes_counts_peak_and_frees():
    with C.LiveTensorBytes() as mem:
        a = torch.zeros(1000)  # 4,000 bytes
        b = a + 1  # 8,000 live
        v = b[:10]  # a view: no new storage
        b.add_(1)  # in place: no new storage
        del a  # 4,000 live
        c = torch.zeros(500)  # 6,000 live; the peak stays 8,000
    assert mem.peak == 8000
    assert mem.current == 6000
    del v, b, c


def _tiny_cfg(tmp_path: Path, src=(64, 48), tgt=(64, 48)):
    p = tmp_path / "params.yaml"
    p.write_text("")
    return load_config(p, [
        "model.trunk=resnet18", "model.freeze_bn=false", "model.init=scratch", "train.batch_size=1",
        f"data.source.size=[{src[0]},{src[1]}]", f"data.target.size=[{tgt[0]},{tgt[1]}]",
    ])


def test_row_shapes():
    cfg = load_config(REPO / "pipelines/gta5_cityscapes/params.yaml")
    assert C.row_shape(cfg, "source_only") == {"labeled": (720, 1280), "target": None, "pseudo": None,
                                               "adversarial": False}
    assert C.row_shape(cfg, "oracle")["labeled"] == (512, 1024)
    assert C.row_shape(cfg, "tgaa") == {"labeled": (720, 1280), "target": (512, 1024), "pseudo": None,
                                        "adversarial": True}
    assert C.row_shape(cfg, "upst")["pseudo"] == (512, 1024)
    assert C.shape_key(cfg, "aa") == C.shape_key(cfg, "sr") != C.shape_key(cfg, "source_only")
    with pytest.raises(ValueError):
        C.row_shape(cfg, "bogus")


def test_measure_row_relations(tmp_path):
    """Backward costs about twice the forward; AA adds a target forward/backward and the discriminators."""
    torch.set_num_threads(1)
    cfg = _tiny_cfg(tmp_path)
    so = C.measure_row(cfg, "source_only")
    aa = C.measure_row(cfg, "aa")
    up = C.measure_row(cfg, "upst")
    inf = so["inference_flops_per_target_image"]
    assert inf > 0
    # same source and target size: forward + backward of one image is 2-3x its forward (conv1 has no
    # input gradient, so a little under 3x)
    assert 2.5 * inf < so["flops_per_iteration"] < 3.0 * inf
    # AA: + target forward and backward (the adversarial gradient) + discriminators: more than twice
    assert aa["flops_per_iteration"] > 2 * so["flops_per_iteration"]
    # UPST = AA + one more labelled target image (the pseudo labels): AA + the source-only iteration
    assert up["flops_per_iteration"] == pytest.approx(aa["flops_per_iteration"] + so["flops_per_iteration"], rel=1e-6)
    assert aa["discriminator_weight_bytes"] > 0 and so["discriminator_weight_bytes"] == 0
    assert 0 < so["peak_step_bytes"] < aa["peak_step_bytes"]
    # FLOPs grow with the pixels: 4x the pixels, about 4x the FLOPs (less on tiny maps: the stride-8
    # feature maps round up, 6x8 -> 12x16 is not exactly 4x the work of the strided stem)
    big = C.measure_row(_tiny_cfg(tmp_path, src=(128, 96)), "source_only")
    assert 3.2 < big["flops_per_iteration"] / so["flops_per_iteration"] < 4.2


def test_stage_runs_counts_foreach_and_matrix(tmp_path):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  a: {cmd: x}\n"
        "  b: {foreach: '${seeds}', do: {cmd: x}}\n"
        "  c: {matrix: {city: '${cities}', seed: '${seeds}'}, cmd: x}\n"
        "  d: {foreach: [1, 2], do: {cmd: x}}\n")
    runs = R.stage_runs(tmp_path / "dvc.yaml", {"seeds": [0, 1, 2], "cities": ["Rome", "Rio"]})
    assert runs == {"a": 1, "b": 3, "c": 6, "d": 2}


def _measured(tmp_path: Path) -> Path:
    from uplr.experiments import ROWS

    rows = ("source_only", "oracle", "aa", "it", "sr", "tgaa", "upst")
    rows += tuple(r for r in ROWS if r not in rows)  # the grid's controls and variants
    costs = {r: {"flops_per_iteration": 1e12 * (k + 1), "inference_flops_per_target_image": 0.5e12,
                 "peak_step_bytes": 1, "weight_bytes": 1} for k, r in enumerate(rows)}
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"costs": costs, "when": "t", "trunk": "resnet101", "benchmark": "gta5_cityscapes",
                             "source_size": [1280, 720], "target_size": [1024, 512]}))
    return p


def test_schedule_uses_the_pipeline_and_its_params(tmp_path):
    measured = R.load_measured(_measured(tmp_path))
    items, notes = R.schedule(REPO, "gta5_cityscapes", measured)
    by = {i.stage: i for i in items}
    so = by["train_source_only"]
    assert (so.runs, so.units, so.flops_per_unit) == (3, 120_000, 1e12)  # 3 seeds, params.yaml iterations
    assert by["train_upst"].flops_per_unit == 7e12
    assert by["train_tgaa"].units == 40_000  # tgaa.iterations: steps added to the +SR model
    ev = by["evaluations (val, every row)"]
    import yaml

    n_eval = sum(k.startswith("evaluate_") for k in yaml.safe_load(
        (REPO / "pipelines/gta5_cityscapes/dvc.yaml").read_text())["stages"])
    assert (ev.runs, ev.units) == (3 * n_eval, 500)  # every evaluated row x 3 seeds, 500 Cityscapes val images
    text = R.format_report("gta5_cityscapes", items, notes, measured)
    assert text.startswith("ESTIMATE")
    assert "not verified by us" in text and "ProDA" in text
    # the source-only line: 3 x 120,000 x 1 TFLOP at 35 % of 990 TFLOP/s
    line = next(x for x in text.splitlines() if x.startswith("train_source_only"))
    assert f"{R.gpu_hours(360_000, 1e12, 0.35):.2f}" in line.split()  # 0.29
    # Cross-City: rows per city and seed (4 cities x 3 seeds), source-only per seed
    items, _ = R.schedule(REPO, "cityscapes_nthu", measured)
    by = {i.stage: i.runs for i in items}
    assert by["train_source_only"] == 3 and by["train_tgaa"] == 12


def test_cost_cli_errors(tmp_path, capsys):
    from uplr.cli import main

    assert main(["cost", "gta5_cityscapes", "--measured", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "none.json" in err and "SMOKE=1" in err and "Traceback" not in err
    assert main(["cost", "gta5_cityscapes", "--measured", str(_measured(tmp_path))]) == 0
    assert capsys.readouterr().out.startswith("ESTIMATE")
    # measured for another benchmark / at other sizes: refused
    assert main(["cost", "synthia_cityscapes", "--measured", str(_measured(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "[1280, 720]" in err and "[1280, 760]" in err and "SMOKE=1" in err


def test_meta_measurement_equals_the_computed_one(tmp_path):
    """The meta device (shapes only, the default) gives the same FLOPs and tensor bytes as computing."""
    torch.set_num_threads(1)
    cfg = _tiny_cfg(tmp_path)
    for row in ("source_only", "aa"):
        cpu, meta = C.measure_row(cfg, row, "cpu"), C.measure_row(cfg, row, "meta")
        for key in ("flops_per_iteration", "peak_step_bytes", "inference_flops_per_target_image", "weight_bytes"):
            assert cpu[key] == meta[key], (row, key)
    assert float(torch.ones(1)) == 1.0  # the meta shims are undone
