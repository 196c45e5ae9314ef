"""``make reproduce ... SMOKE=1`` in small: the real GTA5 -> Cityscapes pipeline, every stage, on 2 images.

The same code path as the smoke run (uplr/smoke.py) with frames and crops scaled by 1/8 (GTA5 frames
240x128 instead of 1914x1052, crops 160x88 / 128x64): a temporary git + DVC copy of the repository,
real-format fakes and a random-weights ResNet-101 in the peers' init layout ``dvc add``-ed, the
unchanged pipelines/gta5_cityscapes/dvc.yaml run stage by stage, then a ``dvc repro`` that must find
nothing to do. Checked: every stage of the dvc.yaml ran and was measured, the per-row cost was
measured and reached the training stages' MLflow runs, the evaluations wrote their metrics.
A few minutes on two busy cores (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = "gta5_cityscapes"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    if not (Path(sys.executable).parent / "dvc").exists():
        pytest.skip("dvc is not installed in this environment")
    tmp = tmp_path_factory.mktemp("smoke")
    work, out = tmp / "work", tmp / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "uplr.smoke", BENCH, "--images", "2", "--val-images", "2",
                           "--scale", "0.125", "--workdir", str(work), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work, json.loads(out.read_text()), proc.stdout


def _expanded_stages(folder: Path) -> set[str]:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    names = set()
    for name, st in yaml.safe_load((folder / "dvc.yaml").read_text())["stages"].items():
        names |= {f"{name}@{s}" for s in params["seeds"]} if "foreach" in st else {name}
    return names


@pytest.mark.slow
def test_every_stage_ran_and_was_measured(smoke):
    work, summary, stdout = smoke
    folder = work / "pipelines" / BENCH
    ran = [s for s in summary["stages"] if not s["stage"].startswith("(")]
    assert {s["stage"] for s in ran} == _expanded_stages(folder)
    assert all(s["returncode"] == 0 and s["seconds"] > 0 and s["peak_rss_mib"] > 50 for s in summary["stages"])
    assert summary["trunk"] == "resnet101" and summary["iterations"] == 2
    # the copy's dvc.yaml is the repository's, byte for byte
    assert (folder / "dvc.yaml").read_text() == (REPO / "pipelines" / BENCH / "dvc.yaml").read_text()
    for row in ("source_only", "oracle", "aa", "it", "sr", "tgaa", "upst"):
        m = json.loads((folder / f"metrics/{row}/seed0.json").read_text())
        assert m["n_images"] == 2, row
    assert (folder / "reports").is_dir()
    assert "train_tgaa@0" in stdout and "peak RSS MiB" in stdout


@pytest.mark.slow
def test_the_init_is_the_peers_layout_and_the_data_real_formats(smoke):
    import cv2
    import torch
    from PIL import Image

    work, summary, _ = smoke
    init = torch.load(work / "weights/DeepLab_resnet_pretrained_imagenet.pth", weights_only=True)
    assert all(k.startswith("Scale.") for k in init)
    assert init["Scale.layer5.conv2d_list.0.weight"].shape[0] == 21  # a foreign classifier, skipped
    lab = Image.open(work / "datasets/GTA5/labels/00001.png")
    assert lab.mode == "P" and lab.size == (240, 128)
    assert Image.open(work / "datasets/Cityscapes/leftImg8bit/train/frankfurt/frankfurt_000000_000019_leftImg8bit.png"
                      ).size == (256, 128)
    assert cv2.imread(str(work / "datasets/Cityscapes/gtFine/train/frankfurt/"
                                 "frankfurt_000000_000019_gtFine_labelIds.png"), cv2.IMREAD_UNCHANGED).ndim == 2


@pytest.mark.slow
def test_costs_reach_the_run_folders_and_mlflow(smoke):
    import mlflow

    work, summary, _ = smoke
    costs = summary["costs"]
    stages = yaml.safe_load((work / "pipelines" / BENCH / "dvc.yaml").read_text())["stages"]
    assert set(costs) == {k[len("train_"):] for k in stages if k.startswith("train_")}  # every training row
    assert {"source_only", "oracle", "aa", "it", "sr", "tgaa", "upst"} <= set(costs)
    assert costs["sr"]["same_shapes_as"] == "aa"  # same streams and sizes: measured once
    assert costs["aa"]["flops_per_iteration"] > costs["source_only"]["flops_per_iteration"] > 0
    folder = work / "pipelines" / BENCH
    assert json.loads((folder / "runs/tgaa/seed0/cost.json").read_text())["flops_per_iteration"] == \
        costs["tgaa"]["flops_per_iteration"]
    client = mlflow.MlflowClient(f"sqlite:///{work}/mlflow.db")
    exp = client.get_experiment_by_name(f"uplr-{BENCH}")
    runs = {r.data.tags.get("uplr.dvc_stage"): r for r in client.search_runs([exp.experiment_id], max_results=500)}
    assert runs["train_aa@0"].data.metrics["cost/flops_per_iteration"] == costs["aa"]["flops_per_iteration"]
    assert all(c["logged_to_mlflow"] for c in costs.values())


@pytest.mark.slow
def test_uplr_cost_reads_the_summary(smoke, tmp_path):
    work, summary, _ = smoke
    uplr = str(Path(sys.executable).parent / "uplr")
    out = tmp_path / "m.json"
    out.write_text(json.dumps(summary))
    # measured at reduced crops: refused for the paper's schedule
    proc = subprocess.run([uplr, "cost", BENCH, "--measured", str(out)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "[160, 88]" in proc.stderr and "Traceback" not in proc.stderr
    # the same figures against the copy's params (the reduced crops): priced
    proc = subprocess.run([uplr, "cost", BENCH, "--measured", str(out)], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ESTIMATE") and "train_upst" in proc.stdout and "not verified" in proc.stdout
