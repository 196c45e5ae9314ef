"""The experiment grid and the exactness of every stage's dependencies in dvc.yaml.

* params, both ways: every stage of the embedded pipeline runs in-process on tiny data (its real
  command line from dvc.yaml) with the config reads recorded (tests/config_recorder.py); the leaf keys it read
  must be exactly the leaf keys its dvc.yaml entry lists (params plus the ``${…}`` keys of its paths),
  over the variants that make a stage read other keys (translate's methods, the pseudo-label methods,
  a second UPST round);
* code: every uplr file whose code ran during the stage (sys.setprofile) is covered by a code dep of
  the stage, and so is every uplr module a fresh interpreter loads when importing the stage's entry;
* layers: no import cycle inside uplr; no stage module imports another; no module over 400 lines
  without a reason written at its top.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from uplr import experiments as X
from uplr import pipelines as P
from uplr.codedeps import REPO, closure, module_file

SEED = 0
TINY = {
    "generate": {"height": 32, "width": 64, "n_source": 8, "n_target_train": 6, "n_target_val": 4},
    "data": {"source": {"size": [64, 32]}, "target": {"size": [64, 32]}},
    "train": {"iterations": 2, "batch_size": 2, "checkpoint_every": 1, "log_every": 1},
    "tgaa": {"stages": 2, "k": 3, "iterations": 2},
    "upst": {"iterations": 2, "bins": 64},
    "evaluate": {"batch_size": 2},
}


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def _resolved_stages(root: Path) -> dict[str, dict]:
    """dvc.yaml's stages for seed 0, with ``${…}`` resolved from params.yaml; each keeps its used keys."""
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())

    def lookup(key: str):
        obj = params
        for part in key.split("."):
            obj = obj[part]
        return obj

    out = {}
    for name, st in doc["stages"].items():
        body = st.get("do", st)
        text = json.dumps(body).replace("${item}", str(SEED))
        used = set(re.findall(r"\$\{([a-z_.]+)\}", text))
        text = re.sub(r"\$\{([a-z_.]+)\}", lambda m: str(lookup(m[1])), text)
        resolved = json.loads(text)
        resolved["interpolated"] = used
        out[name] = resolved
    return out


def _leaves(keys) -> set[str]:
    from uplr.config import Config
    from uplr.reads import leaf_keys

    return leaf_keys(Config(), [k for k in keys if isinstance(k, str)])


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


class _Profiler:
    """The uplr source files whose functions were called while active."""

    def __init__(self):
        self.files: set[str] = set()
        self.prefix = str(REPO / "uplr") + os.sep

    def __call__(self, frame, event, arg):
        if event == "call":
            f = frame.f_code.co_filename
            if f.startswith(self.prefix):
                self.files.add(str(Path(f).relative_to(REPO)))

    def __enter__(self):
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Run every stage of the embedded pipeline in-process on tiny data: reads and files per stage."""
    from config_recorder import record_reads

    from uplr import cli

    root = tmp_path_factory.mktemp("grid")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(_merge(params, TINY), sort_keys=False))
    (root / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    os.chdir(root)
    os.environ.update({"MLFLOW_TRACKING_URI": f"sqlite:///{root}/ml.db", "UPLR_ROOT": str(root)})
    stages = _resolved_stages(root)
    reads: dict[str, set[str]] = {}
    files: dict[str, set[str]] = {}

    def run(name: str, *overrides: str) -> None:
        argv = stages[name]["cmd"].split(" -- ", 1)[1].split()[1:]
        argv += [a for o in overrides for a in ("-o", o)]
        with record_reads() as r, _Profiler() as prof:
            code = cli.main(argv)
        assert code == 0, f"{name} {overrides} failed"
        reads.setdefault(name, set()).update(r)
        files.setdefault(name, set()).update(prof.files)

    try:
        for name in stages:
            if name not in ("train_upst", "evaluate_upst", "tables"):
                run(name)
        # variants that read other keys
        run("translate", "translate.method=external", f"translate.external_root={params['data']['source']['root']}",
            "translate.out=data/translated/external")
        for method in ("threshold", "bdl", "cbst"):
            run("pseudo_label", f"upst.method={method}")
        upst = "train_upst"
        run(upst)
        for method in ("gmm", "threshold", "bdl", "cbst"):
            run(upst, "upst.rounds=2", f"upst.method={method}")
        for variant in [n for n in stages if n.startswith("train_upst_")]:  # their later rounds read more
            run(variant, "upst.rounds=2")
        run("evaluate_upst")
        with _Profiler() as prof:
            assert cli.main(["tables", "--out", str(root / "reports")]) == 0
        files["tables"] = prof.files
        reads["tables"] = set()
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
    return stages, reads, files


@pytest.mark.slow
def test_every_stage_lists_exactly_the_params_it_reads(recorded):
    stages, reads, _ = recorded
    problems = []
    for name, st in stages.items():
        listed = _leaves(st.get("params", [])) | _leaves(sorted(st["interpolated"]))
        used = {k for k in reads[name] if k.split(".")[0] not in X.NOT_INPUTS}
        if used - listed:
            problems.append(f"{name} reads but does not list: {sorted(used - listed)}")
        if listed - used:
            problems.append(f"{name} lists but never reads: {sorted(listed - used)}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_file_a_stage_runs_is_a_code_dep(recorded):
    stages, _, files = recorded
    problems = []
    for name, st in stages.items():
        missing = sorted(f for f in files[name] if not _covered(f, st["deps"]))
        if missing:
            problems.append(f"{name} runs code it does not list: {missing}")
    assert not problems, "\n".join(problems)


def test_no_stage_lists_tracking():
    for b in P.PIPELINES.values():
        for name, st in P.stages(b).items():
            listed = st.get("do", st).get("params", [])
            assert not [p for p in listed if str(p).split(".")[0] in X.NOT_INPUTS], (b.name, name)


def _entries() -> dict[str, str]:
    out = {r.train_stage: r.entry for r in X.ROWS.values()}
    out.update({s.name: s.entry for s in X.STAGES.values() if s.name != "train"})
    return out


@pytest.mark.parametrize("stage,entry", sorted(_entries().items()))
def test_fresh_interpreter_imports_only_listed_code(stage, entry):
    """Importing the command path and the entry loads only modules that the stage lists as code."""
    code = (f"import sys, json, uplr.runner, uplr.cli, importlib; importlib.import_module({entry!r}); "
            "print(json.dumps(sorted(getattr(m, '__file__', '') or '' for n, m in sys.modules.items() "
            "if n == 'uplr' or n.startswith('uplr.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    loaded = [str(Path(f).resolve().relative_to(REPO)) for f in json.loads(out) if f]
    kind = stage if stage in X.STAGES else "train"
    for b in P.PIPELINES.values():
        st = P.stages(b).get(stage)
        if st is None:
            continue
        deps = [d.removeprefix(b.prefix) for d in st.get("do", st)["deps"]]
        missing = [f for f in loaded if not _covered(f, deps)]
        assert not missing, f"{b.name}:{stage} ({kind}) imports {missing} without listing it"


# ----------------------------------------------------------------------------------------------------
# layers


def _modules() -> list[str]:
    return sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                  for p in (REPO / "uplr").rglob("*.py"))


def _imports_of(mod: str) -> set[str]:
    from uplr.codedeps import _imports

    return {m for m in _imports(mod, top_level_only=mod == "uplr.cli") if m != mod}


def test_no_import_cycle_inside_uplr():
    graph = {m: {i for i in _imports_of(m) if not m.startswith(i + ".") and i != "uplr"} for m in _modules()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            visit(n)
        stack.pop()

    for m in graph:
        visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_stage_module_imports_another():
    stage_mods = [m for m in _modules() if m.startswith("uplr.stages.")]
    for m in stage_mods:
        others = sorted(i for i in _imports_of(m) if i.startswith("uplr.stages.") and i != m)
        assert not others, f"{m} imports {others}: stages call library code, never each other"


def test_modules_stay_small_or_say_why():
    for path in sorted((REPO / "uplr").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 400:
            doc = ast.get_docstring(ast.parse(text)) or ""
            assert "Longer than" in doc, f"{path.relative_to(REPO)}: {text.count(chr(10))} lines and no reason " \
                                         "('Longer than ... because ...') at its top"


def test_grid_rows_are_consistent():
    for r in X.ROWS.values():
        assert module_file(r.entry) is not None, r.id
        for other in (r.parent, r.init_from, r.versus):
            assert other is None or other in X.ROWS, (r.id, other)
        assert set(r.components) <= set(X.TABLE3_COMPONENTS)
    # each Table 3 row adds exactly one component to its parent
    for r in X.ROWS.values():
        if r.table == "table3" and r.parent:
            assert set(r.components) - set(X.ROWS[r.parent].components) and \
                len(r.components) == len(X.ROWS[r.parent].components) + 1, r.id
    assert closure("uplr.experiments") == ("uplr", "uplr.errors", "uplr.experiments")


def test_benchmarks_are_named_once():
    """The grid names the benchmarks; the config's closed set and make's list must agree with it."""
    from uplr.config import BENCHMARKS as CONFIG_BENCHMARKS

    assert tuple(CONFIG_BENCHMARKS) == tuple(X.BENCHMARKS)
    mk = (REPO / "mk/pipelines.mk").read_text()
    line = next(x for x in mk.splitlines() if x.startswith("BENCHMARKS :="))
    assert tuple(line.split(":=", 1)[1].split()) == X.REAL_BENCHMARKS
