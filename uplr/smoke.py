"""``make reproduce BENCHMARK=... SMOKE=1``: the real pipeline, every stage, on a handful of real-format images.

What runs is the benchmark's own ``pipelines/<benchmark>/dvc.yaml``, unchanged, in a temporary copy of
the repository (git + DVC project, as tests/test_pipelines.py does), where

* ``datasets/`` holds a handful of frames written in the real on-disk formats at the real sizes
  (:mod:`uplr.data.fake_formats`: GTA5 1914x1052 frames + palette labels, SYNTHIA 1280x760 + 16-bit
  labels, Cityscapes 2048x1024 leftImg8bit/gtFine, NTHU 2048x1024 JPEG + ``_eval.png``), ``dvc add``-ed;
* ``weights/<model.init>`` is a random-weights file in the peers' init layout
  (:mod:`uplr.model.peer_layout`), ``dvc add``-ed;
* the copy's params.yaml keeps the paper-scale settings (ResNet-101, 1280x720 / 1024x512 crops, ...)
  except the counts: one seed, the fakes' list files, ``train.iterations`` and ``upst.iterations`` = 2
  (TGAA: ``tgaa.iterations`` 2, in 2 stages of 1), evaluation batch 1, no DataLoader workers; Cross-City runs one city (Rome).

Stages run one at a time, in the order ``dvc repro`` runs them (DVC's stage graph), each through ``dvc repro -s``, so that
each one's wall time and peak RSS (``os.wait4``: the largest process of the stage's process tree,
``dvc`` itself included) are measured on their own; a final ``dvc repro`` must find nothing to do.
After each training stage the cost of one iteration of that row (:mod:`uplr.train.cost`: FLOPs of
forward + backward, peak tensor memory) is measured in a separate process, written to
``runs/<row>/seed0/cost.json`` and logged to the stage's MLflow run as ``cost/*`` metrics; rows with
the same shapes share one measurement. The summary (per-stage table, costs, environment) is written as
JSON (``--out``, default ``pipelines/<benchmark>/smoke.json``); ``uplr cost`` reads it.

Run: ``python -m uplr.smoke gta5_cityscapes [--images 3 --val-images 2 --iterations 2 --scale 1.0]``.

Longer than 400 lines because it is one end-to-end procedure (write the real-format data,
prepare the temporary project, run and measure every stage, summarise); its pieces share the
project's paths and make little sense apart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from uplr.errors import UplrError
from uplr.experiments import REAL_BENCHMARKS
from uplr.io import write_json

log = logging.getLogger(__name__)

BENCHMARKS = REAL_BENCHMARKS
SMOKE_CITY = "Rome"
LAYOUT = Path("tests/fixtures/deeplabv2_r101_layout.json")
_EXCLUDE = (".dvc/", "datasets/", "weights/", "mlartifacts/", "mlruns/")


# ----------------------------------------------------------------------------------------------------
# the temporary project


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(dict(base.get(k) or {}), v) if isinstance(v, dict) else v
    return base


def _scaled(size: tuple[int, int] | list[int], scale: float) -> list[int]:
    """``size`` times ``scale``, rounded to a multiple of 8 (at least 16)."""
    return [max(16, int(round(v * scale / 8)) * 8) for v in size] if scale != 1.0 else list(size)


def copy_repo(repo: Path, dst: Path) -> None:
    """Tracked and untracked-but-not-ignored files of ``repo`` (no data, weights or DVC state)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for f in filter(None, files):
        if (repo / f).is_file() and not f.startswith(_EXCLUDE):
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / f, dst / f)


def write_datasets(root: Path, benchmark: str, n: int, n_val: int, scale: float) -> dict[str, dict]:
    """Real-format fakes for ``benchmark`` under ``root/datasets``; returns the params' ``data`` section."""
    from uplr.data.fake_formats import (
        REAL_SIZES,
        make_fake_cityscapes,
        make_fake_gta5,
        make_fake_nthu,
        make_fake_synthia,
    )

    d = root / "datasets"

    def size(name: str) -> tuple[int, int]:
        return tuple(_scaled(REAL_SIZES[name], scale))

    def rel(p: Path) -> str:
        return "../../" + p.relative_to(root).as_posix()

    cs = d / "Cityscapes"
    if benchmark == "cityscapes_nthu":
        src = make_fake_cityscapes(cs, split="train", n=n, size=size("cityscapes"), seed=3)
        tr = make_fake_nthu(d / "NTHU", city=SMOKE_CITY, n=n, size=size("nthu"), seed=5, split="train")
        va = make_fake_nthu(d / "NTHU", city=SMOKE_CITY, n=n_val, size=size("nthu"), seed=7, split="test")
    else:
        if benchmark == "gta5_cityscapes":
            src = make_fake_gta5(d / "GTA5", n=n, size=size("gta5"), seed=1)
        else:
            src = make_fake_synthia(d / "SYNTHIA", n=n, size=size("synthia"), seed=2)
        tr = make_fake_cityscapes(cs, split="train", n=n, size=size("cityscapes"), seed=3)
        va = make_fake_cityscapes(cs, split="val", n=n_val, size=size("cityscapes"), seed=4)
    return {"source": {"split": rel(src)}, "target": {"split": rel(tr), "val_split": rel(va)}}


def smoke_params(params: dict, data: dict, iterations: int, scale: float) -> dict:
    """The pipeline's params with the smoke counts: everything else stays at the paper's scale."""
    over: dict[str, Any] = {
        "seeds": [0],
        "data": {"num_workers": 0, **data},
        "train": {"iterations": iterations, "checkpoint_every": iterations, "log_every": 1},
        "tgaa": {"stages": min(2, iterations), "iterations": iterations},
        "upst": {"iterations": iterations},
        "evaluate": {"batch_size": 1},
    }
    if scale != 1.0:
        for dom in ("source", "target"):
            over["data"][dom]["size"] = _scaled(params["data"][dom]["size"], scale)
    return _merge(params, over)


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UPLR_ROOT", "UPLR_RUNNER", "MLFLOW_TRACKING_URI")}
    binary = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{binary}{os.pathsep}{os.environ.get('PATH', '')}",
        MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db",
        UPLR_PIPELINE_RUN=os.environ.get("UPLR_PIPELINE_RUN", "smoke"),
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(work / ".dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(work / ".dvc-system"),
        DVC_SITE_CACHE_DIR=str(work / ".dvc-site"),
        GIT_AUTHOR_NAME="uplr-smoke", GIT_AUTHOR_EMAIL="smoke@example.invalid",
        GIT_COMMITTER_NAME="uplr-smoke", GIT_COMMITTER_EMAIL="smoke@example.invalid",
    )
    return env


def _dvc() -> str:
    exe = Path(sys.executable).parent / "dvc"
    if not exe.exists():
        raise UplrError(f"{exe}: dvc is not installed in this environment; run make setup")
    return str(exe)


def _check(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UplrError(f"smoke: '{' '.join(cmd)}' failed in {cwd} (exit {proc.returncode}): "
                        f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


def prepare(repo: Path, work: Path, benchmark: str, n: int, n_val: int, iterations: int, scale: float,
            env: dict[str, str]) -> None:
    """Copy ``repo`` into ``work`` and make it a git + DVC project with the smoke data and params."""
    from uplr.config import load_config
    from uplr.model.peer_layout import write_random_peer_init

    copy_repo(repo, work)
    dvc = _dvc()
    _check(["git", "init", "-q"], work, env)
    _check([dvc, "init", "-q"], work, env)
    _check([dvc, "config", "core.analytics", "false"], work, env)
    t0 = time.perf_counter()
    data = write_datasets(work, benchmark, n, n_val, scale)
    folder = work / "pipelines" / benchmark
    path = folder / "params.yaml"
    params = smoke_params(yaml.safe_load(path.read_text()), data, iterations, scale)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    cfg = load_config(path)  # still valid (strict)
    init = cfg.path(cfg.model.init).resolve()
    write_random_peer_init(init, repo / LAYOUT)
    if (folder / "cities.yaml").exists():
        (folder / "cities.yaml").write_text(f"cities: [{SMOKE_CITY}]\n")
    log.info("smoke data and init written in %.1f s", time.perf_counter() - t0)
    tracked = sorted(str(p.relative_to(work)) for p in (work / "datasets").iterdir() if p.is_dir())
    _check([dvc, "add", "-q", *tracked, str(init.relative_to(work.resolve()))], work, env)
    _check(["git", "add", "-A"], work, env)
    _check(["git", "commit", "-qm", f"smoke copy of {benchmark}"], work, env)


# ----------------------------------------------------------------------------------------------------
# running and measuring


_ORDER = """
import sys
import networkx as nx
from dvc.repo import Repo
with Repo(".") as repo:
    for st in nx.dfs_postorder_nodes(repo.index.graph):
        if getattr(st, "path_in_repo", None) == sys.argv[1] and getattr(st, "name", None):
            print(st.name)
"""


def stage_order(work: Path, dvc_yaml: str, env: dict[str, str]) -> list[str]:
    """The stages of ``dvc_yaml`` in the order ``dvc repro`` runs them (DVC's graph, dependencies first)."""
    names = _check([sys.executable, "-c", _ORDER, dvc_yaml], work, env).split()
    if not names:
        raise UplrError(f"{dvc_yaml}: DVC lists no stage in it")
    return names


def measured(cmd: list[str], cwd: Path, env: dict[str, str], logfile: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall time, exit code and peak RSS (largest process of its tree, from wait4)."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with logfile.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": round(time.perf_counter() - t0, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "returncode": proc.returncode, "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1)}


def _tail(path: Path, n: int = 2500) -> str:
    return path.read_text(errors="replace")[-n:]


def _row_of(stage: str) -> str | None:
    name = stage.split("@", 1)[0]
    return name[len("train_"):] if name.startswith("train_") else None


def log_cost_to_mlflow(env: dict[str, str], experiment: str, stage: str, cost: dict[str, Any], path: Path) -> bool:
    """Add the cost figures to the MLflow run of ``stage`` (metrics ``cost/*`` and the JSON)."""
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return False
    runs = client.search_runs([exp.experiment_id], f"tags.`uplr.dvc_stage` = '{stage}'", max_results=1)
    if not runs:
        return False
    rid = runs[0].info.run_id
    for key in ("flops_per_iteration", "peak_step_bytes", "weight_bytes", "inference_flops_per_target_image"):
        client.log_metric(rid, f"cost/{key}", float(cost[key]))
    client.log_artifact(rid, str(path), "cost")
    return True


def run_smoke(repo: Path, benchmark: str, work: Path, n: int = 3, n_val: int = 2, iterations: int = 2,
              scale: float = 1.0, cost: bool = True) -> dict[str, Any]:
    """Prepare the copy in ``work``, run every stage, measure; return the summary."""
    import torch

    from uplr.config import load_config
    from uplr.train.cost import shape_key

    if benchmark not in BENCHMARKS:
        raise UplrError(f"benchmark {benchmark!r} is not a real benchmark; valid ones: {', '.join(BENCHMARKS)}")
    env = _env(work)
    prepare(repo, work, benchmark, n, n_val, iterations, scale, env)
    folder = work / "pipelines" / benchmark
    dvc_yaml = f"pipelines/{benchmark}/dvc.yaml"
    cfg = load_config(folder / "params.yaml")
    order = stage_order(work, dvc_yaml, env)
    log.info("%d stages: %s", len(order), ", ".join(order))
    stages: list[dict[str, Any]] = []
    costs: dict[str, dict[str, Any]] = {}
    by_key: dict[str, str] = {}
    for stage in order:
        logfile = work / "smoke-logs" / f"{stage.replace('@', '_')}.log"
        log.info("stage %s ...", stage)
        m = measured([_dvc(), "repro", "-s", f"{dvc_yaml}:{stage}"], work, env, logfile)
        stages.append({"stage": stage, **m})
        log.info("stage %s: %.1f s, peak RSS %.0f MiB", stage, m["seconds"], m["peak_rss_mib"])
        if m["returncode"] != 0:
            raise UplrError(f"smoke {benchmark}: stage {stage} failed (exit {m['returncode']}); "
                            f"log {logfile}:\n{_tail(logfile)}")
        row = _row_of(stage)
        if cost and row is not None:
            out = folder / "runs" / row / "seed0" / "cost.json"
            key = shape_key(cfg, row)
            if key in by_key:  # same shapes as a row measured before: same cost per iteration
                c = {**costs[by_key[key]], "row": row, "same_shapes_as": by_key[key]}
                write_json(out, c)
            else:
                cm = measured([sys.executable, "-m", "uplr.train.cost", "--params", "params.yaml", "--row", row,
                               "--out", str(out.relative_to(folder))], folder, env,
                              work / "smoke-logs" / f"cost_{row}.log")
                stages.append({"stage": f"(cost measurement: {row})", **cm})
                if cm["returncode"] != 0:
                    raise UplrError(f"smoke {benchmark}: the cost measurement of row {row} failed; log "
                                    f"{work / 'smoke-logs' / f'cost_{row}.log'}")
                c = json.loads(out.read_text())
                by_key[key] = row
            c["logged_to_mlflow"] = log_cost_to_mlflow(env, cfg.tracking.experiment, stage, c, out)
            costs[row] = c
        write_json(work / "smoke-progress.json", {"stages": stages, "costs": costs})  # survives a failure
    again = _check([_dvc(), "repro", dvc_yaml], work, env)
    if "Running stage" in again:
        raise UplrError(f"smoke {benchmark}: a second dvc repro ran stages again:\n{again[-1500:]}")
    return {
        "benchmark": benchmark,
        "what": "make reproduce SMOKE=1: the real dvc.yaml, every stage, on fakes in the real formats",
        "images": {"train": n, "val": n_val},
        "frame_scale": scale,
        "source_size": list(cfg.data.source.size),
        "target_size": list(cfg.data.target.size),
        "trunk": cfg.model.trunk,
        "iterations": iterations,
        "stages": stages,
        "total_seconds": round(sum(s["seconds"] for s in stages), 1),
        "max_peak_rss_mib": max(s["peak_rss_mib"] for s in stages),
        "costs": costs,
        "environment": {
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def measure_costs(repo: Path, benchmark: str, tmp: Path) -> dict[str, Any]:
    """Only the per-row cost measurement, at the pipeline's own params (no pipeline run): ``--cost-only``."""
    import torch

    from uplr.config import load_config
    from uplr.train.cost import shape_key

    folder = repo / "pipelines" / benchmark
    cfg = load_config(folder / "params.yaml")
    rows = []
    for name in yaml.safe_load((folder / "dvc.yaml").read_text())["stages"]:
        row = _row_of(name)
        if row is not None and row not in rows:
            rows.append(row)
    costs: dict[str, dict[str, Any]] = {}
    by_key: dict[str, str] = {}
    stages = []
    for row in rows:
        key = shape_key(cfg, row)
        if key in by_key:
            costs[row] = {**costs[by_key[key]], "row": row, "same_shapes_as": by_key[key]}
            continue
        out = tmp / f"{row}.json"
        log.info("measuring one iteration of %s ...", row)
        m = measured([sys.executable, "-m", "uplr.train.cost", "--params", "params.yaml", "--row", row,
                      "--out", str(out)], folder, dict(os.environ), tmp / f"cost_{row}.log")
        if m["returncode"] != 0:
            raise UplrError(f"the cost measurement of row {row} failed:\n{_tail(tmp / f'cost_{row}.log')}")
        stages.append({"stage": f"(cost measurement: {row})", **m})
        costs[row] = json.loads(out.read_text())
        by_key[key] = row
    return {
        "benchmark": benchmark, "what": "uplr.smoke --cost-only: the per-row cost at the pipeline's params, "
        "no pipeline run", "cost_only": True, "source_size": list(cfg.data.source.size),
        "target_size": list(cfg.data.target.size), "trunk": cfg.model.trunk, "iterations": 0,
        "images": {"train": 0, "val": 0}, "stages": stages, "costs": costs,
        "total_seconds": round(sum(x["seconds"] for x in stages), 1),
        "max_peak_rss_mib": max((x["peak_rss_mib"] for x in stages), default=0.0),
        "environment": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
                        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                        "torch": torch.__version__},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"smoke run of {summary['benchmark']} ({summary['trunk']}, source {summary['source_size']}, "
             f"target {summary['target_size']}, {summary['iterations']} iterations per training stage, "
             f"{summary['images']['train']} train / {summary['images']['val']} val images, "
             f"OMP_NUM_THREADS={summary['environment']['OMP_NUM_THREADS']})",
             f"{'stage':<38} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}"]
    for s in summary["stages"]:
        lines.append(f"{s['stage']:<38} {s['seconds']:>8.1f} {s['cpu_seconds']:>8.1f} {s['peak_rss_mib']:>13.0f}")
    lines.append(f"{'total':<38} {summary['total_seconds']:>8.1f} {'':>8} {summary['max_peak_rss_mib']:>13.0f}")
    if summary["costs"]:
        lines.append("")
        lines.append(f"{'row':<14} {'TFLOP/iteration':>16} {'peak step GiB':>14} {'inference TFLOP/img':>20}")
        for row, c in summary["costs"].items():
            lines.append(f"{row:<14} {c['flops_per_iteration'] / 1e12:>16.3f} {c['peak_step_bytes'] / 2**30:>14.2f} "
                         f"{c['inference_flops_per_target_image'] / 1e12:>20.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m uplr.smoke", description=__doc__.split("\n")[0])
    ap.add_argument("benchmark", help=" | ".join(BENCHMARKS))
    ap.add_argument("--images", type=int, default=3, help="train images per dataset (default 3)")
    ap.add_argument("--val-images", type=int, default=2, help="target val/test images (default 2)")
    ap.add_argument("--iterations", type=int, default=2, help="iterations per training stage (default 2)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="scale the frames and the crops (1.0: the real sizes; the test uses less)")
    ap.add_argument("--workdir", default=None, help="the temporary project (default: a new temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project")
    ap.add_argument("--out", default=None, help="summary JSON (default pipelines/<benchmark>/smoke.json)")
    ap.add_argument("--no-cost", action="store_true", help="skip the per-row FLOP/memory measurement")
    ap.add_argument("--cost-only", action="store_true",
                    help="only measure each row's cost at the pipeline's params (no pipeline run)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    repo = Path.cwd()
    try:
        if args.benchmark not in BENCHMARKS:
            raise UplrError(f"benchmark {args.benchmark!r} is not a real benchmark; valid ones: {', '.join(BENCHMARKS)}")
        if not (repo / LAYOUT).is_file():
            raise UplrError(f"{repo / LAYOUT}: missing; run from the repository root")
        for name, v in (("--images", args.images), ("--val-images", args.val_images), ("--iterations", args.iterations)):
            if v < 1:
                raise UplrError(f"{name} must be >= 1, got {v}")
        work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"uplr-smoke-{args.benchmark}-"))
        work.mkdir(parents=True, exist_ok=True)
        if args.cost_only:
            try:
                summary = measure_costs(repo, args.benchmark, work.resolve())
            finally:
                if not (args.keep or args.workdir):
                    shutil.rmtree(work, ignore_errors=True)
        elif any(work.iterdir()):
            raise UplrError(f"{work}: --workdir must be empty (or absent)")
        else:
            try:
                summary = run_smoke(repo, args.benchmark, work.resolve(), args.images, args.val_images,
                                    args.iterations, args.scale, cost=not args.no_cost)
            finally:
                if args.keep or args.workdir:
                    log.info("project kept in %s", work)
                else:
                    shutil.rmtree(work, ignore_errors=True)
    except UplrError as e:
        print(f"uplr.smoke: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else repo / "pipelines" / args.benchmark / "smoke.json"
    write_json(out, summary)
    print(format_table(summary))
    print(f"summary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
