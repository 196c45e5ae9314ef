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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

PARAMS = """
data:
  source: {dataset: gta5, root: data/src, split: data/src/all.txt, size: [64, 32]}
  target: {dataset: cityscapes, root: data/tgt, split: data/tgt/train.txt, val_split: data/tgt/val.txt, size: [64, 32]}
model: {trunk: resnet18_half}
train: {iterations: 2, batch_size: 2, lr: 0.01, checkpoint_every: 1, log_every: 1}
tgaa: {stages: 1, k: 2}
upst: {bins: 64}
evaluate: {batch_size: 2}
tracking: {experiment: uplr-bench-reliability}
"""


def make_workspace(ws: Path) -> None:
    from fakes import make_fake_cityscapes, make_fake_gta5

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
        first = lines[0][:150]
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
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (path printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="uplr-reliability-"))
    ws = tmp / "ws"
    ws.mkdir()
    make_workspace(ws)
    b = Battery(ws, args.code.resolve())
    t0 = time.perf_counter()

    def want(name: str) -> bool:
        return args.only in name

    # the model and class statistics some cases need
    model = ws / "runs/base/model.pt"
    stats = ws / "runs/class_stats.npz"
    p = b.run(["train", "--row", "source_only", "--out", str(model.parent)])
    if p.returncode != 0:
        sys.exit(f"could not train the base model:\n{p.stderr[-3000:]}")
    p = b.run(["class-stats", "--out", str(stats)])
    if p.returncode != 0:
        sys.exit(f"could not write class statistics:\n{p.stderr[-3000:]}")

    # 1. parameters out of range / outside a closed set
    train = ["train", "--row", "source_only", "--out"]
    evaluate = ["evaluate", "--model", str(model), "--row", "source_only", "--out"]
    tgaa = ["train", "--row", "tgaa", "--class-stats", str(stats), "--rank-model", str(model), "--out"]
    config_cases = [
        ("train.batch_size=0", train), ("train.checkpoint_every=0", train), ("evaluate.batch_size=0", evaluate),
        ("model.num_classes=5", train), ("train.iterations=-5", train), ("tgaa.stages=0", tgaa),
        ("tgaa.k=-1", tgaa), ("tgaa.k=50", tgaa), ("model.trunk=resnet50", train),
        ("upst.method=otsu", ["pseudo", "--model", str(model), "--out"]), ("train.device=gpu", train),
        ("translate.beta=1.5", ["translate", "-o", "translate.out=runs/tr", "--manifest"]),
        ("data.num_workers=-1", train),
    ]
    for i, (override, cmd) in enumerate(config_cases):
        if not want(override):
            continue
        out = ws / f"runs/cfg{i}"
        target = out / ("metrics.json" if cmd is evaluate else "m.json" if cmd[0] == "translate" else "")
        p = b.run([*cmd, str(target), "-o", override])
        b.record(f"`{override}`", p, describe(out, ["model.pt", "metrics.json"]))

    # 2. a truncated PNG read in a DataLoader worker (data.num_workers: 2)
    if want("bad PNG"):
        bad = ws / "bad_png"
        shutil.copytree(ws / "data", bad / "data")
        (bad / "params.yaml").write_text(PARAMS)
        for img in sorted((bad / "data/src/images").glob("*.png")):
            img.write_bytes(img.read_bytes()[:200])  # the header survives: only decoding fails
        p = b.run([*train, str(bad / "runs/o"), "-o", "data.num_workers=2"], cwd=bad)
        b.record("truncated PNG, `data.num_workers=2`", p, describe(bad / "runs/o", ["model.pt"]))

    # 3. a read-only output folder, 4. a full disk (real mounts in a private namespace)
    unshare = have_unshare()
    if want("read-only"):
        ro = ws / "ro"
        ro.mkdir()
        if unshare:
            q = shlex.quote(str(ro))
            p = b.run([*evaluate, str(ro / "metrics.json"), "--predictions", str(ro / "pred")],
                      shell_prefix=f"mount --bind {q} {q} && mount -o remount,bind,ro {q}")
            b.record("read-only output folder (evaluate)", p, describe(ro, ["metrics.json", "pred"]))
        else:
            b.record("read-only output folder (evaluate)", None, "-", "skipped: unshare -rm refused here")
    if want("full disk"):
        full = ws / "full"
        full.mkdir()
        if unshare:
            q = shlex.quote(str(full))
            fill = f"mount -t tmpfs -o size=1m tmpfs {q} && (dd if=/dev/zero of={q}/filler bs=64k 2>/dev/null; true)"
            for name, cmd in (("evaluate", [*evaluate, str(full / "metrics.json"), "--predictions",
                                            str(full / "pred")]),
                              ("class-stats", ["class-stats", "--out", str(full / "stats.npz")]),
                              ("train", [*train, str(full / "o")])):
                p = b.run(cmd, shell_prefix=fill)
                b.record(f"full disk ({name})", p, "tmpfs gone with the namespace")
        else:
            b.record("full disk", None, "-", "skipped: unshare -rm refused here")

    # 5. missing and size-mismatched frames
    if want("frames"):
        fr = ws / "frames"
        shutil.copytree(ws / "data/src", fr)
        (fr / "images/00002.png").unlink()
        import numpy as np
        from fakes import write_palette_png

        write_palette_png(fr / "labels/00003.png", np.zeros((31, 64), dtype=np.uint8))
        check = ["data", "check", "gta5", "--root", str(fr), "--split", str(fr / "all.txt")]
        p = b.run(check)
        out = p.stdout.strip().splitlines()
        b.record("missing + size-mismatched frame: `data check`", p, "stdout: " + (out[0][-60:] if out else ""))
        p = b.run([*check, "--strict"])
        b.record("missing + size-mismatched frame: `data check --strict`", p, "")
        p = b.run([*train, str(ws / "runs/frames"), "-o", f"data.source.root={fr}", "-o",
                   f"data.source.split={fr / 'all.txt'}", "-o", "data.source.strict=true"])
        b.record("missing frame, `data.source.strict=true` (train)", p, describe(ws / "runs/frames", ["model.pt"]))

    # 6. temporary files a killed run left (the names today's main gives them, and ours)
    if want("stale"):
        ev = ws / "runs/eval"
        ev.mkdir(parents=True)
        (ev / ".metrics.json.k2j4h1ab.tmp").write_text("{half")
        (ev / ".metrics.json.uplr-k2j4h1ab.tmp").write_text("{half")
        (ev / ".pred.q8w7e6r5.tmp").mkdir()
        (ev / ".pred.q8w7e6r5.tmp/x.png").write_bytes(b"half")
        before = len(temps(ev))
        p = b.run([*evaluate, str(ev / "metrics.json"), "--predictions", str(ev / "pred")])
        b.record(f"stale .tmp from a killed evaluate ({before} planted)", p, describe(ev, ["metrics.json", "pred"]))

        ps = ws / "runs/pseudo"
        ps.mkdir(parents=True)
        (ps / ".labels.a1b2c3d4.tmp").mkdir()
        (ps / ".labels.a1b2c3d4.tmp/half.png").write_bytes(b"half")
        (ps / ".summary.json.e5f6g7h8.tmp").write_text("{half")
        before = len(temps(ps))
        p = b.run(["pseudo", "--model", str(model), "--out", str(ps / "labels"), "--summary",
                   str(ps / "summary.json")])
        b.record(f"stale .tmp from a killed pseudo_label ({before} planted)", p,
                 describe(ps, ["labels", "summary.json"]))

        rep = ws / "reports"
        rep.mkdir()
        (rep / ".table3.md.z9y8x7w6.tmp").write_text("half")
        (rep / ".README.md.uplr-z9y8x7w6.tmp").write_text("half")
        before = len(temps(rep))
        p = b.run(["tables", "--out", str(rep), "--experiment", "uplr-bench-reliability"])
        b.record(f"stale .tmp from a killed `uplr tables` ({before} planted)", p, describe(rep, ["README.md"]))

    # the training half (another module covers them)
    if want("NaN"):
        p = b.run([*train, str(ws / "runs/nan"), "-o", "train.lr=1e6", "-o", "train.iterations=4"])
        b.record("`train.lr=1e6` (NaN loss)", p, describe(ws / "runs/nan", ["model.pt"]),
                 "training half: tests/test_reliability_runs.py")
    if want("code change"):
        b.record("code change, then resume", None, "-", "covered by tests/test_reliability_runs.py")

    print(f"uplr package from: {b.code}; {time.perf_counter() - t0:.0f} s\n")
    print(b.table())
    if args.keep:
        print(f"\nkept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
