"""Time `make setup` from nothing and `make demo` after it, in a fresh clone (targets: 5 min each).

    .venv/bin/python bench/bench_targets.py [--keep]

Clones the repository's HEAD into a temporary folder (nothing installed there), runs `make setup`, then
`make demo` (the embedded benchmark: generate, train source-only and oracle, evaluate, tables) with a
private MLflow store, and a second `make setup` (idempotence: should take seconds). Prints wall times
and their ratio to the 300 s targets. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 300.0


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the clone (path printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="uplr-bench-"))
    clone = tmp / "uplr"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UPLR_", "MLFLOW_"))}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)
    try:
        setup = timed(["make", "setup"], clone, env)
        again = timed(["make", "setup"], clone, env)
        demo = timed(["make", "demo"], clone, env)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"make setup (fresh)   {setup:7.1f} s   {setup / TARGET_S:5.2f} x target (300 s)")
    print(f"make setup (again)   {again:7.1f} s")
    print(f"make demo            {demo:7.1f} s   {demo / TARGET_S:5.2f} x target (300 s)")
    if args.keep:
        print(f"clone kept at {clone}")


if __name__ == "__main__":
    main()
