"""Issue 11, the inputs half: every hostile input ends in one line, a non-zero exit and no traceback.

Each test is one case of the issue (bad parameters, a truncated PNG read by a DataLoader worker, a
read-only output folder, a full disk, unusable frames, leftovers of a killed run, the ignore label).
They run the real command line: in-process through ``uplr.cli.main`` where a monkeypatch simulates
the file system, as a subprocess where it must be the real thing (a read-only mount and a full tmpfs
inside ``unshare -rm``, skipped where that is refused).
"""

from __future__ import annotations

import errno
import io
import os
import shlex
import subprocess
import sys
import tempfile
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch

from uplr import cli
from uplr.errors import UplrError

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
GT = FIXTURES / "samples/cityscapes/gtFine/val"


def run_cli(capsys, *args: str) -> tuple[int, str]:
    """``uplr ARGS`` in-process: (exit status, stderr)."""
    capsys.readouterr()
    code = cli.main(list(args))
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("uplr: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def uplr(*args: str, cwd: Path | None = None, prefix: str | None = None,
         env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "uplr.cli", *args]
    if prefix is not None:
        cmd = ["unshare", "-rm", "sh", "-c", f"{prefix} && exec {shlex.join(cmd)}"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})


def have_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def prediction_folder(tmp_path: Path) -> Path:
    """One trainId prediction for the packaged Cityscapes sample (for `uplr evaluate --pred-dir`)."""
    from PIL import Image

    label = next(GT.rglob("*_gtFine_labelIds.png"))
    pred = tmp_path / "pred" / label.name.replace("_gtFine_labelIds", "_leftImg8bit")
    pred.parent.mkdir(parents=True)
    h, w = np.asarray(Image.open(label)).shape
    Image.fromarray(np.zeros((h, w), np.uint8)).save(pred)
    return pred.parent


# ----------------------------------------------------------------------------------------------------
# 1. parameters: checked at load, named, before anything runs


ISSUE_PARAMS = ["train.batch_size=0", "train.checkpoint_every=0", "evaluate.batch_size=0", "model.num_classes=5",
                "train.iterations=-5", "tgaa.stages=0", "tgaa.k=-1", "tgaa.k=50"]


@pytest.mark.parametrize("override", ISSUE_PARAMS)
def test_bad_parameter_is_one_line_naming_it_and_nothing_runs(override, tiny_params, tracking, capsys):
    out = tiny_params.parent / "runs/o"
    code, err = run_cli(capsys, "train", "--row", "source_only", "--out", str(out), "--params", str(tiny_params),
                        "-o", override)
    line = one_line_error(err)
    assert code == 2 and f"`{override.split('=')[0]}`" in line and "top_k_uncertain" not in line
    assert not out.exists()


def test_bad_parameter_through_the_real_cli(tiny_params):
    r = uplr("class-stats", "--out", "s.npz", "-o", "tgaa.k=-1", cwd=tiny_params.parent)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "`tgaa.k` is -1, but it must be an integer >= 1" in r.stderr


# ----------------------------------------------------------------------------------------------------
# 2. a truncated PNG read in a DataLoader worker


def _truncate_images(folder: Path) -> list[Path]:
    images = sorted(folder.glob("*.png"))
    for img in images:
        img.write_bytes(img.read_bytes()[:200])  # the header survives the scan; decoding fails
    return images


def test_truncated_png_in_a_dataloader_worker_is_one_uplr_error(tmp_path):
    from fakes import make_fake_gta5

    from uplr.data.datasets import build_dataset

    lst = make_fake_gta5(tmp_path, n=2)
    images = _truncate_images(tmp_path / "images")
    ds = build_dataset("gta5", tmp_path, str(lst))
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    with pytest.raises(UplrError) as e:
        list(loader)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and "truncated" in msg
    assert any(str(p) in msg for p in images) and "DataLoader worker process" in msg


def test_truncated_png_with_workers_through_the_real_cli(tiny_params, tracking):
    images = _truncate_images(tiny_params.parent / "data/src/images")
    r = uplr("train", "--row", "source_only", "--out", "runs/o", "-o", "data.num_workers=2",
             "-o", "train.iterations=2", cwd=tiny_params.parent)
    assert r.returncode == 2, r.stderr[-2000:]
    line = one_line_error(r.stderr)
    assert any(p.name in line for p in images) and "re-download" in line
    assert not (tiny_params.parent / "runs/o/model.pt").exists()


# ----------------------------------------------------------------------------------------------------
# 3. a read-only output folder, 4. a full disk


def test_read_only_output_folder_is_one_line(tmp_path, capsys, monkeypatch):
    pred = prediction_folder(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def refuse(*a, **kw):
        if Path(kw.get("dir", "")) == ro:
            raise PermissionError(errno.EACCES, "Permission denied", str(ro / ".r.json.tmp"))
        return real(*a, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, err = run_cli(capsys, "evaluate", "--pred-dir", str(pred), "--gt-dir", str(GT), "--out", str(ro / "r.json"))
    line = one_line_error(err)
    assert code == 2 and str(ro / "r.json") in line and "make the folder writable" in line


def test_full_disk_is_one_line_and_leaves_no_temp(tmp_path, capsys, monkeypatch):
    pred = prediction_folder(tmp_path)
    out = tmp_path / "out"
    real = Path.write_text

    def full(self, *a, **kw):
        if self.name.endswith(".tmp"):
            real(self, "{", encoding="utf-8")  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "write_text", full)
    code, err = run_cli(capsys, "evaluate", "--pred-dir", str(pred), "--gt-dir", str(GT), "--out", str(out / "r.json"))
    line = one_line_error(err)
    assert code == 2 and str(out / "r.json") in line and "free disk space" in line
    assert list(out.iterdir()) == []  # neither the output nor its temporary file


def test_torch_and_numpy_write_failures_are_explained(tmp_path):
    from uplr.io import write_error

    err = write_error(RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed "
                                   "writing file data/0: file write failed"), tmp_path / "model.pt")
    assert isinstance(err, UplrError) and str(tmp_path / "model.pt") in str(err)
    assert write_error(RuntimeError("some other bug"), tmp_path / "model.pt") is None
    assert write_error(OSError(errno.ENOENT, "No such file"), tmp_path / "x") is None  # not a write problem


@pytest.mark.skipif(not have_unshare(), reason="unshare -rm (a private mount namespace) is refused here")
def test_real_read_only_mount_and_full_tmpfs(tmp_path):
    pred = prediction_folder(tmp_path)
    ro, full = tmp_path / "ro", tmp_path / "full"
    ro.mkdir()
    full.mkdir()
    q = shlex.quote
    r = uplr("evaluate", "--pred-dir", str(pred), "--gt-dir", str(GT), "--out", str(ro / "r.json"),
             prefix=f"mount --bind {q(str(ro))} {q(str(ro))} && mount -o remount,bind,ro {q(str(ro))}")
    line = one_line_error(r.stderr)
    assert r.returncode == 2 and "read-only" in line and str(ro / "r.json") in line
    r = uplr("evaluate", "--pred-dir", str(pred), "--gt-dir", str(GT), "--out", str(full / "r.json"),
             prefix=f"mount -t tmpfs -o size=64k tmpfs {q(str(full))} && "
                    f"(dd if=/dev/zero of={q(str(full))}/filler bs=4k 2>/dev/null; true)")
    line = one_line_error(r.stderr)
    assert r.returncode == 2 and "free disk space" in line and str(full / "r.json") in line


# ----------------------------------------------------------------------------------------------------
# 5. missing and size-mismatched frames


def test_unusable_frames_count_in_data_checks_exit_status(tmp_path, capsys):
    from fakes import make_fake_gta5, write_palette_png

    lst = make_fake_gta5(tmp_path, n=4)
    base = ["data", "check", "gta5", "--root", str(tmp_path), "--split", str(lst)]
    assert run_cli(capsys, *base)[0] == 0
    (tmp_path / "images/00002.png").unlink()
    write_palette_png(tmp_path / "labels/00003.png", np.zeros((31, 64), dtype=np.uint8))
    assert run_cli(capsys, *base)[0] == 3  # usable, but two frames would be skipped
    assert run_cli(capsys, *base, "--strict")[0] == 1


def test_unusable_frame_under_strict_stops_training_with_one_line(tiny_params, tracking, capsys):
    (tiny_params.parent / "data/src/images/00002.png").unlink()
    out = tiny_params.parent / "runs/o"
    code, err = run_cli(capsys, "train", "--row", "source_only", "--out", str(out), "--params", str(tiny_params),
                        "-o", "data.source.strict=true", "-o", "train.iterations=1")
    line = one_line_error(err)
    assert code == 2 and "00002.png" in line and not out.exists()


# ----------------------------------------------------------------------------------------------------
# 6. leftovers of a killed run are removed by the stage that owns them


def test_temp_names_are_tied_to_their_target(tmp_path):
    from uplr.io import atomic_dir, atomic_path, stale_temps, sweep_stale

    with atomic_path(tmp_path / "a") as tmp:
        assert stale_temps(tmp_path / "a") == [tmp] and stale_temps(tmp_path / "a.b") == []
        tmp.write_text("x")
    for name in (".a.k2j4h1ab.tmp", ".a.uplr-zz9.tmp", ".a.old", ".a.b.uplr-zz9.tmp", ".ab.uplr-zz9.tmp"):
        (tmp_path / name).write_text("half")
    assert sweep_stale(tmp_path / "a") == [tmp_path / n for n in (".a.k2j4h1ab.tmp", ".a.old", ".a.uplr-zz9.tmp")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.b.uplr-zz9.tmp", ".ab.uplr-zz9.tmp", "a"]
    (tmp_path / ".d.q8w7e6r5.tmp").mkdir()
    with atomic_dir(tmp_path / "d") as tmp:  # a folder output sweeps its own leftovers first
        assert not (tmp_path / ".d.q8w7e6r5.tmp").exists()
        (tmp / "f").write_text("x")
    assert (tmp_path / "d/f").is_file()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mlflow_uri):
    """A 2-iteration source-only model on the tiny fake data (for evaluate and pseudo)."""
    from fakes import make_fake_cityscapes, make_fake_gta5

    ws = tmp_path_factory.mktemp("ws")
    make_fake_gta5(ws / "data/src", n=4, size=(64, 32), seed=1)
    make_fake_cityscapes(ws / "data/tgt", split="train", n=2, size=(64, 32), seed=2)
    make_fake_cityscapes(ws / "data/tgt", split="val", n=2, size=(64, 32), seed=3)
    params = ws / "params.yaml"
    params.write_text(
        "data:\n"
        "  source: {dataset: gta5, root: data/src, split: data/src/all.txt, size: [64, 32]}\n"
        "  target: {dataset: cityscapes, root: data/tgt, split: data/tgt/train.txt, "
        "val_split: data/tgt/val.txt, size: [64, 32]}\n"
        "model: {trunk: resnet18_half}\n"
        "train: {iterations: 2, batch_size: 2, checkpoint_every: 1, log_every: 1}\n"
        "upst: {bins: 64}\ntracking: {experiment: uplr-test-reliability}\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        mp.setenv("UPLR_ROOT", str(ws))
        assert cli.main(["train", "--row", "source_only", "--out", str(ws / "model"), "--params", str(params)]) == 0
    return ws, params, ws / "model/model.pt"


@pytest.fixture
def in_ws(trained, mlflow_uri, monkeypatch):
    ws, params, model = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setenv("UPLR_ROOT", str(ws))
    return ws, params, model


def _plant(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        if "/" in n:
            (folder / n).parent.mkdir(parents=True, exist_ok=True)
        (folder / n).write_text("half-written")


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".old"))]


def test_evaluate_removes_what_a_killed_evaluate_left(in_ws, capsys):
    ws, params, model = in_ws
    ev = ws / "eval"
    # the names today's main gives them (mkstemp's 8 random characters) and ours
    _plant(ev, [".metrics.json.k2j4h1ab.tmp", ".metrics.json.uplr-k2j4h1ab.tmp", ".pred.q8w7e6r5.tmp/x.png"])
    code, err = run_cli(capsys, "evaluate", "--model", str(model), "--row", "source_only", "--out",
                        str(ev / "metrics.json"), "--predictions", str(ev / "pred"), "--params", str(params))
    assert code == 0, err
    assert _temps(ev) == [] and (ev / "metrics.json").is_file()


def test_pseudo_label_removes_what_a_killed_pseudo_label_left(in_ws, capsys):
    ws, params, model = in_ws
    ps = ws / "pseudo"
    _plant(ps, [".labels.a1b2c3d4.tmp/half.png", ".summary.json.e5f6g7h8.tmp"])
    code, err = run_cli(capsys, "pseudo", "--model", str(model), "--out", str(ps / "labels"), "--summary",
                        str(ps / "summary.json"), "--params", str(params))
    assert code == 0, err
    assert _temps(ps) == [] and (ps / "summary.json").is_file()


def test_tables_removes_what_a_killed_tables_left(in_ws, capsys):
    ws, _params, _model = in_ws
    rep = ws / "reports"
    _plant(rep, [".table3.md.z9y8x7w6.tmp", ".README.md.uplr-z9y8x7w6.tmp"])
    code, err = run_cli(capsys, "tables", "--out", str(rep), "--experiment", "uplr-test-reliability")
    assert code == 0, err
    assert _temps(rep) == [] and (rep / "README.md").is_file()


# ----------------------------------------------------------------------------------------------------
# the ignore label is defined once


# 255 as a pixel value (0..255 clipping of images) is not the ignore label
PIXEL_RANGE_FILES = {"uplr/method/fda.py", "uplr/data/files.py", "uplr/data/_scenes.py", "uplr/data/synthetic.py"}


def test_ignore_label_255_is_defined_once():
    found = []
    for path in sorted((REPO / "uplr").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel in PIXEL_RANGE_FILES:
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == tokenize.NUMBER and tok.string == "255":
                found.append(f"{rel}:{tok.start[0]}")
    from uplr.data.labels import IGNORE_LABEL

    assert found == ["uplr/data/labels.py:18"] and IGNORE_LABEL == 255
