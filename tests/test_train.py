"""Training: same seed -> same result; a killed run resumes to the same result; bad params fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from uplr.config import load_config
from uplr.errors import UplrError
from uplr.stages import evaluate, train
from uplr.train import loop


def _train(params, out, resume=None, **over):
    cfg = load_config(params, [f"{k}={v}" for k, v in over.items()])
    train.run(cfg, "source_only", 0, out, resume, "train_source_only@0")
    return cfg


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_and_metrics(tiny_params, tracking, tmp_path):
    cfg = _train(tiny_params, tmp_path / "a")
    _train(tiny_params, tmp_path / "b")
    assert _equal(_weights(tmp_path / "a/model.pt"), _weights(tmp_path / "b/model.pt"))
    # ... in the same bytes (no temporary file name inside the file): DVC sees the same md5
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()
    ra = evaluate.run(cfg, tmp_path / "a/model.pt", "source_only", 0, tmp_path / "a.json", "ev")
    rb = evaluate.run(cfg, tmp_path / "b/model.pt", "source_only", 0, tmp_path / "b.json", "ev")
    assert ra["iou"] == rb["iou"]
    # a different seed trains a different model
    cfg2 = load_config(tiny_params)
    train.run(cfg2, "source_only", 1, tmp_path / "c", None, "s")
    assert not _equal(_weights(tmp_path / "a/model.pt"), _weights(tmp_path / "c/model.pt"))


def test_killed_run_resumes_to_same_result(tiny_params, tracking, tmp_path, monkeypatch):
    _train(tiny_params, tmp_path / "full")

    original = loop.Trainer.train_step
    calls = {"n": 0}

    def dying_step(self, *a, **k):
        if self.step == 4:  # after the checkpoint at step 3
            raise KeyboardInterrupt("killed")
        calls["n"] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(loop.Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_params, tmp_path / "killed", resume=tmp_path / "resume")
    assert (tmp_path / "resume/last.pt").exists() and not (tmp_path / "killed/model.pt").exists()
    assert torch.load(tmp_path / "resume/last.pt", weights_only=False)["step"] == 3
    monkeypatch.setattr(loop.Trainer, "train_step", original)

    resumed_steps = []
    monkeypatch.setattr(loop.Trainer, "train_step",
                        lambda self, *a, **k: resumed_steps.append(self.step) or original(self, *a, **k))
    _train(tiny_params, tmp_path / "killed", resume=tmp_path / "resume")
    assert resumed_steps == [3, 4, 5]  # it did resume, not restart
    assert _equal(_weights(tmp_path / "full/model.pt"), _weights(tmp_path / "killed/model.pt"))
    assert (tmp_path / "full/train_log.csv").read_text() == (tmp_path / "killed/train_log.csv").read_text()


def test_checkpoint_for_other_settings_is_not_resumed(tiny_params, tracking, tmp_path):
    _train(tiny_params, tmp_path / "a", resume=tmp_path / "resume")
    steps = []
    orig = loop.Trainer.train_step
    try:
        loop.Trainer.train_step = lambda self, *a, **k: steps.append(self.step) or orig(self, *a, **k)
        _train(tiny_params, tmp_path / "b", resume=tmp_path / "resume", **{"train.lr": 0.02})
    finally:
        loop.Trainer.train_step = orig
    assert steps == list(range(6))


def test_mlflow_holds_params_curves_and_lineage(tiny_params, tracking, tmp_path):
    import mlflow

    cfg = _train(tiny_params, tmp_path / "a")
    evaluate.run(cfg, tmp_path / "a/model.pt", "source_only", 0, tmp_path / "m.json", "evaluate_source_only@0")
    client = mlflow.MlflowClient(tracking)
    exp = client.get_experiment_by_name("uplr-test")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=2)
    ev, tr = runs[0], runs[1]
    assert tr.data.tags["uplr.kind"] == "train" and tr.data.params["train.iterations"] == "6"
    assert [m.step for m in client.get_metric_history(tr.info.run_id, "train/loss_seg")] == [2, 4, 6]
    for t in ("uplr.git_commit", "uplr.dvc_stage", "uplr.seed", "uplr.device", "uplr.torch_version",
              "uplr.pipeline_run", "uplr.image"):
        assert t in tr.data.tags, t
    assert any(k.startswith("uplr.input.") for k in tr.data.tags)
    assert ev.data.tags["uplr.dvc_stage"] == "evaluate_source_only@0"
    saved = json.loads((tmp_path / "m.json").read_text())
    assert ev.data.metrics["miou/19"] == pytest.approx(saved["miou"]["19"])
    assert ev.data.metrics["iou/road"] == pytest.approx(saved["iou"]["road"]) or saved["iou"]["road"] is None


def test_unknown_or_mistyped_param_is_a_clear_error(tiny_params):
    with pytest.raises(UplrError, match="unknown parameter `train.iteratons`"):
        load_config(tiny_params, ["train.iteratons=5"])
    with pytest.raises(UplrError, match="`train.iterations` must be an integer"):
        load_config(tiny_params, ["train.iterations=five"])
    bad = tiny_params.parent / "bad.yaml"
    bad.write_text("model: {trunk: resnet18, layers: 3}\n")
    with pytest.raises(UplrError, match=r"bad.yaml: unknown parameter `model.layers`"):
        load_config(bad)


def test_missing_weights_file_is_a_clear_error(tiny_params, tracking, tmp_path):
    with pytest.raises(UplrError, match="nope.pth"):
        _train(tiny_params, tmp_path / "a", **{"model.init": "weights/nope.pth"})
    assert not (tmp_path / "a/model.pt").exists()


def _steps_of(params, out, resume, **over):
    steps = []
    orig = loop.Trainer.train_step
    try:
        loop.Trainer.train_step = lambda self, *a, **k: steps.append(self.step) or orig(self, *a, **k)
        _train(params, out, resume=resume, **over)
    finally:
        loop.Trainer.train_step = orig
    return steps


def test_checkpoint_for_other_input_data_is_not_resumed(tiny_params, tracking, tmp_path):
    """Same params, but the source set was rewritten (an upstream stage re-ran): the persistent resume
    checkpoint of the old run is stale and must not be resumed (it would hand back the old model)."""
    from fakes import make_fake_gta5

    _train(tiny_params, tmp_path / "a", resume=tmp_path / "resume")
    assert _steps_of(tiny_params, tmp_path / "a", tmp_path / "resume") == []  # unchanged: resumed at the end
    make_fake_gta5(tmp_path / "data/src", n=6, size=(64, 32), seed=9)
    assert _steps_of(tiny_params, tmp_path / "b", tmp_path / "resume") == list(range(6))


def test_checkpoint_for_another_dvc_hash_is_not_resumed(tiny_params, tracking, tmp_path):
    """Inputs DVC tracks are compared by DVC's md5 from dvc.lock (written after each stage of a repro)."""
    lock = tmp_path / "dvc.lock"

    def write_lock(md5):
        lock.write_text(f"schema: '2.0'\nstages:\n  gen:\n    cmd: x\n    outs:\n    - path: data/src\n"
                        f"      md5: {md5}.dir\n    - path: data/tgt\n      md5: 0ff.dir\n")

    write_lock("aaa")
    _train(tiny_params, tmp_path / "a", resume=tmp_path / "resume")
    assert _steps_of(tiny_params, tmp_path / "a", tmp_path / "resume") == []
    write_lock("bbb")
    assert _steps_of(tiny_params, tmp_path / "b", tmp_path / "resume") == list(range(6))


def test_checkpoint_of_other_code_is_not_resumed(tiny_params, tracking, tmp_path, monkeypatch):
    """Same params and inputs, but a file the stage runs changed (e.g. the lr schedule in loop.py): the
    finished checkpoint of the old code must not be resumed (it would hand back the old weights)."""
    from uplr import codedeps

    _train(tiny_params, tmp_path / "a", resume=tmp_path / "resume")
    assert _steps_of(tiny_params, tmp_path / "a", tmp_path / "resume") == []  # same code: resumed at the end
    loop = codedeps.REPO / "uplr/train/loop.py"
    original = Path.read_bytes

    def edited(self):  # as if `return 0.5 * max(...)` had been written into the poly schedule
        data = original(self)
        return data + b"\n# edited\n" if self == loop else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert _steps_of(tiny_params, tmp_path / "b", tmp_path / "resume") == list(range(6))


def test_code_hash_covers_exactly_the_stage_files():
    from uplr import codedeps

    files = codedeps.stage_files("uplr.stages.train")
    assert "uplr/train/loop.py" in files and "uplr/method/gmm.py" not in files  # source-only: no GMM code
    assert "uplr/method/gmm.py" in codedeps.stage_files("uplr.stages.train_upst")
    assert codedeps.code_hash("uplr.stages.train") != codedeps.code_hash("uplr.stages.train_sr")
