"""The reliability battery of issue 11 (inputs half): each hostile case through the real CLI, as a table.

    .venv/bin/python bench/bench_reliability.py [--code DIR] [--only SUBSTRING] [--keep]

In a temporary folder: tiny fake GTA5 (source) and Cityscapes (target) sets, a params file with tiny
limits, a private MLflow store; one source-only model (2 iterations) and the class statistics are
made first, as the cases that need them. Then each case runs ``python -m uplr.cli ...`` and the table
gives: case, exit code, the first line of stderr (``[traceback]`` when stderr holds one), and the state
left behind (temporary files, outputs). ``--code DIR`` runs the CLI from another checkout (e.g. the
main worktree) to compare before/after; the fixtures always come from this one.

The read-only folder and the full disk are real: a read-only bind mount and a 1 MiB tmpfs made inside
``unshare -rm`` (a private mount namespace; nothing is mounted on the host). Where unshare is refused
those rows say so. The cases of the training half (NaN loss, a code change) are listed with the test
module that covers them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fakes import make_fake_cityscapes, make_fake_gta5, write_palette_png  # noqa: E402

PARAMS = """
data:
  source: {dataset: gta5, root: data/src, split: data/src/all.txt, size: [64, 32]}
  target: {dataset: cityscapes, root: data/tgt, split: data/tgt/train.txt, val_split: data/tgt/val.txt, size: [64, 32]}
model: {trunk: resnet18_half}
train: {iterations: 2, batch_size: 2, lr: 0.01, checkpoint_every: 1, log_every: 1}
tgaa: {stages: 1, k: 2}
translate: {beta: 0.05}
upst: {bins: 64}
evaluate: {batch_size: 2}
tracking: {experiment: uplr-bench-reliability}
"""


def make_workspace(ws: Path) -> None:
    make_fake_gta5(ws / "data/src", n=6, size=(64, 32), seed=1)
    make_fake_cityscapes(ws / "data/tgt", split="train", n=4, size=(64, 32), seed=2)
    make_fake_cityscapes(ws / "data/tgt", split="val", n=3, size=(64, 32), seed=3)
    (ws / "params.yaml").write_text(PARAMS)


def have_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class Battery:
    def __init__(self, ws: Path, code: Path) -> None:
        self.ws, self.code = ws, code
        self.env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1",
                    "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}", "UPLR_ROOT": str(ws)}
        self.rows: list[tuple[str, str, str, str]] = []
        self.cli = [sys.executable, "-m", "uplr.cli"]

    def run(self, args: list[str], cwd: Path | None = None, shell_prefix: str | None = None,
            timeout: int = 600) -> subprocess.CompletedProcess:
        cmd = self.cli + args
        if shell_prefix is not None:  # run inside `unshare -rm sh -c "<prefix> && exec <cmd>"`
            cmd = ["unshare", "-rm", "sh", "-c", f"{shell_prefix} && exec {shlex.join(cmd)}"]
        try:
            return subprocess.run(cmd, cwd=cwd or self.ws, env=self.env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(cmd, 124, e.stdout or "", f"timed out after {timeout} s")

    def record(self, case: str, proc: subprocess.CompletedProcess | None, state: str, note: str = "") -> None:
        if proc is None:
            self.rows.append((case, "-", note, state))
            return
        err = proc.stderr.strip().splitlines()
        lines = [ln for ln in err if ln.startswith("uplr: error:")] or err[-1:] or [""]
        first = lines[0][:150] if proc.returncode != 0 or lines[0].startswith("uplr: error:") else "(no error)"
        if "Traceback (most recent call last)" in proc.stderr:
            first = f"[traceback] {err[-1][:140] if err else ''}"
        self.rows.append((case, str(proc.returncode), first + (f" ({note})" if note else ""), state))

    def table(self) -> str:
        out = ["| case | exit | first line of stderr | state left behind |", "|:---|:---|:---|:---|"]
        out += [f"| {c} | {r} | {f.replace('|', '/')} | {s} |" for c, r, f, s in self.rows]
        return "\n".join(out)


def temps(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith((".tmp", ".old")))


def describe(folder: Path, what: list[str] | None = None) -> str:
    t = temps(folder)
    exists = [w for w in (what or []) if (folder / w).exists()]
    parts = [f"{len(t)} temp file(s)" + (f": {', '.join(t[:3])}" if t else "")]
    if what is not None:
        parts.append("outputs: " + (", ".join(exists) if exists else "none"))
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose uplr package runs (default: this one)")
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (path printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="uplr-reliability-"))
    ws = tmp / "ws"
    ws.mkdir()
    make_workspace(ws)
    b = Battery(ws, args.code.resolve())
    t0 = time.perf_counter()
    cases: list[tuple[str, Callable[[], tuple[subprocess.CompletedProcess | None, str, str]]]] = []

    def case(name: str):
        def add(fn):
            if args.only in name:
                cases.append((name, fn))
            return fn
        return add

    model = ws / "runs/base/model.pt"
    stats = ws / "runs/class_stats.npz"
    train = ["train", "--row", "source_only", "--out"]
    evaluate = ["evaluate", "--model", str(model), "--row", "source_only", "--out"]
    # --init-model: the +SR model that +TGAA continues, here the base one (main before the grid took
    # --rank-model instead: its "before" column was measured with that flag)
    tgaa = ["train", "--row", "tgaa", "--class-stats", str(stats), "--init-model", str(model), "--out"]

    # 1. parameters out of range / outside a closed set
    config_cases = [
        ("train.batch_size=0", train), ("train.checkpoint_every=0", train), ("evaluate.batch_size=0", evaluate),
        ("model.num_classes=5", train), ("train.iterations=-5", train), ("tgaa.stages=0", tgaa),
        ("tgaa.k=-1", tgaa), ("tgaa.k=50", tgaa), ("model.trunk=resnet50", train),
    ]
    for i, (override, cmd) in enumerate(config_cases):
        def run_config(i=i, override=override, cmd=cmd):
            out = ws / f"runs/cfg{i}"
            target = out / ("metrics.json" if cmd is evaluate else "")
            p = b.run([*cmd, str(target), "-o", override])
            return p, describe(out, ["model.pt", "metrics.json"]), ""
        case(f"`{override}`")(run_config)

    # 2. a truncated PNG read in a DataLoader worker (data.num_workers: 2)
    @case("truncated PNG, `data.num_workers=2`")
    def bad_png():
        bad = ws / "bad_png"
        shutil.copytree(ws / "data", bad / "data")
        (bad / "params.yaml").write_text(PARAMS)
        for img in sorted((bad / "data/src/images").glob("*.png")):
            img.write_bytes(img.read_bytes()[:200])  # the header survives: only decoding fails
        p = b.run([*train, str(bad / "runs/o"), "-o", "data.num_workers=2"], cwd=bad)
        return p, describe(bad / "runs/o", ["model.pt"]), ""

    # 3. a read-only output folder, 4. a full disk (real mounts in a private namespace)
    unshare = have_unshare()

    @case("read-only output folder (evaluate)")
    def read_only():
        ro = ws / "ro"
        ro.mkdir()
        if not unshare:
            return None, "-", "skipped: unshare -rm refused here"
        q = shlex.quote(str(ro))
        p = b.run([*evaluate, str(ro / "metrics.json"), "--predictions", str(ro / "pred")],
                  shell_prefix=f"mount --bind {q} {q} && mount -o remount,bind,ro {q}")
        return p, describe(ro, ["metrics.json", "pred"]), ""

    for name in ("evaluate", "class-stats", "train"):
        def full_disk(name=name):
            full = ws / f"full_{name}"
            full.mkdir()
            if not unshare:
                return None, "-", "skipped: unshare -rm refused here"
            q = shlex.quote(str(full))
            fill = f"mount -t tmpfs -o size=1m tmpfs {q} && (dd if=/dev/zero of={q}/filler bs=64k 2>/dev/null; true)"
            cmd = {"evaluate": [*evaluate, str(full / "metrics.json"), "--predictions", str(full / "pred")],
                   "class-stats": ["class-stats", "--out", str(full / "stats.npz")],
                   "train": [*train, str(full / "o")]}[name]
            return b.run(cmd, shell_prefix=fill), "the tmpfs went with its namespace", ""
        case(f"full disk ({name})")(full_disk)

    # 5. missing and size-mismatched frames
    fr = ws / "frames"

    def frames_root() -> Path:
        if not fr.exists():
            shutil.copytree(ws / "data/src", fr)
            (fr / "images/00002.png").unlink()
            write_palette_png(fr / "labels/00003.png", np.zeros((31, 64), dtype=np.uint8))
        return fr

    check = ["data", "check", "gta5", "--root", str(fr), "--split", str(fr / "all.txt")]

    @case("missing + size-mismatched frame: `data check`")
    def frames_check():
        frames_root()
        p = b.run(check)
        out = p.stdout.strip().splitlines()
        return p, "stdout: " + (out[0][-70:] if out else ""), ""

    @case("missing + size-mismatched frame: `data check --strict`")
    def frames_strict():
        frames_root()
        return b.run([*check, "--strict"]), "", ""

    @case("missing frame, `data.source.strict=true` (train)")
    def frames_train():
        frames_root()
        p = b.run([*train, str(ws / "runs/frames"), "-o", f"data.source.root={fr}", "-o",
                   f"data.source.split={fr / 'all.txt'}", "-o", "data.source.strict=true"])
        return p, describe(ws / "runs/frames", ["model.pt"]), ""

    # 6. temporary files a killed run left (the names today's main gives them, and ours)
    @case("stale .tmp of a killed evaluate")
    def stale_evaluate():
        ev = ws / "runs/eval"
        ev.mkdir(parents=True)
        (ev / ".metrics.json.k2j4h1ab.tmp").write_text("{half")
        (ev / ".metrics.json.uplr-k2j4h1ab.tmp").write_text("{half")
        (ev / ".pred.q8w7e6r5.tmp").mkdir()
        (ev / ".pred.q8w7e6r5.tmp/x.png").write_bytes(b"half")
        before = len(temps(ev))
        p = b.run([*evaluate, str(ev / "metrics.json"), "--predictions", str(ev / "pred")])
        return p, f"{before} planted, after: " + describe(ev, ["metrics.json", "pred"]), ""

    @case("stale .tmp of a killed pseudo_label")
    def stale_pseudo():
        ps = ws / "runs/pseudo"
        ps.mkdir(parents=True)
        (ps / ".labels.a1b2c3d4.tmp").mkdir()
        (ps / ".labels.a1b2c3d4.tmp/half.png").write_bytes(b"half")
        (ps / ".summary.json.e5f6g7h8.tmp").write_text("{half")
        before = len(temps(ps))
        p = b.run(["pseudo", "--model", str(model), "--out", str(ps / "labels"), "--summary",
                   str(ps / "summary.json")])
        return p, f"{before} planted, after: " + describe(ps, ["labels", "summary.json"]), ""

    @case("stale .tmp of a killed `uplr tables`")
    def stale_tables():
        rep = ws / "reports"
        rep.mkdir()
        (rep / ".table3.md.z9y8x7w6.tmp").write_text("half")
        (rep / ".README.md.uplr-z9y8x7w6.tmp").write_text("half")
        before = len(temps(rep))
        p = b.run(["tables", "--out", str(rep), "--experiment", "uplr-bench-reliability"])
        return p, f"{before} planted, after: " + describe(rep, ["README.md"]), ""

    # the training half (another module covers them)
    @case("`train.lr=1e6` (NaN loss)")
    def nan_loss():
        p = b.run([*train, str(ws / "runs/nan"), "-o", "train.lr=1e6", "-o", "train.iterations=4"])
        return p, describe(ws / "runs/nan", ["model.pt"]), "training half: tests/test_reliability_runs.py"

    @case("code change, then resume")
    def code_change():
        return None, "-", "covered by tests/test_reliability_runs.py"

    # the model and class statistics some cases need
    if any(n.startswith(("`evaluate", "`tgaa", "read-only", "full disk (evaluate", "stale .tmp of a killed e",
                         "stale .tmp of a killed p")) for n, _ in cases):
        p = b.run(["train", "--row", "source_only", "--out", str(model.parent)])
        if p.returncode != 0:
            sys.exit(f"could not train the base model:\n{p.stderr[-3000:]}")
        p = b.run(["class-stats", "--out", str(stats)])
        if p.returncode != 0:
            sys.exit(f"could not write class statistics:\n{p.stderr[-3000:]}")
        if any(n.startswith("`tgaa") for n, _ in cases):  # the TGAA row reads the translated source set
            p = b.run(["translate"])
            if p.returncode != 0:
                sys.exit(f"could not translate the source set:\n{p.stderr[-3000:]}")
        print(f"base model and class statistics: {time.perf_counter() - t0:.0f} s", flush=True)

    def one(item):
        name, fn = item
        t = time.perf_counter()
        proc, state, note = fn()
        b.record(name, proc, state, note)
        print(f"{name}: exit {proc.returncode if proc else '-'} ({time.perf_counter() - t:.0f} s)", flush=True)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(one, cases))
    order = {n: i for i, (n, _) in enumerate(cases)}
    b.rows.sort(key=lambda r: order.get(r[0], 0))
    print(f"\nuplr package from: {b.code}; {time.perf_counter() - t0:.0f} s\n")
    print(b.table())
    if args.keep:
        print(f"\nkept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
