"""Lineage of a stage run: git commit, DVC stage, input hashes from dvc.lock, image digest.

The hashes come from what DVC already recorded: ``dvc.lock`` (outputs of upstream stages) and ``*.dvc``
files (raw data put under DVC with ``dvc add`` / ``dvc import-url``). An input that DVC does not track is
recorded as ``untracked`` rather than hashed by us, so the tag always means "DVC's md5".
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import yaml

UNTRACKED = "untracked"


def repo_root(start: Path | None = None) -> Path:
    """The DVC (or git) repository that holds ``start`` (default: cwd); ``UPLR_ROOT`` overrides."""
    if os.environ.get("UPLR_ROOT"):
        return Path(os.environ["UPLR_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for marker in (".dvc", ".git"):
        for d in (here, *here.parents):
            if (d / marker).exists():
                return d
    return here


def git_commit(root: Path) -> tuple[str, bool]:
    """(commit sha or 'unknown', whether the work tree has uncommitted changes to tracked files)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root, capture_output=True, text=True, check=True,
            ).stdout.strip()
        )
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def _dvc_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(dvc.lock files, *.dvc files) of the repository, from git's index (not ignored), not a tree walk:
    datasets and DVC's cache can hold hundreds of thousands of files."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "--", "dvc.lock", "*/dvc.lock", "*.dvc"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.split("\n")
        paths = [root / p for p in listed if p]
    except (OSError, subprocess.CalledProcessError):  # not a git work tree: walk, pruning heavy folders
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc", ".venv", "data", "datasets")]
            paths += [Path(dirpath) / f for f in filenames if f == "dvc.lock" or f.endswith(".dvc")]
    locks = [p for p in paths if p.name == "dvc.lock" and p.is_file()]
    dvcs = [p for p in paths if p.suffix == ".dvc" and p.is_file()]
    return locks, dvcs


def _dvc_tracked_hashes(root: Path) -> dict[Path, str]:
    """Every path DVC has a hash for, resolved to an absolute path -> md5."""
    found: dict[Path, str] = {}
    locks, dvcs = _dvc_files(root)
    for lock in locks:
        data = yaml.safe_load(lock.read_text()) or {}
        for stage in (data.get("stages") or {}).values():
            for out in stage.get("outs", []) or []:
                if "md5" in out:
                    found[(lock.parent / out["path"]).resolve()] = out["md5"]
    for dvcfile in dvcs:
        data = yaml.safe_load(dvcfile.read_text()) or {}
        for out in data.get("outs", []) or []:
            if "md5" in out:
                found[(dvcfile.parent / out["path"]).resolve()] = out["md5"]
    return found


def input_hashes(paths: list[Path], root: Path) -> dict[str, str]:
    """DVC's md5 of each input (or of the tracked folder that contains it), keyed by repo-relative path."""
    tracked = _dvc_tracked_hashes(root)
    out = {}
    for p in paths:
        p = Path(p).resolve()
        value = UNTRACKED
        for candidate in (p, *p.parents):
            if candidate in tracked:
                value = tracked[candidate] if candidate == p else f"{tracked[candidate]} ({candidate.name}/)"
                break
            if candidate == root:
                break
        try:
            key = str(p.relative_to(root))
        except ValueError:
            key = str(p)
        out[key] = value
    return out


def _dvc_ancestor_id() -> str | None:
    """Identify the running ``dvc repro``/``dvc exp run`` by its pid and start time (Linux /proc)."""
    pid = os.getppid()
    for _ in range(6):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if "dvc" in cmdline.split(" ")[0] or " dvc " in f" {cmdline} " or "/dvc " in cmdline:
            return f"dvc-{pid}-{stat[19]}"
        pid = int(stat[1])
        if pid <= 1:
            return None
    return None


def pipeline_run_id() -> str:
    """The id shared by every stage of one pipeline run.

    ``UPLR_PIPELINE_RUN`` (set by the Makefile targets) wins; inside a bare ``dvc repro`` the id of the
    DVC process is used, so its stages still share one; a stage run by hand gets a fresh id.
    """
    return os.environ.get("UPLR_PIPELINE_RUN") or _dvc_ancestor_id() or f"adhoc-{uuid.uuid4().hex[:12]}"


def image_reference() -> str:
    """The container image a stage ran in (set by the docker runner), or ``host``."""
    return os.environ.get("UPLR_IMAGE", "host")


def image_base() -> str:
    """The base image the container image was built on (its OCI base labels, passed in by the docker
    runner as ``name@digest``), or ``none`` on the host or for an unlabelled image."""
    return os.environ.get("UPLR_IMAGE_BASE", "none")


def _stat_signature(path: Path) -> str:
    """size and mtime of a file, or of every file under a folder (sorted): changes when the content is
    rewritten, without reading it. Used only where DVC has no hash for the path."""
    if path.is_file():
        st = path.stat()
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    if not path.is_dir():
        return "missing"
    h = hashlib.md5()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            f = Path(dirpath) / name
            st = f.stat()
            h.update(f"{f.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"stat:{h.hexdigest()}"


def input_signature(paths: list[Path], root: Path) -> dict[str, str]:
    """What decides whether a resumable checkpoint still belongs to these inputs: DVC's md5 of each input
    (current for upstream outputs: ``dvc repro`` writes dvc.lock after each stage), or, for an input DVC
    does not track (a stage run by hand), a signature of its files' sizes and modification times."""
    paths = list(dict.fromkeys(Path(p).resolve() for p in paths))  # one key per path
    sig = input_hashes(paths, root)
    for p, key in zip(paths, list(sig), strict=True):
        if sig[key] == UNTRACKED:
            sig[key] = _stat_signature(Path(p))
    return sig
