"""End to end: a tiny `make ablation` (every DVC stage of the embedded pipeline) in a temporary copy.

Checks that MLflow holds a run for every stage with its lineage, that the tables are built from MLflow
(reports/ deleted and rebuilt with the stages' files moved away), and that a second `dvc repro` does
nothing. Runs in ~2-3 minutes: every stage pays Python + torch + MLflow start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # `make ablation` on a tiny grid: minutes
REPO = Path(__file__).resolve().parents[1]

TINY = {
    "seeds": [0],
    "generate": {"height": 32, "width": 64, "n_source": 8, "n_target_train": 6, "n_target_val": 4},
    "data": {"source": {"size": [64, 32]}, "target": {"size": [64, 32]}},
    "train": {"iterations": 4, "batch_size": 2, "checkpoint_every": 2, "log_every": 2},
    "tgaa": {"stages": 2, "k": 3, "iterations": 2},
    "upst": {"iterations": 2, "bins": 64},
    "evaluate": {"batch_size": 2},
}


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def copy_repo(dst: Path) -> Path:
    """Tracked + untracked-but-not-ignored files; .venv is a symlink to the repo's (never re-installed there)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / f)
    (dst / ".venv").symlink_to(REPO / ".venv")
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"], cwd=dst, check=True)
    return dst


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    if not (REPO / ".venv/.uplr-setup").exists():
        pytest.skip("needs `make setup` (the test reuses the repo's .venv)")
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    (root / "dvc.lock").unlink(missing_ok=True)  # from nothing: the lock then holds exactly the stages this run ran
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(_merge(params, TINY), sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/ml.db", "DVC_NO_ANALYTICS": "1",
           "UPLR_PIPELINE_RUN": "e2e-test"}
    env.pop("UPLR_ROOT", None)
    proc = subprocess.run(["make", "-o", ".venv/.uplr-setup", "ablation"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, env, proc


def _client(env):
    import mlflow

    return mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])


def test_every_stage_is_an_mlflow_run_with_lineage(ablation):
    root, env, _ = ablation
    client = _client(env)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, max_results=1000)
    by_stage = {r.data.tags["uplr.dvc_stage"]: r for r in runs}
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(lock) <= set(by_stage), set(lock) - set(by_stage)
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["uplr.pipeline_run"] == "e2e-test"
        for t in ("uplr.git_commit", "uplr.image", "uplr.torch_version"):
            assert t in r.data.tags
    # input hashes are DVC's: the evaluate stage's model hash is the train stage's out md5 in dvc.lock
    ev = by_stage["evaluate_upst@0"]
    md5 = next(o["md5"] for o in lock["train_upst@0"]["outs"] if o["path"].endswith("model.pt"))
    assert ev.data.tags["uplr.input.runs/upst/seed0/model.pt"] == md5
    rows = {r.data.tags["uplr.row"] for r in runs if r.data.tags.get("uplr.kind") == "evaluation"}
    assert rows == {"source_only", "oracle", "aa", "it", "sr", "tgaa", "tgaa@S1", "tgaa@S2", "upst"}
    tgaa = by_stage["train_tgaa@0"]
    assert "uplr.tgaa.S1" in tgaa.data.tags and len(tgaa.data.tags["uplr.tgaa.S1"].split(",")) == 3
    assert any(r.data.tags.get("uplr.kind") == "pseudo_quality" for r in runs)


def test_tables_come_from_mlflow(ablation):
    root, env, _ = ablation
    shutil.rmtree(root / "reports")
    shutil.move(root / "metrics", root / "metrics.moved")  # the stages' files are not what tables read
    try:
        subprocess.run([str(root / ".venv/bin/uplr"), "tables", "--out", "reports"], cwd=root, env=env, check=True,
                       capture_output=True)
    finally:
        shutil.move(root / "metrics.moved", root / "metrics")
    md = (root / "reports/embedded.md").read_text()
    import json

    so = json.loads((root / "metrics/source_only/seed0.json").read_text())
    line = next(line for line in md.splitlines() if line.startswith("| Source only"))
    assert f"{100 * so['miou']['19']:.1f}" in line
    for label in ("+AA", "+IT", "+SR", "+TGAA", "+UPST", "Oracle"):
        assert any(row.startswith(f"| {label}") for row in md.splitlines()), label
    # the pseudo-label quality report and Figure 6 are drawn from MLflow too
    assert (root / "reports/pseudo_quality_embedded.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    quality = (root / "reports/pseudo_quality_embedded.md").read_text()
    assert "GMM on entropy (UPLR)" in quality and "BDL" in quality and "CBST" in quality
    assert (root / "reports/figure6_embedded.png").exists()


def test_second_repro_does_nothing(ablation):
    root, env, _ = ablation
    stages = subprocess.run([str(root / ".venv/bin/python"), "-m", "uplr.experiments", "stages", "table3", "oracle"],
                            cwd=root, env=env, capture_output=True, text=True, check=True).stdout.split()
    proc = subprocess.run([str(root / ".venv/bin/dvc"), "repro", *stages, "pseudo_quality"], cwd=root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Data and pipelines are up to date" in proc.stdout, proc.stdout
