"""The pinned container: the docker runner's command, its engine checks, the Dockerfile, docker-pin.

No Docker engine is needed: `docker` is replaced by a small script that records what it was asked,
and the registry of docker_pin by a local HTTP server.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import pytest

from uplr import docker_runner
from uplr.docker_runner import docker_command
from uplr.errors import UplrError

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
SECRET_PW = "pw-Zq81x"
SECRET_KEY = "aws-secret-Kp27"
ARGV = ["uplr", "train", "--row", "source_only", "--seed", "0", "--stage", "train_source_only@0"]


def _pairs(cmd: list[str]) -> set[tuple[str, str]]:
    return set(zip(cmd, cmd[1:], strict=False))


def _passed_names(cmd: list[str]) -> set[str]:
    return {b.split("=", 1)[0] for a, b in _pairs(cmd) if a == "-e"}


@pytest.fixture
def repo(tmp_path) -> Path:
    """A checkout: .git, .dvc with a cache outside the repository, docker/IMAGE, a lock, a stage folder."""
    root = tmp_path / "checkout"
    (root / ".git").mkdir(parents=True)
    (root / ".dvc").mkdir()
    (root / "docker").mkdir()
    (root / "docker" / "IMAGE").write_text("uplr:test\n")
    (root / "requirements.lock").write_text("numpy==2.0.0 \\\n    --hash=sha256:00\n")
    (root / "pipelines" / "gta").mkdir(parents=True)
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    (root / ".dvc" / "config").write_text(f"[core]\n    remote = x\n[cache]\n    dir = {cache}\n")
    return root


@pytest.fixture
def stage_env(repo) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "UPLR_RUNNER": "docker",
        "UPLR_DOCKER_GPUS": "all",
        "UPLR_PIPELINE_RUN": "20260101T000000Z-abc123",
        "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://uplr:{SECRET_PW}@db.example:5432/mlflow",
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "DVC_NO_ANALYTICS": "1",
        "UNRELATED_VARIABLE": "nope",
        "USER": "alice",
    }


def test_stage_command(repo, stage_env):
    cwd = repo / "pipelines" / "gta"
    cmd = docker_command(ARGV, stage_env, cwd)
    pairs = _pairs(cmd)
    cache = (repo.parent / "shared-cache").resolve()
    root = repo.resolve()
    assert cmd[:2] == ["docker", "run"] and "--rm" in cmd
    assert ("--gpus", "all") in pairs
    assert ("--volume", f"{root}:{root}") in pairs  # the repo at the same path
    assert ("--volume", f"{cache}:{cache}") in pairs  # the DVC cache from .dvc/config
    assert ("--user", f"{os.getuid()}:{os.getgid()}") in pairs
    assert ("--workdir", str(cwd.resolve())) in pairs
    assert "--ipc=host" in cmd
    for name in ("MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "DVC_NO_ANALYTICS",
                 "UPLR_PIPELINE_RUN"):
        assert ("-e", name) in pairs, name  # by name only: docker takes the value from its environment
    assert ("-e", "UPLR_IMAGE=uplr:test") in pairs
    assert ("-e", f"PYTHONPATH={root}") in pairs  # the mounted checkout's code runs, not the image's copy
    assert ("-e", "USER=alice") in pairs
    names = _passed_names(cmd)
    assert "UPLR_RUNNER" not in names and "UNRELATED_VARIABLE" not in names
    # the command itself, unchanged, right after the image
    assert cmd[-len(ARGV):] == ARGV and cmd[-len(ARGV) - 1] == "uplr:test"


def test_secrets_stay_off_the_command_line(repo, stage_env):
    line = shlex.join(docker_command(ARGV, stage_env, repo))
    assert SECRET_PW not in line and SECRET_KEY not in line and "AKIAEXAMPLE" not in line


@pytest.mark.parametrize("value", ["none", "", "0"])
def test_gpus_disabled_by_env(repo, stage_env, value):
    stage_env["UPLR_DOCKER_GPUS"] = value
    assert "--gpus" not in docker_command(ARGV, stage_env, repo)


def test_gpus_device_list_and_auto(repo, stage_env, monkeypatch):
    stage_env["UPLR_DOCKER_GPUS"] = "device=0,1"
    assert ("--gpus", "device=0,1") in _pairs(docker_command(ARGV, stage_env, repo))
    del stage_env["UPLR_DOCKER_GPUS"]
    monkeypatch.setattr(docker_runner, "_host_has_gpu", lambda: True)
    assert ("--gpus", "all") in _pairs(docker_command(ARGV, stage_env, repo))
    monkeypatch.setattr(docker_runner, "_host_has_gpu", lambda: False)
    assert "--gpus" not in docker_command(ARGV, stage_env, repo)


def test_image_ref_from_env_overrides_the_file(repo, stage_env):
    stage_env["UPLR_IMAGE_REF"] = "registry.example/uplr@sha256:" + "ab" * 32
    cmd = docker_command(ARGV, stage_env, repo)
    assert cmd[-len(ARGV) - 1] == stage_env["UPLR_IMAGE_REF"]
    assert ("-e", f"UPLR_IMAGE={stage_env['UPLR_IMAGE_REF']}") in _pairs(cmd)
    assert "UPLR_IMAGE_REF" not in _passed_names(cmd) - {"UPLR_IMAGE"}


def test_bad_image_file(repo, stage_env):
    (repo / "docker" / "IMAGE").write_text("\n")
    with pytest.raises(UplrError, match="docker/IMAGE"):
        docker_command(ARGV, stage_env, repo)
    (repo / "docker" / "IMAGE").unlink()
    with pytest.raises(UplrError, match="UPLR_IMAGE_REF"):
        docker_command(ARGV, stage_env, repo)


def test_cache_location_precedence(repo, stage_env, tmp_path):
    local = tmp_path / "local-cache"
    local.mkdir()
    (repo / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {local}\n")
    assert ("--volume", f"{local}:{local}") in _pairs(docker_command(ARGV, stage_env, repo))
    env_cache = tmp_path / "env-cache"
    env_cache.mkdir()
    stage_env["UPLR_DVC_CACHE"] = str(env_cache)
    pairs = _pairs(docker_command(ARGV, stage_env, repo))
    assert ("--volume", f"{env_cache}:{env_cache}") in pairs
    assert ("--volume", f"{local}:{local}") not in pairs


def test_default_cache_is_inside_the_repo_mount(repo, stage_env):
    (repo / ".dvc" / "config").write_text("[core]\n    analytics = false\n")
    (repo / ".dvc" / "cache").mkdir()
    volumes = [b for a, b in _pairs(docker_command(ARGV, stage_env, repo)) if a == "--volume"]
    assert volumes == [f"{repo.resolve()}:{repo.resolve()}"]


def test_local_mlflow_store_outside_the_repo_is_mounted(repo, stage_env, tmp_path):
    store = tmp_path / "stores"
    store.mkdir()
    stage_env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    assert ("--volume", f"{store}:{store}") in _pairs(docker_command(ARGV, stage_env, repo))


def test_shm_network_extra_mounts_and_args(repo, stage_env, tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    stage_env.update(UPLR_DOCKER_SHM_SIZE="16g", UPLR_DOCKER_NETWORK="bridge", UPLR_DOCKER_MOUNTS=str(data),
                     UPLR_DOCKER_ARGS="--label team=seg", UPLR_DOCKER_ENV="UNRELATED_VARIABLE")
    cmd = docker_command(ARGV, stage_env, repo)
    assert "--shm-size=16g" in cmd and "--ipc=host" not in cmd and "--network=bridge" in cmd
    assert ("--volume", f"{data}:{data}:ro") in _pairs(cmd)
    assert ("--label", "team=seg") in _pairs(cmd)
    assert "UNRELATED_VARIABLE" in _passed_names(cmd)
    assert not {n for n in _passed_names(cmd) if n.startswith("UPLR_DOCKER_")}
    stage_env["UPLR_DOCKER_MOUNTS"] = str(tmp_path / "missing")
    with pytest.raises(UplrError, match="UPLR_DOCKER_MOUNTS"):
        docker_command(ARGV, stage_env, repo)


def test_cwd_outside_the_repository(repo, stage_env, tmp_path):
    stage_env["UPLR_ROOT"] = str(repo)
    with pytest.raises(UplrError, match="outside the repository"):
        docker_command(ARGV, stage_env, tmp_path)


def test_runner_dry_run_prints_a_docker_command(repo):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPLR_", "MLFLOW_"))}
    env.update(UPLR_RUNNER="docker", UPLR_DOCKER_DRY_RUN="1", UPLR_DOCKER_GPUS="none")
    res = subprocess.run([sys.executable, "-m", "uplr.runner", "--", "uplr", "--help"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    cmd = shlex.split(res.stdout)
    assert cmd[:2] == ["docker", "run"]
    assert cmd[-3:] == ["uplr:test", "uplr", "--help"]
    assert ("--workdir", str(repo.resolve())) in _pairs(cmd)
    # no pipeline id in the environment: the runner makes one on the host and passes it in
    assert ("-e", "UPLR_PIPELINE_RUN") in _pairs(cmd)


# --- run(): engine checks and execution, with a fake `docker` --------------------------------------

FAKE_DOCKER = r"""#!/usr/bin/env python3
import json, os, sys, time
engine = os.path.basename(sys.argv[0])
log = os.environ["FAKE_DOCKER_LOG"]
with open(log, "a") as f:
    f.write(json.dumps([engine] + sys.argv[1:]) + "\n")
mode = os.environ.get("FAKE_DOCKER_MODE", "ok")
labels = {"org.uplr.requirements-lock.sha256": os.environ["FAKE_LOCK"],
          "org.opencontainers.image.base.name": "localhost/uplr-base:bookworm",
          "org.opencontainers.image.base.digest": "sha256:" + "ba" * 32}
if sys.argv[1] == "info":
    if mode == "down":
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock.\n")
        sys.exit(1)
    if mode == "hang":
        time.sleep(30)
    if mode == "silent":
        sys.exit(0)
    # Docker answers {{.ServerVersion}}; Podman has no such field and fails on it, as the real one does
    if engine == "podman" and "ServerVersion" in sys.argv[3]:
        sys.stderr.write("Error: template: info:1:2: executing \"info\" at <.ServerVersion>: can't evaluate\n")
        sys.exit(125)
    print("4.3.1" if engine == "podman" else "28.2.2")
elif sys.argv[1:3] == ["image", "inspect"]:
    if mode == "noimage":
        sys.stderr.write("Error: No such image\n")
        sys.exit(1)
    if engine == "podman":  # a list, and a bare hex id
        record = {"Id": "cd" * 32, "Config": {"Labels": labels}}
    else:
        record = {"Id": "sha256:" + "cd" * 32, "Config": {"Labels": labels}}
    replies = {"ok": record if engine == "docker" else [record], "garbage": "not json {",
               "empty": [], "two": [record, record], "noid": {"Config": {}}, "labels": {"Id": "x", "Config": {"Labels": [1]}},
               "scalar": 42}
    reply = replies.get(mode, replies["ok"])
    print(reply if isinstance(reply, str) else json.dumps(reply))
elif sys.argv[1] == "run":
    with open(log + ".env", "w") as f:
        json.dump({k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "AWS_SECRET_ACCESS_KEY")}, f)
    sys.exit(7)
"""


@pytest.fixture
def fake_docker(tmp_path, repo, stage_env, monkeypatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "podman"):
        exe = bin_dir / name
        exe.write_text(FAKE_DOCKER.replace("/usr/bin/env python3", sys.executable))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "docker.log"
    for k in list(os.environ):
        if k.startswith(("UPLR_", "MLFLOW_", "AWS_", "DVC_")):
            monkeypatch.delenv(k)
    for k, v in stage_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PATH", str(bin_dir))  # only the fakes: the host's real engines stay out
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("FAKE_LOCK", hashlib.sha256((repo / "requirements.lock").read_bytes()).hexdigest())
    monkeypatch.chdir(repo)
    return log


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_run_executes_docker_and_returns_its_status(fake_docker, repo, stage_env):
    assert docker_runner.run(ARGV) == 7
    calls = _calls(fake_docker)
    assert calls[0][:2] == ["docker", "info"] and calls[1][:3] == ["docker", "image", "inspect"]
    run_cmd = calls[-1]
    base = "localhost/uplr-base:bookworm@sha256:" + "ba" * 32
    expected = docker_command(ARGV, dict(os.environ), repo, image_id="sha256:" + "cd" * 32, image_base=base)
    assert run_cmd == expected
    assert ("-e", "UPLR_IMAGE_ID=sha256:" + "cd" * 32) in _pairs(expected)
    assert ("-e", f"UPLR_IMAGE_BASE={base}") in _pairs(expected)
    # the secret values reach docker through its environment, not its arguments
    seen = json.loads(Path(str(fake_docker) + ".env").read_text())
    assert seen["AWS_SECRET_ACCESS_KEY"] == SECRET_KEY and SECRET_PW in seen["MLFLOW_TRACKING_URI"]


def test_run_refuses_an_image_built_from_another_lock(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_LOCK", "0" * 64)
    with pytest.raises(UplrError, match="make docker-build"):
        docker_runner.run(ARGV)
    monkeypatch.setenv("UPLR_DOCKER_ALLOW_STALE", "1")
    assert docker_runner.run(ARGV) == 7


def test_run_missing_image(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "noimage")
    with pytest.raises(UplrError, match="not on this machine.*make docker-build"):
        docker_runner.run(ARGV)


def test_run_engine_down(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "down")
    with pytest.raises(UplrError, match="unreachable.*Cannot connect.*unset UPLR_RUNNER"):
        docker_runner.run(ARGV)
    assert len(_calls(fake_docker)) == 1  # nothing was run


def test_run_engine_hangs(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "hang")
    monkeypatch.setenv("UPLR_DOCKER_TIMEOUT", "0.5")
    with pytest.raises(UplrError, match="did not answer.*unset UPLR_RUNNER"):
        docker_runner.run(ARGV)


def test_run_without_docker_cli(fake_docker, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UplrError, match="neither docker nor podman is on PATH.*unset UPLR_RUNNER"):
        docker_runner.run(ARGV)
    monkeypatch.setenv("UPLR_ENGINE", "podman")
    with pytest.raises(UplrError, match="UPLR_ENGINE=podman but the podman command is not on PATH"):
        docker_runner.run(ARGV)


# --- Podman, the engine choice, and replies the runner does not expect -------------------------------

def _only(fake_dir: Path, name: str) -> None:
    """Keep only the fake `name` in the fakes' folder (the other engine is 'not installed')."""
    for other in ("docker", "podman"):
        if other != name:
            (fake_dir / other).unlink()


def test_engine_choice(fake_docker, monkeypatch):
    fakes = fake_docker.parent / "bin"
    env = dict(os.environ)
    assert docker_runner.select_engine(env) == "docker"  # both installed: Docker first
    assert docker_runner.select_engine({**env, "UPLR_ENGINE": "Podman"}) == "podman"
    with pytest.raises(UplrError, match="UPLR_ENGINE must be 'docker' or 'podman', got 'lxc'"):
        docker_runner.select_engine({**env, "UPLR_ENGINE": "lxc"})
    _only(fakes, "podman")
    assert docker_runner.select_engine(env) == "podman"  # only Podman installed: Podman
    with pytest.raises(UplrError, match="UPLR_ENGINE=docker but the docker command is not on PATH"):
        docker_runner.select_engine({**env, "UPLR_ENGINE": "docker"})
    # a dry run names an engine even when none is installed
    assert docker_runner.select_engine({"PATH": str(fakes.parent)}, required=False) == "docker"


def test_run_with_podman(fake_docker, repo, monkeypatch):
    monkeypatch.setenv("UPLR_ENGINE", "podman")
    assert docker_runner.run(ARGV) == 7
    calls = _calls(fake_docker)
    assert [c[0] for c in calls] == ["podman"] * 3  # info, inspect, run: docker is never asked
    assert calls[0][:2] == ["podman", "info"] and "ServerVersion" not in " ".join(calls[0])
    run_cmd = calls[-1]
    assert run_cmd[:2] == ["podman", "run"]
    pairs = _pairs(run_cmd)
    # Podman's bare hex id is recorded with the sha256: prefix, as Docker writes it
    assert ("-e", "UPLR_IMAGE_ID=sha256:" + "cd" * 32) in pairs
    assert ("-e", "UPLR_IMAGE_BASE=localhost/uplr-base:bookworm@sha256:" + "ba" * 32) in pairs
    # GPUs through CDI, never Docker's --gpus
    assert ("--device", "nvidia.com/gpu=all") in pairs and "--gpus" not in run_cmd
    assert "UPLR_ENGINE" not in _passed_names(run_cmd)
    assert run_cmd[-len(ARGV):] == ARGV


def test_podman_gpu_flags(repo, stage_env):
    def gpu_opts(value):
        stage_env["UPLR_DOCKER_GPUS"] = value
        cmd = docker_command(ARGV, stage_env, repo, engine="podman")
        return [b for a, b in zip(cmd, cmd[1:], strict=False) if a == "--device"], "--gpus" in cmd

    assert gpu_opts("all") == (["nvidia.com/gpu=all"], False)
    assert gpu_opts("device=0,2") == (["nvidia.com/gpu=0", "nvidia.com/gpu=2"], False)
    assert gpu_opts('"device=1"') == (["nvidia.com/gpu=1"], False)
    assert gpu_opts("none") == ([], False)
    with pytest.raises(UplrError, match="UPLR_DOCKER_GPUS='2'.*GPU count is Docker-only"):
        gpu_opts("2")
    stage_env["UPLR_DOCKER_GPUS"] = "2"
    assert ("--gpus", "2") in _pairs(docker_command(ARGV, stage_env, repo, engine="docker"))


def test_rootless_podman_keeps_the_user_id(repo, stage_env, monkeypatch):
    monkeypatch.setattr(docker_runner.os, "getuid", lambda: 1234)
    monkeypatch.setattr(docker_runner.os, "getgid", lambda: 1234)
    cmd = docker_command(ARGV, stage_env, repo, engine="podman")
    assert "--userns=keep-id" in cmd and ("--user", "1234:1234") in _pairs(cmd)
    assert "--userns=keep-id" not in docker_command(ARGV, stage_env, repo, engine="docker")
    monkeypatch.setattr(docker_runner.os, "getuid", lambda: 0)
    monkeypatch.setattr(docker_runner.os, "getgid", lambda: 0)
    assert "--userns=keep-id" not in docker_command(ARGV, stage_env, repo, engine="podman")


@pytest.mark.parametrize("engine", ["docker", "podman"])
@pytest.mark.parametrize(("mode", "message"), [
    ("garbage", r"image inspect uplr:test` did not answer JSON \('not json \{'\)"),
    ("empty", "answered list without an image Id"),
    ("two", "answered list without an image Id.*names exactly one image"),
    ("noid", "answered dict without an image Id"),
    ("scalar", "answered int without an image Id"),
    ("labels", "Config.Labels is list, not a mapping"),
])
def test_unexpected_inspect_replies_are_one_error_line(fake_docker, monkeypatch, engine, mode, message):
    monkeypatch.setenv("UPLR_ENGINE", engine)
    monkeypatch.setenv("FAKE_DOCKER_MODE", mode)
    with pytest.raises(UplrError, match=message) as err:
        docker_runner.run(ARGV)
    assert "\n" not in str(err.value)
    assert not any(c[1] == "run" for c in _calls(fake_docker))  # nothing was started


def test_engine_that_answers_nothing(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "silent")
    with pytest.raises(UplrError, match="`docker info` answered nothing"):
        docker_runner.run(ARGV)


def test_docker_down_suggests_podman_when_installed(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "down")
    with pytest.raises(UplrError, match="or set UPLR_ENGINE=podman"):
        docker_runner.run(ARGV)


def test_podman_missing_image_names_the_podman_build(fake_docker, monkeypatch):
    monkeypatch.setenv("UPLR_ENGINE", "podman")
    monkeypatch.setenv("FAKE_DOCKER_MODE", "noimage")
    with pytest.raises(UplrError, match=r"not on this machine \(Error: No such image\).*DOCKER=podman"):
        docker_runner.run(ARGV)


def test_engine_that_cannot_be_executed(fake_docker, monkeypatch):
    fake = fake_docker.parent / "bin" / "docker"
    fake.write_text("not a script")  # executable bit set, but exec fails (ENOEXEC)
    with pytest.raises(UplrError, match="cannot run `docker`"):
        docker_runner.run(ARGV)


def test_runner_cli_prints_one_line_for_a_podman_list_reply(fake_docker, monkeypatch):
    """The crash of issue 10 (`'list' object has no attribute 'get'`): now one line, exit 2."""
    monkeypatch.setenv("UPLR_ENGINE", "podman")
    monkeypatch.setenv("FAKE_DOCKER_MODE", "two")
    res = subprocess.run([sys.executable, "-m", "uplr.runner", "--", "uplr", "--help"],
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith("uplr.runner: error: `podman image inspect uplr:test` answered list")


# --- docker/Dockerfile, .dockerignore, hadolint, make docker-build -----------------------------------

def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _arg_defaults(ins: list[tuple[str, str]]) -> dict[str, str]:
    out = {}
    for i, a in ins:
        if i == "ARG" and "=" in a:
            k, v = a.split("=", 1)
            out.setdefault(k, v.strip('"'))
    return out


def test_dockerfile_pins_base_and_installs_from_the_lock():
    ins = _instructions(DOCKERFILE.read_text())
    froms = [a for i, a in ins if i == "FROM"]
    # one stage, FROM the BASE_IMAGE build argument whose default is the pinned python image
    assert froms == ["${BASE_IMAGE}"]
    default = _arg_defaults(ins)["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", default)
    assert ins.index(("FROM", "${BASE_IMAGE}")) > ins.index(("ARG", f"BASE_IMAGE={default}"))
    runs = [a for i, a in ins if i == "RUN"]
    lock_install = [r for r in runs if "-r requirements.lock" in r]
    assert len(lock_install) == 1
    # the same flags as the venv (Makefile: `pip install --require-hashes --no-deps -r requirements.lock`),
    # from the wheelhouse bind mount only: no index, nothing cached in a layer
    for flag in ("--require-hashes", "--no-deps", "--no-cache-dir", "--no-index", "--find-links /wheelhouse"):
        assert flag in lock_install[0], flag
    assert lock_install[0].startswith("--mount=type=bind,source=build/wheelhouse,target=/wheelhouse ")
    # the image is the runtime set only (the dev lock may be named in comments, never used)
    assert not any("requirements-dev" in a for i, a in ins if i != "LABEL")
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in makefile
    assert all("--no-cache-dir" in r and "--no-index" in r for r in runs if "pip install" in r)
    # the lock label is checked against the file during the build
    assert any("sha256sum --check" in r and "LOCK_SHA256" in r for r in runs)
    labels = " ".join(a for i, a in ins if i == "LABEL")
    assert 'org.uplr.requirements-lock.sha256="${LOCK_SHA256}"' in labels
    # the base is recorded: the ARG is redeclared after FROM (else it is empty there) and labelled
    after_from = ins[ins.index(("FROM", "${BASE_IMAGE}")) + 1:]
    assert ("ARG", "BASE_IMAGE") in after_from
    assert 'org.opencontainers.image.base.name="${BASE_IMAGE}"' in labels
    assert 'org.opencontainers.image.base.digest="${BASE_DIGEST}"' in labels
    # what changes with every commit comes after the lock's layer, so a rebuild reuses it (minutes)
    lock_step = next(n for n, (i, a) in enumerate(ins) if i == "RUN" and "-r requirements.lock" in a)
    for arg in ("REVISION", "VERSION", "BASE_DIGEST"):
        assert min(n for n, (i, a) in enumerate(ins) if i == "ARG" and a.startswith(arg)) > lock_step, arg
    assert all(n > lock_step for n, (i, _) in enumerate(ins) if i == "LABEL")


def test_dockerfile_user_is_not_root():
    ins = _instructions(DOCKERFILE.read_text())
    args = _arg_defaults(ins)
    user = [a for i, a in ins if i == "USER"][-1]
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], user)
    uid = resolved.split(":")[0]
    assert uid not in {"root", "0"} and uid.isdigit() and int(uid) > 0
    assert [a for i, a in ins if i == "WORKDIR"][-1] == "/work"


def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins (enough for the simple patterns used here)."""
    import fnmatch

    allowed = True
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        if fnmatch.fnmatch(path, p) or path.startswith(p + "/"):
            allowed = neg
    return allowed


def test_dockerignore_lets_in_what_copy_needs():
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    ins = _instructions(DOCKERFILE.read_text())
    copies = [a.split()[:-1] for i, a in ins if i == "COPY"]
    sources = [s for c in copies for s in c if not s.startswith("--")]
    # bind mounts from the build context go through .dockerignore too
    sources += re.findall(r"--mount=type=bind,source=([^,\s]+)", " ".join(a for i, a in ins if i == "RUN"))
    assert "build/wheelhouse" in sources
    assert sources and all(_dockerignore_allows(s.rstrip("/"), patterns) for s in sources)
    for kept_out in (".venv", "data", "mlflow.db", ".dvc/cache", ".git", "runs"):
        assert not _dockerignore_allows(kept_out, patterns), kept_out


HADOLINT = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")


@pytest.mark.skipif(not os.access(HADOLINT, os.X_OK), reason="hadolint binary not installed")
def test_hadolint_clean(tmp_path):
    cfg = REPO / ".hadolint.yaml"
    res = subprocess.run([HADOLINT, "--config", str(cfg), str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    # the same configuration does fail a Dockerfile with the usual mistakes
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN apt-get update && apt-get install -y git\nUSER root\n")
    res = subprocess.run([HADOLINT, "--config", str(cfg), str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "DL3008" in res.stdout and "DL3002" in res.stdout


def _make_docker_build(tmp_path, *extra: str) -> list[str]:
    """The arguments `make docker-build` gives the engine (a fake that records them); the wheelhouse
    download is skipped (make -o)."""
    log = tmp_path / "build.log"
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir(exist_ok=True)
    for name in ("docker", "podman"):
        fake = fake_dir / name
        # `image inspect --format {{.Id}}` (the base's id) answers a bare hex id, as Podman does
        fake.write_text(f"#!/bin/sh\nif [ \"$1\" = image ]; then echo {'ab' * 32}; exit 0; fi\n"
                        f"printf '%s\\n' \"$@\" > {shlex.quote(str(log))}\n")
        fake.chmod(0o755)
    res = subprocess.run(["make", "--no-print-directory", "-f", "mk/docker.mk", "-o", "build/wheelhouse/.lock-sha256",
                          "docker-build", *extra], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": f"{fake_dir}{os.pathsep}{os.environ['PATH']}"})
    assert res.returncode == 0, res.stderr
    return log.read_text().splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_docker_build_passes_image_and_lock_hash(tmp_path):
    args = _make_docker_build(tmp_path, f"DOCKER={tmp_path / 'fake' / 'docker'}")
    pairs = _pairs(args)
    assert args[0] == "build" and args[-1] == "."
    assert ("-f", "docker/Dockerfile") in pairs
    assert ("-t", (REPO / "docker" / "IMAGE").read_text().strip()) in pairs
    lock = hashlib.sha256((REPO / "requirements.lock").read_bytes()).hexdigest()
    assert ("--build-arg", f"LOCK_SHA256={lock}") in pairs
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if head:  # the commit as a --label too: a cached LABEL step would keep the previous one
        assert ("--label", f"org.opencontainers.image.revision={head}") in pairs
    # no BASE_IMAGE: the Dockerfile's pinned default, and Docker's own format
    assert not any(a.startswith("BASE_") for a in args) and "--format" not in args


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_docker_build_with_podman_and_a_local_base(tmp_path):
    args = _make_docker_build(tmp_path, f"DOCKER={tmp_path / 'fake' / 'podman'}",
                              "BASE_IMAGE=localhost/uplr-base:bookworm")
    pairs = _pairs(args)
    assert ("--format", "docker") in pairs  # keeps SHELL (the OCI format drops it)
    assert ("--build-arg", "BASE_IMAGE=localhost/uplr-base:bookworm") in pairs
    # the local base's id, with the sha256: prefix Podman leaves out
    assert ("--build-arg", "BASE_DIGEST=sha256:" + "ab" * 32) in pairs
    # a base named by digest needs no lookup
    ref = "registry.example/python@sha256:" + "cd" * 32
    args = _make_docker_build(tmp_path, f"DOCKER={tmp_path / 'fake' / 'podman'}", f"BASE_IMAGE={ref}")
    assert ("--build-arg", "BASE_DIGEST=") in _pairs(args)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_wheelhouse_downloads_the_runtime_lock_with_hashes():
    res = subprocess.run(["make", "--no-print-directory", "-n", "-B", "-f", "Makefile", "build/wheelhouse/.lock-sha256"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    download = [ln for ln in res.stdout.replace("\\\n", " ").splitlines() if " download " in ln]
    assert len(download) == 1
    for part in ("--require-hashes", "--no-deps", "-r requirements.lock", "-d build/wheelhouse"):
        assert part in download[0], part
    assert "requirements-dev.lock" not in download[0] and "index-url" not in download[0]


# --- scripts/docker_pin.py -------------------------------------------------------------------------

def _load_pin():
    spec = importlib.util.spec_from_file_location("docker_pin", REPO / "scripts" / "docker_pin.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["docker_pin"] = mod
    spec.loader.exec_module(mod)
    return mod


OLD = "sha256:" + "1" * 64


@pytest.fixture
def pinned_dockerfile(tmp_path) -> Path:
    p = tmp_path / "Dockerfile"
    p.write_text(f"# digest-source: recorded by someone, not verified here\nFROM python:3.11-slim-bookworm@{OLD}\n"
                 f'LABEL org.opencontainers.image.base.digest="{OLD}"\nUSER 1000\n')
    return p


def test_parse_image_refs():
    pin = _load_pin()
    r = pin.ImageRef.parse(f"python:3.11-slim-bookworm@{OLD}")
    assert (r.registry, r.repository, r.tag, r.digest) == ("registry-1.docker.io", "library/python",
                                                           "3.11-slim-bookworm", OLD)
    r = pin.ImageRef.parse("ghcr.io/org/img:1.2")
    assert (r.registry, r.repository, r.tag, r.digest) == ("ghcr.io", "org/img", "1.2", None)
    r = pin.ImageRef.parse("localhost:5000/team/uplr")
    assert (r.registry, r.repository, r.tag) == ("localhost:5000", "team/uplr", "latest")


def test_pin_fails_clearly_when_the_registry_is_unreachable(pinned_dockerfile, monkeypatch, capsys):
    pin = _load_pin()

    def no_network(*a, **k):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(pin.urllib.request, "urlopen", no_network)
    before = pinned_dockerfile.read_text()
    assert pin.main([str(pinned_dockerfile)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the registry" in err and "registry-1.docker.io" in err and "make docker-pin" in err
    assert pinned_dockerfile.read_text() == before


def test_pin_cli_exit_status_on_refused_connection(pinned_dockerfile):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "docker_pin.py"), str(pinned_dockerfile),
                          "--registry-url", f"http://127.0.0.1:{port}", "--timeout", "5"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "cannot reach the registry" in res.stderr


class _Registry(http.server.BaseHTTPRequestHandler):
    """Docker Hub's exchange in miniature: 401 + Bearer challenge, anonymous token, manifest by tag."""

    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": []}).encode()
    header_digest: str | None = None
    seen: list[str] = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).seen.append(self.path)
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            body = json.dumps({"token": "anon-token"}).encode()
            self.send_response(200)
        elif self.path == "/v2/library/python/manifests/3.11-slim-bookworm":
            if self.headers.get("Authorization") != "Bearer anon-token":
                self.send_response(401)
                self.send_header("WWW-Authenticate",
                                 f'Bearer realm="{host}/token",service="registry.docker.io",'
                                 'scope="repository:library/python:pull"')
                self.end_headers()
                return
            body = self.manifest
            self.send_response(200)
            self.send_header("Docker-Content-Digest", self.header_digest or
                             "sha256:" + hashlib.sha256(body).hexdigest())
        else:
            body = b"{}"
            self.send_response(404)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def registry():
    _Registry.seen = []
    _Registry.header_digest = None
    server = http.server.HTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_pin_rewrites_from_line_and_label(pinned_dockerfile, registry):
    pin = _load_pin()
    assert pin.main([str(pinned_dockerfile), "--registry-url", registry]) == 0
    new = "sha256:" + hashlib.sha256(_Registry.manifest).hexdigest()
    text = pinned_dockerfile.read_text()
    assert f"FROM python:3.11-slim-bookworm@{new}\n" in text
    assert f'base.digest="{new}"' in text and OLD not in text
    assert "recorded by someone" not in text and "# digest-source: resolved from 127.0.0.1" in text
    assert any(p.startswith("/token") and "scope=repository%3Alibrary%2Fpython%3Apull" in p for p in _Registry.seen)


def test_pin_refuses_a_digest_that_does_not_match_the_manifest(pinned_dockerfile, registry, capsys):
    pin = _load_pin()
    _Registry.header_digest = "sha256:" + "f" * 64
    before = pinned_dockerfile.read_text()
    assert pin.main([str(pinned_dockerfile), "--registry-url", registry]) == 1
    assert "does not match" in capsys.readouterr().err
    assert pinned_dockerfile.read_text() == before


def test_pin_rewrites_the_arg_default_when_from_names_it(tmp_path, registry):
    pin = _load_pin()
    p = tmp_path / "Dockerfile"
    p.write_text(f"# digest-source: recorded by someone, not verified here\n"
                 f"ARG BASE_IMAGE=python:3.11-slim-bookworm@{OLD}\nFROM ${{BASE_IMAGE}}\nARG BASE_IMAGE\nUSER 1000\n")
    assert pin.main([str(p), "--registry-url", registry]) == 0
    new = "sha256:" + hashlib.sha256(_Registry.manifest).hexdigest()
    text = p.read_text()
    assert f"ARG BASE_IMAGE=python:3.11-slim-bookworm@{new}\nFROM ${{BASE_IMAGE}}\n" in text and OLD not in text
    p.write_text("FROM ${BASE_IMAGE}\n")
    assert pin.main([str(p), "--registry-url", registry]) == 1
