"""Sharing artifacts through a DVC remote: push, wipe, pull gives the same bytes; the preflight fails clearly.

Everything runs offline in a tiny self-made DVC project under tmp_path, through DVC's own CLI: once
against a local folder outside the project, once against moto's S3 server on loopback. The repo's own
.dvc/config is only read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "remote.py"
BIN = Path(sys.executable).parent
DVC = BIN / "dvc" if (BIN / "dvc").exists() else REPO / ".venv" / "bin" / "dvc"
OUTPUTS = ("data", "out")  # every file DVC restores lives under these
FAKE_KEY, FAKE_SECRET = "AKIAUPLRFAKEKEY00001", "uplr-fake-secret-do-not-commit-0001"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def base_env(tmp_path_factory) -> dict[str, str]:
    """No real AWS/DVC user state leaks in: no keys, no ~/.aws files, no proxies, private DVC dirs."""
    state = tmp_path_factory.mktemp("dvc-state")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(state / "global"),
        DVC_SYSTEM_CONFIG_DIR=str(state / "system"),
        DVC_SITE_CACHE_DIR=str(state / "site"),
        AWS_SHARED_CREDENTIALS_FILE=str(state / "no-aws-credentials"),
        AWS_CONFIG_FILE=str(state / "no-aws-config"),
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost",
        GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    return env


@pytest.fixture(scope="module")
def s3_env(base_env) -> dict[str, str]:
    return {**base_env, "AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1"}


def run(args: list, cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)
    if ok:
        assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def dvc(*args, cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess:
    return run([DVC, *args], cwd, env, ok)


def preflight(project: Path, env: dict[str, str], action: str, remote: str | None = None):
    extra = ["--remote", remote] if remote else []
    return run([sys.executable, SCRIPT, "check", "--for", action, *extra], project, env, ok=False)


def _data_files(project: Path) -> list[Path]:
    """Files under OUTPUTS that git does not track (.dvc and .gitignore files are git's, not DVC's)."""
    tracked = set(subprocess.run(["git", "ls-files", *OUTPUTS], cwd=project, capture_output=True,
                                 text=True, check=True).stdout.splitlines())
    return [path for top in OUTPUTS for path in sorted((project / top).rglob("*"))
            if path.is_file() and str(path.relative_to(project)) not in tracked]


def snapshot(project: Path) -> dict[str, str]:
    """sha256 of every file DVC restores."""
    return {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in _data_files(project)}


def wipe(project: Path) -> None:
    """What a fresh clone lacks: DVC's cache and state, and every output."""
    for rel in (".dvc/cache", ".dvc/tmp"):
        shutil.rmtree(project / rel, ignore_errors=True)
    for path in _data_files(project):
        path.unlink()
    assert snapshot(project) == {}


@pytest.fixture(scope="module")
def template(tmp_path_factory, base_env) -> Path:
    """git + DVC project with a text file, a binary file, a nested folder and one pipeline stage."""
    proj = tmp_path_factory.mktemp("template") / "proj"
    (proj / "data" / "dir" / "nested").mkdir(parents=True)
    (proj / "data" / "a.txt").write_text("pseudo labels, refined\n")
    (proj / "data" / "blob.bin").write_bytes(os.urandom(5000) + bytes(range(256)))
    (proj / "data" / "dir" / "x.txt").write_text("x\n")
    (proj / "data" / "dir" / "nested" / "img.raw").write_bytes(os.urandom(3000))
    (proj / "dvc.yaml").write_text(
        "stages:\n  join:\n    cmd: mkdir -p out && cat data/a.txt data/blob.bin > out/joined.bin\n"
        "    deps: [data/a.txt, data/blob.bin]\n    outs: [out/joined.bin]\n"
    )
    run(["git", "init", "-q"], proj, base_env)
    dvc("init", "-q", cwd=proj, env=base_env)
    dvc("config", "core.analytics", "false", cwd=proj, env=base_env)
    dvc("add", "-q", "data/a.txt", "data/blob.bin", "data/dir", cwd=proj, env=base_env)
    dvc("repro", "-q", cwd=proj, env=base_env)
    run(["git", "add", "-A"], proj, base_env)
    run(["git", "commit", "-q", "-m", "tiny project"], proj, base_env)
    return proj


@pytest.fixture
def project(template, tmp_path) -> Path:
    proj = tmp_path / "proj"
    shutil.copytree(template, proj, symlinks=True)
    return proj


def test_template_tracks_binary_folder_and_stage(template):
    files = snapshot(template)
    assert set(files) == {"data/a.txt", "data/blob.bin", "data/dir/x.txt", "data/dir/nested/img.raw",
                          "out/joined.bin"}
    assert (template / "dvc.lock").is_file() and (template / "data" / "dir.dvc").is_file()


@pytest.mark.slow
def test_local_remote_push_wipe_pull_is_bit_identical(project, tmp_path, base_env):
    # a relative url, as in the repo's .dvc/config: DVC stores it relative to .dvc/ and resolves it back
    dvc("remote", "add", "-d", "shared", "../remote-store", cwd=project, env=base_env)
    config = (project / ".dvc" / "config").read_text()
    assert "../../remote-store" in config and str(tmp_path) not in config
    store = tmp_path / "remote-store"
    assert preflight(project, base_env, "pull").returncode == 2  # nothing pushed yet

    assert preflight(project, base_env, "push").returncode == 0
    dvc("push", "-q", cwd=project, env=base_env)
    assert sum(1 for p in store.rglob("*") if p.is_file()) >= 6  # 5 files + the folder's .dir listing

    before = snapshot(project)
    wipe(project)
    assert not (project / ".dvc" / "cache").exists()
    assert preflight(project, base_env, "pull").returncode == 0
    dvc("pull", "-q", cwd=project, env=base_env)
    assert snapshot(project) == before


def test_pull_from_an_empty_remote_fails(project, tmp_path, base_env):
    """Guards the round trip above: without a push, wiping really loses the data."""
    (tmp_path / "empty").mkdir()
    dvc("remote", "add", "-d", "shared", str(tmp_path / "empty"), cwd=project, env=base_env)
    wipe(project)
    assert dvc("pull", "-q", cwd=project, env=base_env, ok=False).returncode != 0
    assert snapshot(project) == {}


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _bucket(endpoint: str, name: str):
    import boto3

    s3 = boto3.resource("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=FAKE_KEY, aws_secret_access_key=FAKE_SECRET)
    return s3.create_bucket(Bucket=name)


def _add_s3_remote(project: Path, endpoint: str, url: str) -> None:
    """What `dvc remote add s3 URL` + `dvc remote modify s3 endpointurl ENDPOINT` write (saves 2 DVC runs)."""
    with (project / ".dvc" / "config").open("a") as fh:
        fh.write(f"['remote \"s3\"']\n    url = {url}\n    endpointurl = {endpoint}\n")


@pytest.mark.slow
def test_s3_remote_push_wipe_pull_is_bit_identical(project, moto_endpoint, s3_env):
    bucket = _bucket(moto_endpoint, "uplr-roundtrip")
    _add_s3_remote(project, moto_endpoint, "s3://uplr-roundtrip/store")
    assert preflight(project, s3_env, "push", remote="s3").returncode == 0
    dvc("push", "-q", "-r", "s3", cwd=project, env=s3_env)
    keys = [obj.key for obj in bucket.objects.all()]
    assert len(keys) >= 6 and all(k.startswith("store/") for k in keys)

    before = snapshot(project)
    wipe(project)
    assert preflight(project, s3_env, "pull", remote="s3").returncode == 0
    dvc("pull", "-q", "-r", "s3", cwd=project, env=s3_env)
    assert snapshot(project) == before


def test_preflight_local_parent_missing(project, tmp_path, base_env):
    store = tmp_path / "not-mounted" / "deeper" / "store"
    dvc("remote", "add", "-d", "shared", str(store), cwd=project, env=base_env)
    for action in ("push", "pull"):
        proc = preflight(project, base_env, action)
        assert proc.returncode == 2
        assert "unreachable" in proc.stderr and str(store.parent) in proc.stderr
        assert f"mkdir -p {store}" in proc.stderr and "dvc remote modify shared url" in proc.stderr
    assert not store.parent.exists()


def test_preflight_unknown_remote_and_no_default(project, base_env):
    proc = preflight(project, base_env, "push", remote="nope")
    assert proc.returncode == 2 and "'nope' is not configured" in proc.stderr
    proc = preflight(project, base_env, "push")
    assert proc.returncode == 2 and "no default DVC remote" in proc.stderr


def test_preflight_s3_endpoint_not_listening(project, s3_env):
    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    _add_s3_remote(project, endpoint, "s3://uplr-share/store")
    proc = preflight(project, s3_env, "push", remote="s3")
    assert proc.returncode == 2
    assert f"S3 endpoint {endpoint}" in proc.stderr and "not answering" in proc.stderr


def test_preflight_s3_missing_bucket(project, moto_endpoint, s3_env):
    _add_s3_remote(project, moto_endpoint, "s3://never-created/store")
    proc = preflight(project, s3_env, "pull", remote="s3")
    assert proc.returncode == 2 and "'never-created' does not exist" in proc.stderr


def test_preflight_s3_without_credentials(project, base_env):
    endpoint = f"http://127.0.0.1:{_free_port()}"
    _add_s3_remote(project, endpoint, "s3://uplr-share/store")
    proc = preflight(project, base_env, "push", remote="s3")
    assert proc.returncode == 2
    assert "no credentials" in proc.stderr and "not answering" not in proc.stderr  # fails before the network
    assert "AWS_ACCESS_KEY_ID" in proc.stderr and "dvc remote modify --local s3" in proc.stderr
    # only one of the two keys in the environment is as bad as none
    proc = preflight(project, {**base_env, "AWS_ACCESS_KEY_ID": FAKE_KEY}, "push", remote="s3")
    assert proc.returncode == 2 and "AWS_SECRET_ACCESS_KEY" in proc.stderr


@pytest.mark.slow
def test_local_credentials_stay_out_of_git(project, moto_endpoint, base_env):
    bucket = _bucket(moto_endpoint, "uplr-keys")
    _add_s3_remote(project, moto_endpoint, "s3://uplr-keys/store")
    dvc("remote", "modify", "--local", "s3", "access_key_id", FAKE_KEY, cwd=project, env=base_env)
    dvc("remote", "modify", "--local", "s3", "secret_access_key", FAKE_SECRET, cwd=project, env=base_env)

    local = (project / ".dvc" / "config.local").read_text()
    assert FAKE_KEY in local and FAKE_SECRET in local
    assert FAKE_SECRET not in (project / ".dvc" / "config").read_text()
    ignored = run(["git", "check-ignore", "-q", ".dvc/config.local"], project, base_env, ok=False)
    assert ignored.returncode == 0
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], project, base_env).stdout
    # the url/endpoint change shows, the keys don't
    assert ".dvc/config" in status and "config.local" not in status
    run(["git", "add", "-A"], project, base_env)
    run(["git", "commit", "-q", "-m", "s3 remote"], project, base_env)
    committed = run(["git", "grep", "-I", "-l", "-e", FAKE_SECRET, "-e", FAKE_KEY, "HEAD"], project, base_env,
                    ok=False)
    assert committed.returncode == 1 and committed.stdout == ""  # no match in any committed file

    # with no AWS_* in the environment, the keys in config.local are what the preflight and DVC use
    assert preflight(project, base_env, "push", remote="s3").returncode == 0
    dvc("push", "-q", "-r", "s3", cwd=project, env=base_env)
    assert any(obj.key.startswith("store/") for obj in bucket.objects.all())


def test_repo_default_remote_is_relative_and_outside_the_repo():
    from dvc.config import Config

    raw = (REPO / ".dvc" / "config").read_text()
    assert "remote = local" in raw and "url = ../../uplr-dvc-remote" in raw
    assert str(REPO) not in raw and "/home/" not in raw
    config = Config(dvc_dir=str(REPO / ".dvc")).load_one("repo")  # the tracked file only
    assert config["core"]["remote"] == "local"
    store = Path(config["remote"]["local"]["url"])
    assert store == REPO.parent / "uplr-dvc-remote"
    assert REPO not in store.parents
    assert "/config.local" in (REPO / ".dvc" / ".gitignore").read_text().splitlines()
