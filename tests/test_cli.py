"""The command line: one clear line and a non-zero exit for bad input, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


def uplr(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "uplr.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_help_lists_subcommands_and_each_has_help():
    out = uplr("--help").stdout
    for cmd in ("generate", "data", "train", "translate", "class-stats", "pseudo", "evaluate", "tables"):
        assert cmd in out
        assert uplr(*cmd.split(), "--help").returncode == 0


@pytest.mark.slow
def test_data_check_reports_problems_with_exit_status(tmp_path):
    from fakes import make_fake_cityscapes

    lst = make_fake_cityscapes(tmp_path / "cs", split="val", n=3)
    ok = uplr("data", "check", "cityscapes", "--root", str(tmp_path / "cs"), "--split", str(lst))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    victim = next((tmp_path / "cs/gtFine/val").rglob("*_labelIds.png"))
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    bad = uplr("data", "check", "cityscapes", "--root", str(tmp_path / "cs"), "--split", str(lst))
    assert bad.returncode == 1 and victim.name in bad.stdout
    missing = uplr("data", "check", "gta5", "--root", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_bad_params_fail_before_anything_runs(tmp_path):
    (tmp_path / "params.yaml").write_text("benchmark: gta5_to_mars\n")
    r = uplr("train", "--row", "source_only", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "names no known pipeline" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "params.yaml").write_text("train: {iterations: many}\n")
    r = uplr("train", "--row", "source_only", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2 and "`train.iterations` must be an integer" in r.stderr
    assert not (tmp_path / "o").exists()


def test_evaluate_folder_writes_json(tmp_path):
    gt = FIXTURES / "samples/cityscapes/gtFine/val"
    label = next(gt.rglob("*_gtFine_labelIds.png"))
    pred = tmp_path / "pred" / label.name.replace("_gtFine_labelIds", "_leftImg8bit")
    pred.parent.mkdir()
    h, w = np.asarray(Image.open(label)).shape
    Image.fromarray(np.zeros((h, w), np.uint8)).save(pred)  # everything "road"
    r = uplr("evaluate", "--pred-dir", str(tmp_path / "pred"), "--gt-dir", str(gt), "--out", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n_images"] == 1 and result["iou"]["road"] is not None and 0 < result["iou"]["road"] < 1
