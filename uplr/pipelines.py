"""Every ``dvc.yaml`` of the repository, rendered from the experiment grid (uplr/experiments.py).

The embedded benchmark (``dvc.yaml`` at the root) and the three real benchmarks
(``pipelines/<benchmark>/dvc.yaml``) run the same stages: translate (IT) and class statistics (SR),
the training rows of Table 3 per seed, pseudo labels (UPST), one evaluation per trained model, the
tables. Each stage lists exactly what it uses:

* **params**: the config keys its code reads, from the grid (tests/test_grid.py records the reads of
  every stage on tiny data and compares); ``tracking`` is no stage's dependency;
* **code**: every uplr file its entry point imports, derived from the source (uplr/codedeps.py);
* **data**: paths from params.yaml through DVC's ``${…}`` interpolation, so a path is declared once;
  upstream models, pseudo labels and class statistics by the layout below.

What differs per benchmark is data: whether the data come from the ``generate`` stage (embedded),
whether the target train split has labels (oracle row, pseudo-label quality), whether init weights are
a file, and Cross-City's city axis (a DVC ``matrix`` of city x seed; the source-only model does not
depend on the city and is trained once per seed).

``python -m uplr.pipelines`` rewrites the four files, ``--check`` fails when a committed file differs
from its rendering (tests/test_pipelines.py does the same).

Longer than 400 lines because the header comment of each dvc.yaml is written here beside the stages it
describes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from uplr import experiments as X
from uplr.codedeps import REPO, stage_files
from uplr.data.benchmark_check import CITIES_FILE
from uplr.errors import UplrError

log = logging.getLogger(__name__)

RUNNER = "python -m uplr.runner --"
CLASS_STATS = "stats/source_class_counts.npz"


@dataclass(frozen=True)
class Benchmark:
    """What one pipeline's dvc.yaml depends on; every path is relative to the dvc.yaml's folder."""

    name: str  # the ``benchmark`` in params.yaml and MLflow (uplr/experiments.py BENCHMARKS)
    header: str  # the comment on top of the file
    generate: bool = False  # the data come from the ``generate`` stage (embedded benchmark)
    init_dep: bool = False  # model.init is a weights file: a dep of the rows trained from it
    packaged_lists: bool = False  # splits name the official lists shipped in uplr/data/lists
    oracle: bool = True  # the target train split has labels: oracle row
    quality: bool = True  # ... and a pseudo-label quality report
    cities: bool = False  # Cross-City: stages that read the target repeat over the cities
    tables_cmd: str = "uplr tables --out reports/latest --stage tables"

    @property
    def folder(self) -> str:
        return X.BENCHMARKS[self.name].folder

    @property
    def prefix(self) -> str:
        """From the dvc.yaml's folder back to the repository root (``""`` or ``"../../"``)."""
        depth = 0 if self.folder in ("", ".") else len(Path(self.folder).parts)
        return "../" * depth

    def code(self, path: str) -> str:
        return f"{self.prefix}{path}"

    @property
    def dvc_yaml(self) -> str:
        return "dvc.yaml" if self.folder in ("", ".") else f"{self.folder}/dvc.yaml"


# ----------------------------------------------------------------------------------------------------
# how a stage repeats


@dataclass(frozen=True)
class Loop:
    """``seed``: foreach seeds; ``city``: foreach cities; ``city_seed``: matrix city x seed; None: once."""

    kind: str | None

    @property
    def seed(self) -> str:
        return {"seed": "${item}", "city_seed": "${item.seed}"}.get(self.kind or "", "")

    @property
    def city(self) -> str | None:
        return {"city": "${item}", "city_seed": "${item.city}"}.get(self.kind or "")

    def name(self, stage: str) -> str:
        """The stage's name as DVC generates it (``train_aa@${item}``, ``train_aa@${item.city}-${item.seed}``)."""
        suffix = {"seed": "${item}", "city": "${item}", "city_seed": "${item.city}-${item.seed}"}.get(self.kind or "")
        return f"{stage}@{suffix}" if suffix else stage

    def wrap(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "seed":
            return {"foreach": "${seeds}", "do": body}
        if self.kind == "city":
            return {"foreach": "${cities}", "do": body}
        if self.kind == "city_seed":
            return {"matrix": {"city": "${cities}", "seed": "${seeds}"}, **body}
        return body

    def under(self, base: str) -> str:
        """``base`` or, per city, ``base/<city>``: each city gets its own output folders."""
        return f"{base}/{self.city}" if self.city else base


ONCE, PER_SEED, PER_CITY, PER_CITY_SEED = Loop(None), Loop("seed"), Loop("city"), Loop("city_seed")


# ----------------------------------------------------------------------------------------------------
# paths: data from params.yaml (interpolated), everything else the pipeline's layout


class _Ctx:
    def __init__(self, b: Benchmark):
        self.b = b

    def loop(self, city_dependent: bool = True) -> Loop:
        """The loop of a per-seed stage: per city and seed on Cross-City when it reads the target."""
        return PER_CITY_SEED if (self.b.cities and city_dependent) else PER_SEED

    source = "${data.source.root}"

    def target(self, lp: Loop) -> str:
        return f"${{data.target.root}}/{lp.city}" if self.b.cities else "${data.target.root}"

    def translated(self, lp: Loop) -> str:
        return lp.under("${translate.out}")

    def manifest(self, lp: Loop) -> str:
        return f"{lp.under('stats')}/translate.json"

    def run_dir(self, row: str, lp: Loop) -> str:
        return f"{lp.under('runs')}/{row}/seed{lp.seed}"

    def model(self, row: str, lp: Loop) -> str:
        # the source-only model does not depend on the target city: trained once per seed
        if row == "source_only" and self.b.cities:
            return f"runs/source_only/seed{lp.seed}/model.pt"
        return f"{self.run_dir(row, lp)}/model.pt"

    def pseudo(self, lp: Loop, labels: str = "") -> str:
        return f"{lp.under('pseudo')}/{labels or 'upst'}/seed{lp.seed}/round1"

    def overrides(self, lp: Loop, translated: bool = False) -> str:
        """Command-line overrides of a per-city stage: its city and, where IT data is used, its folder."""
        if not lp.city:
            return ""
        out = f" -o data.target.city={lp.city}"
        if translated:
            out += f" -o translate.out={self.translated(lp)}"
        return out

    def cmd(self, args: str, lp: Loop, stage: str, translated: bool = False,
            pinned: tuple[tuple[str, str], ...] = ()) -> str:
        pins = "".join(f" -o {k}={v}" for k, v in pinned)
        return f"{RUNNER} uplr {args}{self.overrides(lp, translated)}{pins} --stage {lp.name(stage)}"

    def code(self, entry: str, extra: tuple[str, ...] = ()) -> list[str]:
        """The stage's code dependencies: its files, a package folder where every module in it is used."""
        return [self.b.code(p) for p in compress(stage_files(entry))] + [self.b.code(p) for p in extra] + \
            [self.b.code("docker/IMAGE")]

    def lists(self) -> list[str]:
        return [self.b.code("uplr/data/lists")] if self.b.packaged_lists else []


def compress(files: list[str]) -> list[str]:
    """Replace the files of a package folder by the folder when every ``.py`` file in it is listed.

    A folder dependency covers every file in it (DVC ignores __pycache__, see .dvcignore); only
    folders whose Python files are all used qualify, so nothing the stage does not run is added.
    """
    chosen = set(files)
    for d in sorted({str(Path(f).parent) for f in files}, key=lambda p: -len(Path(p).parts)):
        folder = REPO / d
        if d in (".", "uplr") or not folder.is_dir():
            continue
        members = {str(p.relative_to(REPO)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}
        non_py = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
        if members and members <= chosen and not non_py:
            chosen = (chosen - members) | {d}
    return sorted(chosen)


def _params(keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if k.split(".")[0] not in X.NOT_INPUTS]


# ----------------------------------------------------------------------------------------------------
# the stages


def _generate(c: _Ctx) -> dict[str, Any]:
    return {
        "cmd": f"{RUNNER} uplr generate --stage generate",
        "deps": c.code(X.STAGES["generate"].entry),
        "params": _params(X.STAGES["generate"].reads),
        "outs": ["${generate.out}"],
    }


def _translate(c: _Ctx) -> dict[str, Any]:
    lp = PER_CITY if c.b.cities else ONCE
    spec = X.STAGES["translate"]
    return lp.wrap({
        "cmd": c.cmd(f"translate --manifest {c.manifest(lp)}", lp, "translate", translated=True),
        "deps": [c.source, c.target(lp), *c.lists(), *c.code(spec.entry)],
        "params": _params(spec.reads),
        "outs": [c.translated(lp), {c.manifest(lp): {"cache": False}}],
    })


def _class_stats(c: _Ctx) -> dict[str, Any]:
    spec = X.STAGES["class_stats"]
    return {
        "cmd": f"{RUNNER} uplr class-stats --out {CLASS_STATS} --stage class_stats",
        "deps": [c.source, *c.lists(), *c.code(spec.entry)],
        "params": _params(spec.reads),
        "outs": [CLASS_STATS],
    }


def _train(c: _Ctx, row: X.Row) -> dict[str, Any]:
    lp = c.loop(city_dependent=row.id != "source_only")
    run = c.run_dir(row.id, lp)
    args = f"train --row {row.id} --seed {lp.seed} --out {run} --resume-dir {run}/resume"
    data: list[str] = []
    translated = row.labeled == "translated"
    if row.labeled == "source":
        data.append(c.source)
    elif translated:
        data.append(c.translated(lp))
    if row.labeled == "target" or row.adversarial or row.pseudo or row.weights == "tgaa":
        data.append(c.target(lp))
    if row.uses_class_stats:
        args += f" --class-stats {CLASS_STATS}"
        data.append(CLASS_STATS)
    if row.pseudo:
        args += f" --pseudo {c.pseudo(lp, row.labels)}"
        data.append(c.pseudo(lp, row.labels))
    if row.init_from:
        args += f" --init-model {c.model(row.init_from, lp)}"
        data.append(c.model(row.init_from, lp))
    elif c.b.init_dep:
        data.append("${model.init}")
    outs: list[Any] = [f"{run}/model.pt", {f"{run}/resume": {"cache": False, "persist": True}}]
    if row.entry == "uplr.stages.train_tgaa":  # S_k, class entropies and scores per stage
        outs.append({f"{run}/tgaa_stages.json": {"cache": False}})
    if row.pseudo:  # rounds 2..R: their pseudo labels, one folder per round (empty for one round)
        outs.append(f"{run}/later_rounds")
    return lp.wrap({
        "cmd": c.cmd(args, lp, row.train_stage, translated, row.overrides),
        "deps": [*data, *c.lists(), *c.code(row.entry)],
        "params": _params(row.reads),
        "outs": outs,
        "plots": [{f"{run}/train_log.csv": {"x": "step", "y": "loss_seg", "cache": False}}],
    })


def _pseudo(c: _Ctx, kind: str, labels: str = "") -> dict[str, Any]:
    lp = c.loop()
    spec = X.STAGES[kind]
    model = c.model(X.PSEUDO_FROM, lp)
    body: dict[str, Any] = {"deps": [model, c.target(lp), *c.lists(), *c.code(spec.entry)],
                            "params": _params(spec.reads)}
    if kind == "pseudo_label":
        out = c.pseudo(lp, labels)
        name = f"pseudo_label_{labels}" if labels else kind
        body["cmd"] = c.cmd(f"pseudo --model {model} --seed {lp.seed} --out {out} --summary {out}.json", lp, name,
                            pinned=X.LABELS[labels])
        body["outs"] = [out, {f"{out}.json": {"cache": False}}]
    else:
        out = f"{lp.under('metrics/pseudo_quality')}/seed{lp.seed}.json"
        body["cmd"] = c.cmd(f"pseudo --model {model} --seed {lp.seed} --quality {out}", lp, kind)
        body["metrics"] = [{out: {"cache": False}}]
    return lp.wrap(body)


def _evaluate(c: _Ctx, row: X.Row) -> dict[str, Any]:
    lp = c.loop()
    spec = X.STAGES["evaluate"]
    model = c.model(row.id, lp)
    out = f"{lp.under('metrics')}/{row.id}/seed{lp.seed}.json"
    pred = f"{lp.under('predictions')}/{row.id}/seed{lp.seed}"
    args = f"evaluate --row {row.id} --seed {lp.seed} --model {model} --out {out} --predictions {pred}"
    return lp.wrap({
        "cmd": c.cmd(args, lp, row.eval_stage),
        "deps": [model, c.target(lp), *c.lists(), *c.code(spec.entry)],
        "params": _params(spec.reads),
        "outs": [pred],
        "metrics": [{out: {"cache": False}}],
    })


def _tables(c: _Ctx) -> dict[str, Any]:
    spec = X.STAGES["tables"]
    return {
        "cmd": f"{RUNNER} {c.b.tables_cmd}",
        "deps": ["metrics", *c.code(spec.entry, spec.extra_code)],
        "outs": [{"reports/latest": {"cache": False}}],
    }


def _rows(b: Benchmark) -> list[X.Row]:
    return [r for r in X.ROWS.values() if b.oracle or not r.needs_target_labels]


def stages(b: Benchmark) -> dict[str, Any]:
    """The ``stages`` mapping of ``b``'s dvc.yaml, in pipeline order."""
    c = _Ctx(b)
    out: dict[str, Any] = {}
    if b.generate:
        out["generate"] = _generate(c)
    out["translate"] = _translate(c)
    out["class_stats"] = _class_stats(c)
    rows = _rows(b)
    for row in rows:
        if not row.pseudo:
            out[row.train_stage] = _train(c, row)
    for labels in X.LABELS:
        out[f"pseudo_label_{labels}" if labels else "pseudo_label"] = _pseudo(c, "pseudo_label", labels)
    if b.quality:
        out["pseudo_quality"] = _pseudo(c, "pseudo_quality")
    for row in rows:
        if row.pseudo:
            out[row.train_stage] = _train(c, row)
    for row in rows:
        out[row.eval_stage] = _evaluate(c, row)
    out["tables"] = _tables(c)
    return out


def document(b: Benchmark) -> dict[str, Any]:
    """The whole dvc.yaml of ``b`` as data."""
    doc: dict[str, Any] = {}
    if b.cities:
        doc["vars"] = [CITIES_FILE]
    doc["stages"] = stages(b)
    return doc


def render(b: Benchmark | str) -> str:
    """The text of ``b``'s dvc.yaml: its header comment, then the YAML."""
    b = benchmark(b) if isinstance(b, str) else b
    header = "".join(f"# {line}".rstrip() + "\n" for line in b.header.strip("\n").splitlines())
    return header + yaml.safe_dump(document(b), sort_keys=False, width=120, allow_unicode=True)


def param_paths(b: Benchmark) -> set[str]:
    """Every param path (``train``, ``upst.bins``, ...) that some stage of ``b`` lists."""
    found: set[str] = set()
    for st in stages(b).values():
        body = st.get("do", st)
        found.update(p for p in body.get("params", []) if isinstance(p, str))
    return found


# ----------------------------------------------------------------------------------------------------
# the four pipelines

_GENERATED = ("Rendered by uplr/pipelines.py (`python -m uplr.pipelines`): edit that file, not this one; a test\n"
              "checks that the two agree.")

_EMBEDDED_HEADER = f"""\
The default pipeline: the embedded benchmark, end to end on the CPU.
  generate -> translate (IT) / class_stats (SR) -> train rows x seeds -> evaluate x seeds -> tables
Rows (Table 3): source_only, aa, it, sr, tgaa, upst; plus the target-supervised oracle.
`make demo` runs the source-only and oracle chain; `make ablation` (= dvc repro) runs every row.
Each stage lists exactly the params it reads and the code it runs, so a change re-runs its dependents and
nothing else. Every command goes
through `python -m uplr.runner`, which runs it on the host or, with UPLR_RUNNER=docker, in the image
named by docker/IMAGE (a dependency of every stage). Every stage run is an MLflow run.
The tables stage reads MLflow, not the stages' files; it depends on metrics/ only to run last, and writes
reports/latest/ (ignored by git): the published reports/ change only with `make tables`.
Data paths come from params.yaml (${{...}} interpolation). The real benchmarks (paper scale) are
pipelines/<benchmark>/dvc.yaml (docs/real-data.md).
{_GENERATED}
"""


_REAL_HEADER = """\
{title} at the paper's scale (docs/real-data.md; README.md here).
  dvc repro {folder}/dvc.yaml      or      make reproduce BENCHMARK={name}
Stages run in this folder and read params.yaml here; every relative path starts here.
Data: {data}, `dvc add`-ed
so that their hashes enter dvc.lock and every stage's MLflow lineage. The init weights (model.init) are
a dependency of the rows trained from them.
Rows (Table 3): source_only, aa, it, sr, tgaa, upst{rows}.
Every stage run is an MLflow run in the experiment tracking.experiment; the tables stage writes
reports/ here from MLflow.
{extra}{generated}
"""

_CROSS_CITY_EXTRA = f"""\
The cities are an axis: {CITIES_FILE} (a DVC vars file) lists them. Each stage that reads the target runs
per city and seed (a matrix, `-o data.target.city=<City>`, outputs under <kind>/<City>/); the source-only
model does not depend on the city: trained once per seed, evaluated on every city.
"""


def _real(name: str, data: str, rows: str = "; plus the oracle", extra: str = "", **kw: Any) -> Benchmark:
    info = X.BENCHMARKS[name]
    header = _REAL_HEADER.format(title=info.title, folder=info.folder, name=name, data=data, rows=rows, extra=extra,
                                 generated=_GENERATED)
    return Benchmark(name=name, header=header, init_dep=True, packaged_lists=True,
                     tables_cmd="uplr tables --out reports/latest --experiment ${tracking.experiment} --stage tables", **kw)


PIPELINES: dict[str, Benchmark] = {
    "embedded": Benchmark(name="embedded", header=_EMBEDDED_HEADER, generate=True),
    "gta5_cityscapes": _real("gta5_cityscapes", "datasets/GTA5 (source) and datasets/Cityscapes (target)"),
    "synthia_cityscapes": _real("synthia_cityscapes", "datasets/SYNTHIA (source) and datasets/Cityscapes (target)"),
    "cityscapes_nthu": _real("cityscapes_nthu", "datasets/Cityscapes (source) and datasets/NTHU (target)",
                             rows="; no oracle (NTHU train has no labels)", extra=_CROSS_CITY_EXTRA,
                             cities=True, oracle=False, quality=False),
}


def benchmark(name: str) -> Benchmark:
    try:
        return PIPELINES[name]
    except KeyError:
        raise UplrError(f"unknown benchmark {name!r}; valid benchmarks are {', '.join(PIPELINES)}") from None


# ----------------------------------------------------------------------------------------------------
# writing and checking


def dvc_yaml_path(b: Benchmark, root: Path = REPO) -> Path:
    return Path(root) / b.dvc_yaml


def stale(root: Path = REPO) -> list[Path]:
    """The dvc.yaml files under ``root`` that differ from their rendering (or are missing)."""
    return [dvc_yaml_path(b, root) for b in PIPELINES.values()
            if not dvc_yaml_path(b, root).is_file() or dvc_yaml_path(b, root).read_text() != render(b)]


def write_all(root: Path = REPO) -> list[Path]:
    """(Re)write every dvc.yaml under ``root``; returns the files whose content changed."""
    from uplr.io import write_text

    changed = []
    for b in PIPELINES.values():
        path = dvc_yaml_path(b, root)
        text = render(b)
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m uplr.pipelines", description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a dvc.yaml differs")
    ap.add_argument("--data-check", metavar="BENCHMARK",
                    help="instead: check every dataset split the benchmark's pipeline reads (exit 1 on a problem)")
    args = ap.parse_args(argv)
    from uplr.logs import setup_logging

    setup_logging(False)
    try:
        if args.data_check:
            from uplr.data.benchmark_check import data_check

            b = benchmark(args.data_check)
            return 0 if data_check(args.root / b.folder, b.cities, args.root) else 1
        if args.check:
            bad = stale(args.root)
            for p in bad:
                print(f"{p}: differs from its rendering; run `python -m uplr.pipelines`", file=sys.stderr)
            return 1 if bad else 0
        for p in write_all(args.root):
            log.info("wrote %s", p)
    except UplrError as exc:
        print(f"uplr.pipelines: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
