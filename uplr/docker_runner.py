"""Run a stage's command inside the pinned image (``UPLR_RUNNER=docker``, see uplr/runner.py).

The engine is Docker or Podman (``UPLR_ENGINE``); both take the same ``run`` options except for GPUs
(``--gpus`` for Docker, CDI ``--device nvidia.com/gpu=...`` for Podman) and the user namespace of a
rootless Podman (``--userns=keep-id``, so outputs belong to the calling user).

The image (docker/Dockerfile) holds the environment: Python, the hash-pinned lock, CUDA wheels. The code
is the mounted checkout: the repository is bind-mounted at the SAME path as on the host and put first on
``PYTHONPATH``, so the commit recorded by the lineage tags is the code that ran. The same path keeps every
absolute path valid on both sides: the SQLite MLflow store (``sqlite:////repo/mlflow.db``) and the artifact
locations recorded in it, DVC's links into its cache, ``UPLR_ROOT``. The container runs as the host user,
so outputs belong to them.

Settings (environment):

* ``UPLR_ENGINE``: ``docker`` or ``podman``; unset: whichever is on PATH, Docker first.
* ``UPLR_IMAGE_REF``: the image (default: the line in docker/IMAGE). Inside, ``UPLR_IMAGE`` names it (an
  MLflow lineage tag) and ``UPLR_IMAGE_ID`` gives the local image id.
* ``UPLR_DOCKER_GPUS``: ``all``, ``device=0,1`` (or Docker's other ``--gpus`` values) or ``none``; unset:
  ``all`` when the host has an NVIDIA driver (/proc/driver/nvidia), else none. With Podman ``all`` and
  ``device=0,1`` become CDI devices (``nvidia.com/gpu=all``; needs ``nvidia-ctk cdi generate``).
* ``UPLR_DOCKER_SHM_SIZE``: ``--shm-size`` for DataLoader workers; unset: ``--ipc=host``.
* ``UPLR_DOCKER_NETWORK``: ``--network`` (default ``host``, so an MLflow server on localhost is reachable).
* ``UPLR_DOCKER_MOUNTS``: extra host folders (``:``-separated), mounted read-only at the same path
  (datasets, init checkpoints that live outside the repository).
* ``UPLR_DOCKER_ENV``: extra variable names (comma-separated) to pass through.
* ``UPLR_DOCKER_ARGS``: extra ``docker run`` options (shell syntax), placed before the image.
* ``UPLR_DVC_CACHE``: the DVC cache folder, if not the one in .dvc/config[.local] (default .dvc/cache).
* ``UPLR_DOCKER_DRY_RUN=1``: print the command (shell-quoted) instead of running it.
* ``UPLR_DOCKER_ALLOW_STALE=1``: run even if the image was built from another requirements.lock.
* ``UPLR_DOCKER_TIMEOUT``: seconds for the engine checks (default 15).

Variables are passed by NAME only (``-e NAME``): the engine reads the values from its own environment, so
passwords in ``MLFLOW_TRACKING_URI`` or ``AWS_SECRET_ACCESS_KEY`` never appear on a command line.

Longer than 400 lines because every engine reply it parses (Docker's and Podman's) is handled,
with its own one-line error, next to the command that produced it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from uplr.errors import UplrError
from uplr.track import lineage

log = logging.getLogger(__name__)

IMAGE_FILE = Path("docker") / "IMAGE"
LOCK_LABEL = "org.uplr.requirements-lock.sha256"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
ENGINES = ("docker", "podman")  # the order of the default choice
# runner settings: meaningful on the host only, never passed into the container
_HOST_ONLY = {"UPLR_RUNNER", "UPLR_ENGINE", "UPLR_IMAGE", "UPLR_IMAGE_ID", "UPLR_IMAGE_REF", "UPLR_IMAGE_BASE"}
_PASS_PREFIXES = ("UPLR_", "MLFLOW_", "DVC_", "AWS_", "NCCL_")
_PASS_NAMES = {"CUDA_VISIBLE_DEVICES", "CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "PYTHONHASHSEED"}
_HOME = "/tmp"  # the host uid usually has no home in the image; caches (matplotlib, torch) go here


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _host_has_gpu() -> bool:
    """Whether the host has an NVIDIA driver loaded (what ``--gpus`` needs)."""
    return Path("/proc/driver/nvidia/version").exists()


def select_engine(env: Mapping[str, str], *, required: bool = True) -> str:
    """``UPLR_ENGINE`` (docker or podman), else the first of them on PATH.

    With ``required=False`` (a dry run) an engine that is not installed is still named: ``docker`` when
    neither is.
    """
    hint = "or unset UPLR_RUNNER to run the stage on the host"
    wanted = env.get("UPLR_ENGINE", "").strip().lower()
    if wanted:
        if wanted not in ENGINES:
            raise UplrError(f"UPLR_ENGINE must be 'docker' or 'podman', got {env['UPLR_ENGINE']!r}: fix it or "
                            "unset it to use whichever is installed")
        if required and shutil.which(wanted, path=env.get("PATH")) is None:
            raise UplrError(f"UPLR_ENGINE={wanted} but the {wanted} command is not on PATH: install it, "
                            f"choose the other engine, {hint}")
        return wanted
    for name in ENGINES:
        if shutil.which(name, path=env.get("PATH")) is not None:
            return name
    if not required:
        return "docker"
    raise UplrError("UPLR_RUNNER=docker but neither docker nor podman is on PATH: install Docker (and the NVIDIA "
                    f"Container Toolkit for GPUs) or Podman, {hint}")


def image_ref(env: Mapping[str, str], root: Path) -> str:
    """The image stages run in: ``UPLR_IMAGE_REF`` or the one line of docker/IMAGE."""
    ref = env.get("UPLR_IMAGE_REF", "").strip()
    if not ref:
        path = root / IMAGE_FILE
        try:
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
        except OSError as exc:
            raise UplrError(f"{path}: cannot read the image reference ({exc.strerror}); restore it from git "
                            "or set UPLR_IMAGE_REF") from exc
        if len(lines) != 1:
            raise UplrError(f"{path}: expected one line with the image reference (e.g. uplr:0.1.0), "
                            f"found {len(lines)} non-empty lines")
        ref = lines[0]
    if any(c.isspace() for c in ref):
        raise UplrError(f"image reference {ref!r} contains whitespace; fix docker/IMAGE or UPLR_IMAGE_REF")
    return ref


def _dvc_config_cache_dir(config: Path) -> Path | None:
    """``[cache] dir`` of one DVC config file (relative paths are relative to the file's folder)."""
    try:
        text = config.read_text()
    except OSError:
        return None
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]").strip().strip("'\"")
            continue
        key, sep, value = line.partition("=")
        if sep and section == "cache" and key.strip() == "dir":
            return (config.parent / value.strip().strip("'\"")).resolve()
    return None


def dvc_cache_dir(root: Path, env: Mapping[str, str]) -> Path:
    """The DVC cache: ``UPLR_DVC_CACHE``, else cache.dir of .dvc/config.local or .dvc/config, else .dvc/cache."""
    if env.get("UPLR_DVC_CACHE"):
        return Path(env["UPLR_DVC_CACHE"]).expanduser().resolve()
    for name in ("config.local", "config"):
        found = _dvc_config_cache_dir(root / ".dvc" / name)
        if found is not None:
            return found
    return (root / ".dvc" / "cache").resolve()


def _git_common_dir(root: Path) -> Path | None:
    """For a git worktree (``.git`` is a file), the main repository's git folder; else None."""
    dotgit = root / ".git"
    if not dotgit.is_file():
        return None
    text = dotgit.read_text().strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = (root / text.split(":", 1)[1].strip()).resolve()
    common = gitdir / "commondir"
    if common.is_file():
        return (gitdir / common.read_text().strip()).resolve()
    return gitdir


def _local_store_dir(uri: str, cwd: Path) -> Path | None:
    """The folder of a file-based MLflow store (``sqlite:///...``, ``file:...``, a plain path)."""
    if uri.startswith("sqlite:///"):
        return (cwd / uri[len("sqlite:///"):]).resolve().parent
    if uri.startswith("file://"):
        return Path(uri[len("file://"):]).resolve()
    if uri.startswith("file:"):
        return (cwd / uri[len("file:"):]).resolve()
    if "://" not in uri:
        return (cwd / uri).resolve()
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _user_name(env: Mapping[str, str], uid: int) -> str:
    name = env.get("USER") or env.get("LOGNAME")
    if not name:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
    return name


def _gpu_args(env: Mapping[str, str], engine: str = "docker") -> list[str]:
    """GPU options: Docker's ``--gpus VALUE``; for Podman the CDI devices the same value names."""
    gpus = env.get("UPLR_DOCKER_GPUS")
    if gpus is None:
        gpus = "all" if _host_has_gpu() else "none"
        if gpus == "none":
            log.info("no NVIDIA driver on this host: running the container without GPUs")
    gpus = gpus.strip()
    if gpus.lower() in {"", "none", "0", "no", "false", "off"}:
        return []
    if engine != "podman":
        return ["--gpus", gpus]
    # Podman has no --gpus with the NVIDIA hook: devices come from the CDI spec (nvidia-ctk cdi generate)
    value = gpus.strip("'\"")
    if value.lower() == "all":
        return ["--device", "nvidia.com/gpu=all"]
    ids = value[len("device="):] if value.lower().startswith("device=") else ""
    ids_list = [i.strip() for i in ids.split(",") if i.strip()]
    if not ids_list:
        raise UplrError(f"UPLR_DOCKER_GPUS={gpus!r}: with Podman use 'all', 'device=0,1' (GPU indices or UUIDs) "
                        "or 'none'; a GPU count is Docker-only")
    out: list[str] = []
    for i in ids_list:
        out += ["--device", f"nvidia.com/gpu={i}"]
    return out


def docker_command(argv: list[str], env: Mapping[str, str], cwd: str | Path,
                   image_id: str | None = None, engine: str = "docker", image_base: str | None = None) -> list[str]:
    """The ``docker run`` (or ``podman run``) command that runs ``argv`` in the image, from ``cwd``, with
    ``env`` passed on.

    Reads files (docker/IMAGE, .dvc/config) but starts nothing; ``image_id`` (from ``image inspect``) is
    recorded in the container as ``UPLR_IMAGE_ID`` when given, ``image_base`` (the base image the image
    was built on, from its OCI labels) as ``UPLR_IMAGE_BASE``.
    """
    if engine not in ENGINES:
        raise UplrError(f"UPLR_ENGINE must be 'docker' or 'podman', got {engine!r}")
    if not argv:
        raise UplrError("no command to run in the container")
    cwd = Path(cwd).resolve()
    root = Path(env["UPLR_ROOT"]).resolve() if env.get("UPLR_ROOT") else lineage.repo_root(cwd)
    if not _inside(cwd, root):
        raise UplrError(f"the working directory {cwd} is outside the repository {root} (UPLR_ROOT); "
                        "run the stage from inside the repository")
    ref = image_ref(env, root)
    uid, gid = os.getuid(), os.getgid()

    cmd = [engine, "run", "--rm", "--init", "--user", f"{uid}:{gid}"]
    if engine == "podman" and uid != 0:
        # rootless Podman: map the caller's uid to itself in the container, so outputs belong to them
        cmd += ["--userns=keep-id"]
    cmd += _gpu_args(env, engine)
    shm = env.get("UPLR_DOCKER_SHM_SIZE", "").strip()
    cmd += [f"--shm-size={shm}"] if shm else ["--ipc=host"]
    cmd += [f"--network={env.get('UPLR_DOCKER_NETWORK', '').strip() or 'host'}"]

    mounted = [root]
    cmd += ["--volume", f"{root}:{root}"]
    extra_rw = [dvc_cache_dir(root, env), _git_common_dir(root)]
    uri = env.get("MLFLOW_TRACKING_URI", "")
    if uri:
        extra_rw.append(_local_store_dir(uri, cwd))
    for path in extra_rw:
        # a missing folder is not mounted (docker would create it, owned by root); nothing links into it yet
        if path is not None and path.is_dir() and not any(_inside(path, m) for m in mounted):
            cmd += ["--volume", f"{path}:{path}"]
            mounted.append(path)
    for item in env.get("UPLR_DOCKER_MOUNTS", "").split(":"):
        if not item.strip():
            continue
        path = Path(item.strip()).expanduser().resolve()
        if not path.exists():
            raise UplrError(f"UPLR_DOCKER_MOUNTS: {path} does not exist; fix or remove it")
        if not any(_inside(path, m) for m in mounted):
            cmd += ["--volume", f"{path}:{path}:ro"]
            mounted.append(path)
    cmd += ["--workdir", str(cwd)]

    names = {n for n in env if n.startswith(_PASS_PREFIXES) or n in _PASS_NAMES}
    names |= {n.strip() for n in env.get("UPLR_DOCKER_ENV", "").split(",") if n.strip() in env}
    names -= _HOST_ONLY
    names = {n for n in names if not n.startswith("UPLR_DOCKER_")}
    for name in sorted(names):
        cmd += ["-e", name]
    # the host uid has no passwd entry in the image: USER lets getpass (MLflow, torch) name the user
    cmd += ["-e", f"UPLR_IMAGE={ref}", "-e", f"HOME={_HOME}", "-e", f"USER={_user_name(env, uid)}",
            "-e", f"PYTHONPATH={root}"]
    if image_id:
        cmd += ["-e", f"UPLR_IMAGE_ID={image_id}"]
    if image_base:
        cmd += ["-e", f"UPLR_IMAGE_BASE={image_base}"]
    cmd += shlex.split(env.get("UPLR_DOCKER_ARGS", ""))
    cmd += [ref]
    return cmd + list(argv)


def _timeout(env: Mapping[str, str]) -> float:
    try:
        return float(env.get("UPLR_DOCKER_TIMEOUT", "15"))
    except ValueError as exc:
        raise UplrError(f"UPLR_DOCKER_TIMEOUT must be a number of seconds, got {env['UPLR_DOCKER_TIMEOUT']!r}") \
            from exc


def _engine_call(engine: str, args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess:
    """Run one engine query; a hang or a failure to start it becomes an error line."""
    hint = "or unset UPLR_RUNNER to run the stage on the host"
    try:
        return subprocess.run([engine, *args], env=dict(env), capture_output=True, text=True,
                              timeout=_timeout(env))
    except subprocess.TimeoutExpired as exc:
        raise UplrError(f"the {engine} engine did not answer `{engine} {args[0]}` within {exc.timeout:g}s: check "
                        f"that it is running{' and DOCKER_HOST is right' if engine == 'docker' else ''}, "
                        f"{hint}") from exc
    except OSError as exc:
        raise UplrError(f"cannot run `{engine}` ({exc.strerror or exc}): check the installation, {hint}") from exc


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no message"])[-1].strip()


def check_engine(env: Mapping[str, str]) -> str:
    """The engine to use (:func:`select_engine`); fails with the fix when it does not answer."""
    engine = select_engine(env)
    hint = "or unset UPLR_RUNNER to run the stage on the host"
    other = next(e for e in ENGINES if e != engine)
    switch = (f", or set UPLR_ENGINE={other}" if shutil.which(other, path=env.get("PATH")) is not None
              and not env.get("UPLR_ENGINE") else "")
    if engine == "docker":
        res = _engine_call(engine, ["info", "--format", "{{.ServerVersion}}"], env)
        if res.returncode != 0:
            raise UplrError(f"the Docker engine is unreachable ({_last_line(res.stderr)}): start it (e.g. `sudo "
                            f"systemctl start docker`), check your access to it (the docker group, DOCKER_HOST)"
                            f"{switch}, {hint}")
    else:
        res = _engine_call(engine, ["info", "--format", "{{.Version.Version}}"], env)
        if res.returncode != 0:
            raise UplrError(f"podman does not work here ({_last_line(res.stderr)}): check `podman info` and its "
                            f"configuration (containers.conf: CONTAINERS_CONF; see docker/README.md){switch}, "
                            f"{hint}")
    if not res.stdout.strip():
        raise UplrError(f"`{engine} info` answered nothing: check the {engine} installation{switch}, {hint}")
    return engine


def _lock_sha256(root: Path) -> str | None:
    lock = root / "requirements.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None


def _inspect_reply(engine: str, ref: str, stdout: str) -> dict:
    """The image's record from ``image inspect --format {{json .}}``: an object (Docker) or a list of one
    (Podman). Anything else is an error line."""
    what = f"`{engine} image inspect {ref}`"
    try:
        info = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise UplrError(f"{what} did not answer JSON ({stdout.strip()[:80]!r}): check the {engine} "
                        "installation, or unset UPLR_RUNNER to run the stage on the host") from exc
    if isinstance(info, list) and len(info) == 1:
        info = info[0]
    if not isinstance(info, dict) or not isinstance(info.get("Id"), str) or not info["Id"]:
        raise UplrError(f"{what} answered {type(info).__name__} without an image Id, not one image record: "
                        f"check that {ref} names exactly one image")
    config = info.get("Config") or {}
    labels = config.get("Labels") if isinstance(config, dict) else None
    if labels is not None and not isinstance(labels, dict):
        raise UplrError(f"{what}: Config.Labels is {type(labels).__name__}, not a mapping: rebuild the image "
                        "with `make docker-build`")
    return info


def _image_id(raw: str) -> str:
    """Docker writes ``sha256:<hex>``, Podman the bare hex: the lineage tag always has the prefix."""
    return raw if ":" in raw else f"sha256:{raw}"


def inspect_image(ref: str, root: Path, env: Mapping[str, str],
                  engine: str = "docker") -> tuple[str | None, str | None]:
    """``(image id, base image)`` of ``ref``: the local image id and the base recorded in its OCI labels
    (``name@digest``, None when unlabelled). Fails if the image is missing (unless the engine can pull it
    by digest) or was built from a requirements.lock other than the checkout's."""
    res = _engine_call(engine, ["image", "inspect", "--format", "{{json .}}", ref], env)
    if res.returncode != 0:
        if "@sha256:" in ref:
            return None, None  # `run` pulls it; the digest already identifies it
        raise UplrError(f"image {ref} is not on this machine ({_last_line(res.stderr)}): build it with `make "
                        f"docker-build{' DOCKER=podman' if engine == 'podman' else ''}` (or pull it, or set "
                        "UPLR_IMAGE_REF / docker/IMAGE to an image you have)")
    info = _inspect_reply(engine, ref, res.stdout)
    labels = (info.get("Config") or {}).get("Labels") or {}
    built, wanted = labels.get(LOCK_LABEL), _lock_sha256(root)
    if wanted and built != wanted and not _truthy(env.get("UPLR_DOCKER_ALLOW_STALE")):
        raise UplrError(f"image {ref} was built from requirements.lock sha256 {built or '(no label)'}, the "
                        f"checkout's is {wanted}: rebuild it with `make docker-build` (bump docker/IMAGE if "
                        "the old one must stay), or set UPLR_DOCKER_ALLOW_STALE=1 to run anyway")
    base = None
    if labels.get(BASE_NAME_LABEL):
        base = labels[BASE_NAME_LABEL]
        digest = labels.get(BASE_DIGEST_LABEL, "")
        if digest and digest not in base:
            base = f"{base}@{digest}"
    return _image_id(info["Id"]), base


def run(argv: list[str]) -> int:
    """Run ``argv`` in the image from the current directory; return its exit status."""
    env = dict(os.environ)
    if "UPLR_PIPELINE_RUN" not in env:
        # inside the container the DVC process is not visible: identify the pipeline run here
        env["UPLR_PIPELINE_RUN"] = lineage.pipeline_run_id()
    cwd = Path.cwd()
    if _truthy(env.get("UPLR_DOCKER_DRY_RUN")):
        engine = select_engine(env, required=False)
        sys.stdout.write(shlex.join(docker_command(argv, env, cwd, engine=engine)) + "\n")
        sys.stdout.flush()
        return 0
    engine = check_engine(env)
    root = Path(env["UPLR_ROOT"]).resolve() if env.get("UPLR_ROOT") else lineage.repo_root(cwd)
    ref = image_ref(env, root)
    image_id, base = inspect_image(ref, root, env, engine)
    cmd = docker_command(argv, env, cwd, image_id=image_id, engine=engine, image_base=base)
    log.info("running in %s (%s): %s", ref, engine, shlex.join(argv))
    try:
        proc = subprocess.Popen(cmd, env=env)
    except OSError as exc:
        raise UplrError(f"cannot run `{engine}` ({exc.strerror or exc}): check the installation, or unset "
                        "UPLR_RUNNER to run the stage on the host") from exc
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # the engine forwards the signal to the container (--init); give it time to stop cleanly
        try:
            return proc.wait(timeout=30)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.terminate()
            proc.wait()
            return 130
