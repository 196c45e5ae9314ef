"""The real-benchmark pipelines (pipelines/<benchmark>/) and the renderer that writes every dvc.yaml.

Fast checks: the committed dvc.yaml files are the renderer's output; every param a stage lists exists in
the typed config; every params.yaml loads strictly and holds the paper-scale settings; the make entry
refuses an unknown BENCHMARK.

End to end (CPU, tiny): the repository is copied into a temporary git + DVC project, tiny fakes of the
real layouts (tests/fakes.py) are written under datasets/ and `dvc add`-ed as docs/real-data.md says, the
copies' params.yaml get tiny limits, and `dvc repro` runs through the CLI. Every stage pays Python + torch
+ MLflow start-up (~5-10 s), so not every stage of every pipeline runs:

* cityscapes_nthu: the WHOLE pipeline for one city (Rome: translate, class_stats, every training row,
  pseudo labels, every evaluation, tables), then a second city (Rio) added to cities.yaml with only
  ``evaluate_source_only@Rio-0`` reproduced (it reuses the city-independent source-only model);
* gta5_cityscapes: ``class_stats`` (reads GTA5) and ``evaluate_oracle@0`` (the row Cross-City lacks);
* synthia_cityscapes: ``evaluate_source_only@0`` through ``make reproduce BENCHMARK=... STAGES=...``.

Each is checked for: metrics JSONs, MLflow evaluation runs with benchmark/row/city tags, lineage tags
holding the md5 of the `dvc add`-ed datasets (``uplr.input.datasets/<name>`` = the .dvc file's md5), and
a second `dvc repro` with nothing to do. About 3 minutes on two busy cores (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from uplr import pipelines as P
from uplr.config import Config, load_config
from uplr.data import benchmark_check as BC

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = BIN / "dvc"
REAL = ("gta5_cityscapes", "synthia_cityscapes", "cityscapes_nthu")


# ----------------------------------------------------------------------------------------------------
# rendering


@pytest.mark.parametrize("name", list(P.PIPELINES))
def test_committed_dvc_yaml_is_the_rendering(name):
    b = P.benchmark(name)
    path = REPO / b.dvc_yaml
    assert path.read_text() == P.render(b), f"{path} differs from uplr/pipelines.py: run python -m uplr.pipelines"


def test_main_rewrites_stale_files_and_check_reports_them(tmp_path, capsys):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert P.main(["--root", str(tmp_path), "--check"]) == 1
    assert "dvc.yaml: differs" in capsys.readouterr().err
    assert P.main(["--root", str(tmp_path)]) == 0
    for b in P.PIPELINES.values():
        assert (tmp_path / b.dvc_yaml).read_text() == P.render(b)
    assert P.main(["--root", str(tmp_path), "--check"]) == 0


def _config_has(path: str) -> bool:
    """Whether ``a.b.c`` names a field (or section) of the typed config."""
    obj: typing.Any = Config
    for key in path.split("."):
        if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
            return False
        fields = {f.name: f for f in dataclasses.fields(obj) if not f.metadata.get("internal")}
        if key not in fields:
            return False
        obj = typing.get_type_hints(obj)[key]
    return True


def _interpolated(text: str) -> set[str]:
    """The ``${...}`` names in ``text`` that are not loop variables."""
    import re

    return {m for m in re.findall(r"\$\{([^}]+)\}", text) if not m.startswith("item") and m not in ("seeds", "cities")}


def test_config_path_check_itself():
    assert _config_has("train") and _config_has("upst.bins") and _config_has("data.target.city")
    assert not _config_has("train.bogus") and not _config_has("cities") and not _config_has("upst.bins.x")


@pytest.mark.parametrize("name", list(P.PIPELINES))
def test_stage_params_exist_in_the_config(name):
    b = P.benchmark(name)
    params = P.param_paths(b)
    assert params, "no stage lists params"
    assert [p for p in params if not _config_has(p)] == []
    # params interpolated into commands and deps (${model.init}, ${tracking.experiment}) exist too
    names = _interpolated(P.render(b).split("stages:", 1)[1])
    assert [n for n in names if not _config_has(n)] == []
    # every -o override in a command names a config key
    overrides = {tok.split("=")[0] for st in P.stages(b).values()
                 for tok in st.get("do", st)["cmd"].split() if "=" in tok and not tok.startswith("-")}
    assert [o for o in overrides if not _config_has(o)] == []


@pytest.mark.parametrize("name", REAL)
def test_params_files_load_with_paper_settings(name):
    cfg = load_config(REPO / "pipelines" / name / "params.yaml")
    assert cfg.benchmark == name and cfg.tracking.experiment == f"uplr-{name}"
    m, t, a = cfg.model, cfg.train, cfg.adversarial
    assert (m.trunk, m.freeze_bn, m.num_classes, m.multi_level) == ("resnet101", True, 19, True)
    assert m.init != "scratch" and cfg.path(m.init).resolve().parent == REPO / "weights"
    assert (t.lr, t.momentum, t.weight_decay, t.poly_power, t.batch_size) == (2.5e-4, 0.9, 5e-4, 0.9, 1)
    assert t.iterations >= 120_000 and cfg.upst.iterations > 0
    assert (a.lambda_adv_main, a.lambda_adv_aux, a.d_lr, a.d_betas) == (0.001, 0.0002, 1e-4, [0.9, 0.99])
    src, tgt = cfg.data.source, cfg.data.target
    expected_src = {"gta5_cityscapes": ("gta5", [1280, 720], "GTA5"),
                    "synthia_cityscapes": ("synthia", [1280, 760], "SYNTHIA"),
                    "cityscapes_nthu": ("cityscapes", [1024, 512], "Cityscapes")}[name]
    assert (src.dataset, src.size, cfg.path(src.root).resolve()) == (
        expected_src[0], expected_src[1], REPO / "datasets" / expected_src[2])
    assert tgt.size == [1024, 512] and cfg.evaluate.checkpoint == "last"
    if name == "cityscapes_nthu":
        assert (tgt.dataset, tgt.split, tgt.val_split, tgt.city) == ("nthu", "train", "test", "")
        assert cfg.path(tgt.root).resolve() == REPO / "datasets" / "NTHU"
    else:
        assert (tgt.dataset, tgt.split, tgt.val_split) == ("cityscapes", "train", "val")
        assert cfg.path(tgt.root).resolve() == REPO / "datasets" / "Cityscapes"


def test_cross_city_grid():
    from uplr.data.datasets import NTHU_CITIES

    b = P.benchmark("cityscapes_nthu")
    cities = BC.read_cities(REPO / b.folder)
    assert sorted(cities) == sorted(NTHU_CITIES)
    st = P.stages(b)
    assert not any("oracle" in k for k in st) and "pseudo_quality" not in st
    assert "foreach" in st["train_source_only"] and "city" not in st["train_source_only"]["do"]["cmd"]
    for name, s in st.items():
        if "matrix" in s:  # per city and seed: the city reaches the command, outputs are per city
            assert "-o data.target.city=${item.city}" in s["cmd"], name
            outs = [o if isinstance(o, str) else next(iter(o)) for o in s.get("outs", []) + s.get("metrics", [])]
            assert outs and all("${item.city}" in o for o in outs), name
    # the gta5/synthia pipelines have the oracle and the quality report, no city
    g = P.stages(P.benchmark("gta5_cityscapes"))
    assert {"train_oracle", "evaluate_oracle", "pseudo_quality"} <= set(g)
    body = P.render("gta5_cityscapes").split("stages:", 1)[1]
    assert "item.city" not in body and "-o data.target.city" not in body


def test_data_check_commands():
    cmds = [d.command(REPO) for d in BC.data_splits(REPO / "pipelines/gta5_cityscapes", cities=False)]
    assert cmds == ["uplr data check gta5 --root datasets/GTA5 --split all",
                    "uplr data check cityscapes --root datasets/Cityscapes --split train",
                    "uplr data check cityscapes --root datasets/Cityscapes --split val"]
    nthu = BC.data_splits(REPO / "pipelines/cityscapes_nthu", cities=True)
    assert {(d.city, d.split) for d in nthu if d.dataset == "nthu"} == {
        (c, s) for c in ("Rome", "Rio", "Tokyo", "Taipei") for s in ("train", "test")}


# ----------------------------------------------------------------------------------------------------
# the make entry


def _make(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("bench", ["bogus", "", "gta5_cityscapes synthia_cityscapes", "embedded"])
def test_make_reproduce_refuses_an_unknown_benchmark(bench):
    proc = _make("reproduce", f"BENCHMARK={bench}")
    assert proc.returncode != 0
    assert "not a real benchmark" in proc.stderr and all(b in proc.stderr for b in REAL), proc.stderr
    assert "dvc" not in proc.stdout  # nothing ran


def test_make_reproduce_dry_run():
    proc = _make("-n", "-o", ".venv/.uplr-setup", "reproduce", "BENCHMARK=gta5_cityscapes")
    assert proc.returncode == 0, proc.stderr
    assert "dvc repro pipelines/gta5_cityscapes/dvc.yaml" in proc.stdout
    proc = _make("-n", "-o", ".venv/.uplr-setup", "reproduce", "BENCHMARK=cityscapes_nthu", "CITIES=[Rome]",
                 "STAGES=evaluate_upst@Rome-0")
    assert proc.returncode == 0, proc.stderr
    assert ("dvc exp run pipelines/cityscapes_nthu/dvc.yaml:evaluate_upst@Rome-0 "
            "-S 'pipelines/cityscapes_nthu/cities.yaml:cities=[Rome]'") in " ".join(proc.stdout.split())


# ----------------------------------------------------------------------------------------------------
# end to end on tiny fakes

SIZE = [64, 32]
TINY = {
    "seeds": [0],
    "data": {"num_workers": 0},
    "model": {"trunk": "resnet18", "freeze_bn": False, "init": "../../weights/init_r18.pth"},
    "train": {"iterations": 2, "batch_size": 1, "checkpoint_every": 2, "log_every": 1},
    "translate": {"beta": 0.05},  # the paper-scale 0.01 swaps nothing on 32-pixel fakes (an error)
    "tgaa": {"stages": 2, "k": 3, "iterations": 2},
    "upst": {"iterations": 2, "bins": 64},
    "evaluate": {"batch_size": 2},
}
DATA = {  # the copies' data sections: the fakes' list files instead of the packaged official lists
    "gta5_cityscapes": {
        "source": {"split": "../../datasets/GTA5/all.txt", "size": SIZE},
        "target": {"split": "../../datasets/Cityscapes/train.txt", "val_split": "../../datasets/Cityscapes/val.txt",
                   "size": SIZE}},
    "synthia_cityscapes": {
        "source": {"split": "../../datasets/SYNTHIA/all.txt", "size": SIZE},
        "target": {"split": "../../datasets/Cityscapes/train.txt", "val_split": "../../datasets/Cityscapes/val.txt",
                   "size": SIZE}},
    # both cities' fakes use the same frame ids, so one list file serves every city
    "cityscapes_nthu": {
        "source": {"split": "../../datasets/Cityscapes/train.txt", "size": SIZE},
        "target": {"split": "../../datasets/NTHU/Rome/train.txt", "val_split": "../../datasets/NTHU/Rome/test.txt",
                   "size": SIZE}},
}


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(dict(base.get(k) or {}), v) if isinstance(v, dict) else v
    return base


def _run(args: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _copy_repo(dst: Path) -> None:
    """Tracked and untracked-but-not-ignored files (uplr/ included: it holds the stages' code deps)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (REPO / f).is_file() and not f.startswith((".dvc/", "datasets/", "weights/")):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dst / f)


def _write_fakes(root: Path) -> None:
    from fakes import make_fake_cityscapes, make_fake_gta5, make_fake_nthu, make_fake_synthia

    from uplr.model.deeplab import build_model

    d = root / "datasets"
    make_fake_gta5(d / "GTA5", n=5, size=tuple(SIZE), seed=1)
    make_fake_synthia(d / "SYNTHIA", n=5, size=tuple(SIZE), seed=2)
    make_fake_cityscapes(d / "Cityscapes", split="train", n=4, size=tuple(SIZE), seed=3)
    make_fake_cityscapes(d / "Cityscapes", split="val", n=3, size=tuple(SIZE), seed=4)
    for k, city in enumerate(("Rome", "Rio")):
        make_fake_nthu(d / "NTHU", city=city, n=4, size=tuple(SIZE), seed=5 + k, split="train")
        make_fake_nthu(d / "NTHU", city=city, n=3, size=tuple(SIZE), seed=7 + k, split="test")
    # init weights of the light trunk (the real pipelines' model.init is a file: a DVC dependency)
    import torch

    (root / "weights").mkdir()
    torch.manual_seed(0)
    torch.save(build_model("resnet18", 19, True, True, False).state_dict(), root / "weights" / "init_r18.pth")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC copy of the repo with tiny fake datasets `dvc add`-ed, and the environment to run it."""
    if not DVC.exists():
        pytest.skip("dvc is not installed in this environment")
    tmp = tmp_path_factory.mktemp("pipelines")
    root = tmp / "repo"
    root.mkdir()
    _copy_repo(root)
    (root / ".venv").symlink_to(BIN.parent)  # for `make`: the copy reuses this venv, never installs
    env = {k: v for k, v in os.environ.items() if k not in ("UPLR_ROOT", "UPLR_RUNNER", "MLFLOW_TRACKING_URI")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
        UPLR_PIPELINE_RUN="pipelines-test",
        OMP_NUM_THREADS="1",  # tiny tensors: threads only contend (2.5 s vs 0.08 s a step on a busy 2-core box)
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(tmp / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(tmp / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(tmp / "dvc-site"),
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    _run(["git", "init", "-q"], root, env)
    (root / ".git" / "info" / "exclude").write_text(".venv\n")
    _run([DVC, "init", "-q"], root, env)
    _run([DVC, "config", "core.analytics", "false"], root, env)
    _write_fakes(root)
    for name in REAL:
        path = root / "pipelines" / name / "params.yaml"
        tiny = _merge(yaml.safe_load(path.read_text()), {**TINY, "data": {**TINY["data"], **DATA[name]}})
        path.write_text(yaml.safe_dump(tiny, sort_keys=False))
        load_config(path)  # still valid
    (root / "pipelines/cityscapes_nthu/cities.yaml").write_text("cities: [Rome]\n")
    # the documented step: raw data under DVC, so their hashes enter dvc.lock and the lineage tags
    _run([DVC, "add", "-q", "datasets/GTA5", "datasets/SYNTHIA", "datasets/Cityscapes", "datasets/NTHU",
          "weights/init_r18.pth"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "copy with fake datasets"], root, env)
    return root, env


def _md5(root: Path, dvcfile: str) -> str:
    return yaml.safe_load((root / dvcfile).read_text())["outs"][0]["md5"]


def _runs(env: dict, experiment: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment}"
    return client.search_runs([exp.experiment_id], max_results=500)


def _repro(root: Path, env: dict, *targets: str) -> str:
    return _run([DVC, "repro", *targets], root, env).stdout


def _ran(out: str) -> list[str]:
    """The stages a `dvc repro` output says it ran."""
    return [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")]


NTHU = "pipelines/cityscapes_nthu/dvc.yaml"
GTA = "pipelines/gta5_cityscapes/dvc.yaml"
SYN = "pipelines/synthia_cityscapes/dvc.yaml"
# Table 3's rows for Rome (the variants and controls are `make variants`, not run here)
NTHU_ROWS = ("source_only", "aa", "it", "sr", "tgaa", "upst")
NTHU_TABLE3 = [f"{NTHU}:evaluate_{r}@Rome-0" for r in NTHU_ROWS]
PARTIAL = [f"{NTHU}:evaluate_source_only@Rio-0", f"{GTA}:class_stats", f"{GTA}:evaluate_oracle@0",
           f"{SYN}:evaluate_source_only@0"]


@pytest.fixture(scope="module")
def reproduced(project):
    """Every reproduction of the module, in order (stages are slow: each one runs once)."""
    root, env = project
    out = {"nthu": _repro(root, env, *NTHU_TABLE3), "nthu_again": _repro(root, env, *NTHU_TABLE3)}
    (root / "pipelines/cityscapes_nthu/cities.yaml").write_text("cities: [Rome, Rio]\n")
    out["rio"] = _repro(root, env, PARTIAL[0])
    out["gta5"] = _repro(root, env, *PARTIAL[1:3])
    proc = _make("-o", ".venv/.uplr-setup", "reproduce", "BENCHMARK=synthia_cityscapes",
                 "STAGES=evaluate_source_only@0", cwd=root, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out["synthia"] = proc.stdout
    out["partial_again"] = _repro(root, env, *PARTIAL)
    return root, env, out


@pytest.mark.slow
def test_cross_city_whole_pipeline(reproduced):
    root, env, out = reproduced
    here = root / "pipelines/cityscapes_nthu"
    ran = _ran(out["nthu"])  # one city, one seed: Table 3's rows and what they need, no variant
    assert all(any(r.endswith(t.split(":")[1]) for r in ran) for t in NTHU_TABLE3), ran
    assert not any(v in r for r in ran for v in ("sr_more", "tgaa_more", "_threshold", "_scratch")), ran
    for row in ("source_only", "aa", "it", "sr", "tgaa", "upst"):
        result = json.loads((here / f"metrics/Rome/{row}/seed0.json").read_text())
        assert set(result["miou"]) == {"nthu13"} and result["n_images"] == 3, row
    assert (here / "data/translated/source/Rome").is_dir()
    assert not (here / "metrics/pseudo_quality").exists()
    # a second city: only its evaluation runs, on the city-independent source-only model
    assert _ran(out["rio"]) == [f"{NTHU}:evaluate_source_only@Rio-0"]
    assert json.loads((here / "metrics/Rio/source_only/seed0.json").read_text())["miou"].keys() == {"nthu13"}

    runs = _runs(env, "uplr-cityscapes_nthu")
    assert runs and all(r.info.status == "FINISHED" for r in runs)
    evals = {(r.data.tags["uplr.row"], r.data.tags["uplr.city"]): r for r in runs
             if r.data.tags.get("uplr.kind") == "evaluation"}
    assert set(evals) == {(row, "Rome") for row in ("source_only", "aa", "it", "sr", "tgaa", "upst",
                                                    "tgaa@S1", "tgaa@S2")} | {("source_only", "Rio")}
    nthu, cs = _md5(root, "datasets/NTHU.dvc"), _md5(root, "datasets/Cityscapes.dvc")
    for r in evals.values():
        assert r.data.tags["uplr.benchmark"] == "cityscapes_nthu"
        assert r.data.tags["uplr.input.datasets/NTHU"] == nthu
    stages = {r.data.tags["uplr.dvc_stage"]: r for r in runs}
    assert stages["train_source_only@0"].data.tags["uplr.input.datasets/Cityscapes"] == cs
    assert stages["evaluate_upst@Rome-0"].data.tags["uplr.city"] == "Rome"
    # the init weights are a tracked dependency of the rows trained from them
    lock = yaml.safe_load((here / "dvc.lock").read_text())["stages"]
    dep = next(d for d in lock["train_aa@Rome-0"]["deps"] if d["path"].endswith("init_r18.pth"))
    assert dep["md5"] == _md5(root, "weights/init_r18.pth.dvc")


@pytest.mark.slow
def test_gta5_cityscapes_source_and_oracle(reproduced):
    root, env, out = reproduced
    assert sorted(_ran(out["gta5"])) == sorted(f"{GTA}:{s}" for s in ("class_stats", "train_oracle@0",
                                                                      "evaluate_oracle@0"))
    here = root / "pipelines/gta5_cityscapes"
    assert set(json.loads((here / "metrics/oracle/seed0.json").read_text())["miou"]) == {"19", "16", "13"}
    stages = {r.data.tags["uplr.dvc_stage"]: r for r in _runs(env, "uplr-gta5_cityscapes")}
    tags = stages["evaluate_oracle@0"].data.tags
    assert (tags["uplr.kind"], tags["uplr.row"], tags["uplr.benchmark"]) == ("evaluation", "oracle", "gta5_cityscapes")
    assert tags["uplr.input.datasets/Cityscapes"] == _md5(root, "datasets/Cityscapes.dvc")
    assert stages["class_stats"].data.tags["uplr.input.datasets/GTA5"] == _md5(root, "datasets/GTA5.dvc")
    # the evaluation's model hash is the train stage's output md5 in this pipeline's dvc.lock
    lock = yaml.safe_load((here / "dvc.lock").read_text())["stages"]
    md5 = next(o["md5"] for o in lock["train_oracle@0"]["outs"] if o["path"].endswith("model.pt"))
    assert tags["uplr.input.pipelines/gta5_cityscapes/runs/oracle/seed0/model.pt"] == md5


@pytest.mark.slow
def test_synthia_cityscapes_through_make(reproduced):
    root, env, out = reproduced
    assert "dvc repro pipelines/synthia_cityscapes/dvc.yaml:evaluate_source_only@0" in out["synthia"]
    assert sorted(_ran(out["synthia"])) == [f"{SYN}:evaluate_source_only@0", f"{SYN}:train_source_only@0"]
    here = root / "pipelines/synthia_cityscapes"
    assert set(json.loads((here / "metrics/source_only/seed0.json").read_text())["miou"]) == {"19", "16", "13"}
    stages = {r.data.tags["uplr.dvc_stage"]: r for r in _runs(env, "uplr-synthia_cityscapes")}
    assert stages["train_source_only@0"].data.tags["uplr.input.datasets/SYNTHIA"] == _md5(root, "datasets/SYNTHIA.dvc")
    ev = stages["evaluate_source_only@0"].data.tags
    assert (ev["uplr.row"], ev["uplr.benchmark"], ev["uplr.city"]) == ("source_only", "synthia_cityscapes", "")


@pytest.mark.slow
def test_second_repro_has_nothing_to_do(reproduced):
    _, _, out = reproduced
    for key in ("nthu_again", "partial_again"):
        assert "Data and pipelines are up to date" in out[key] and not _ran(out[key]), out[key]


@pytest.mark.slow
def test_data_check_on_the_fakes(reproduced, capsys):
    root, _, _ = reproduced
    assert BC.data_check(root / "pipelines/cityscapes_nthu", True, root, full=True)
    out = capsys.readouterr().out
    assert "uplr data check nthu --root datasets/NTHU --split datasets/NTHU/Rome/test.txt --city Rio" in out
    assert "uplr data check cityscapes --root datasets/Cityscapes --split datasets/Cityscapes/train.txt" in out


@pytest.mark.parametrize("name", list(P.PIPELINES))
def test_every_listed_param_is_in_the_params_file(name):
    """DVC refuses a stage whose listed param is absent from params.yaml: every key must be written out."""
    b = P.benchmark(name)
    data = yaml.safe_load((REPO / b.folder / "params.yaml").read_text())

    def present(key: str) -> bool:
        obj = data
        for part in key.split("."):
            if not isinstance(obj, dict) or part not in obj:
                return False
            obj = obj[part]
        return True

    assert [k for k in sorted(P.param_paths(b)) if not present(k)] == []
