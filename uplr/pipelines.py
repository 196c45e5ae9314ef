"""One definition of the experiment grid, rendered into every ``dvc.yaml`` of the repository.

The embedded benchmark (``dvc.yaml`` at the root) and the three real benchmarks
(``pipelines/<benchmark>/dvc.yaml``) run the same stages: translate (IT) and class statistics (SR),
the training rows of Table 3 per seed, pseudo labels (UPST), one evaluation per trained model, the
tables. What differs is data: where the datasets are (the embedded one is generated, real ones are
``dvc add``-ed folders under ``datasets/``), whether the target train split has labels (oracle row,
pseudo-label quality), whether init weights are a file, and Cross-City's city axis (a DVC ``matrix``
of city x seed; the source-only model does not depend on the city and is trained once per seed).

Writing the four files from this module keeps them from drifting apart: ``python -m uplr.pipelines``
rewrites them, ``python -m uplr.pipelines --check`` fails when a committed file differs from its
rendering (tests/test_pipelines.py does the same).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from uplr.errors import UplrError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
PIPELINES_DIR = "pipelines"
CITIES_FILE = "cities.yaml"
"""Cross-City's city axis: a DVC vars file beside its dvc.yaml (``cities: [Rome, Rio, Tokyo, Taipei]``).

It is not in params.yaml because the typed config (uplr/config.py) has no ``cities`` key; each stage
gets its city on the command line (``-o data.target.city=<City>``)."""

TRAIN_ROWS = ("source_only", "oracle", "aa", "it", "sr", "tgaa")  # trained before pseudo labelling
EVAL_ROWS = ("source_only", "oracle", "aa", "it", "sr", "tgaa", "upst")
RUNNER = "python -m uplr.runner --"


@dataclass(frozen=True)
class Benchmark:
    """What one pipeline's dvc.yaml depends on; every path is relative to the dvc.yaml's folder."""

    name: str  # the ``benchmark`` tag in params.yaml and MLflow
    folder: str  # the dvc.yaml's folder, relative to the repository root
    header: str  # the comment on top of the file
    source: str  # source dataset folder (a DVC dep)
    target: str  # target dataset folder (a DVC dep; may hold ``{city}``)
    data_all: tuple[str, ...]  # deps that cover source and target together
    generate: bool = False  # the data come from the ``generate`` stage (embedded benchmark)
    init_dep: bool = False  # model.init is a weights file: a dep of the rows trained from it
    oracle: bool = True  # the target train split has labels: oracle row
    quality: bool = True  # ... and a pseudo-label quality report
    cities: bool = False  # Cross-City: stages that read the target repeat over the cities
    tables_cmd: str = "uplr tables --out reports --stage tables"

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


class _Ctx:
    """Paths and command pieces of one benchmark's stages."""

    def __init__(self, b: Benchmark):
        self.b = b

    def loop(self, city_dependent: bool = True) -> Loop:
        """The loop of a per-seed stage: per city and seed on Cross-City when it reads the target."""
        return PER_CITY_SEED if (self.b.cities and city_dependent) else PER_SEED

    def target(self, lp: Loop) -> str:
        return self.b.target.format(city=lp.city) if "{city}" in self.b.target else self.b.target

    def translated(self, lp: Loop) -> str:
        return f"{lp.under('data/translated')}/source"

    def manifest(self, lp: Loop) -> str:
        return f"{lp.under('data/translated')}/manifest.json"

    def run_dir(self, row: str, lp: Loop) -> str:
        return f"{lp.under('runs')}/{row}/seed{lp.seed}"

    def model(self, row: str, lp: Loop) -> str:
        # the source-only model does not depend on the target city: trained once per seed
        if row == "source_only" and self.b.cities:
            return f"runs/source_only/seed{lp.seed}/model.pt"
        return f"{self.run_dir(row, lp)}/model.pt"

    def pseudo(self, lp: Loop) -> str:
        return f"{lp.under('pseudo')}/upst/seed{lp.seed}/round1"

    def overrides(self, lp: Loop, translated: bool = False) -> str:
        """Command-line overrides of a per-city stage: its city and, where IT data is used, its folder."""
        if not lp.city:
            return ""
        out = f" -o data.target.city={lp.city}"
        if translated:
            out += f" -o translate.out={self.translated(lp)}"
        return out

    def cmd(self, args: str, lp: Loop, stage: str, translated: bool = False) -> str:
        return f"{RUNNER} uplr {args}{self.overrides(lp, translated)} --stage {lp.name(stage)}"

    def image(self) -> str:
        return self.code("docker/IMAGE")

    def code(self, path: str) -> str:
        return self.b.code(path)


# ----------------------------------------------------------------------------------------------------
# the stages


def _generate(c: _Ctx) -> dict[str, Any]:
    return {
        "cmd": f"{RUNNER} uplr generate --stage generate",
        "deps": [c.code("uplr/data/synthetic.py"), c.code("uplr/data/_scenes.py"), c.image()],
        "params": ["generate", "tracking"],
        "outs": ["data/embedded"],
    }


def _translate(c: _Ctx) -> dict[str, Any]:
    lp = PER_CITY if c.b.cities else ONCE
    data = [c.b.source, c.target(lp)] if c.b.cities else list(c.b.data_all)
    return lp.wrap({
        "cmd": c.cmd(f"translate --manifest {c.manifest(lp)}", lp, "translate", translated=True),
        "deps": [*data, c.code("uplr/method/fda.py"), c.code("uplr/stages/translate.py"), c.image()],
        "params": ["data.source", "data.target", "translate", "tracking"],
        "outs": [c.translated(lp), {c.manifest(lp): {"cache": False}}],
    })


def _class_stats(c: _Ctx) -> dict[str, Any]:
    return {
        "cmd": f"{RUNNER} uplr class-stats --out stats/source_class_counts.npz --stage class_stats",
        "deps": [c.b.source, c.code("uplr/method/resampling.py"), c.code("uplr/stages/class_stats.py"), c.image()],
        "params": ["data.source", "model.num_classes", "tracking"],
        "outs": ["stats/source_class_counts.npz"],
    }


_TRAIN_CODE = ("uplr/train", "uplr/model", "uplr/data", "uplr/stages/train.py")
# what each row reads beyond its data (the DVC params; uplr/stages/train.py logs the same sections)
_TRAIN_PARAMS = {
    "source_only": ["data.source", "data.num_workers", "model", "train", "tracking"],
    "oracle": ["data.target", "data.num_workers", "model", "train", "tracking"],
    "aa": ["data.source", "data.num_workers", "model", "train", "tracking", "adversarial", "data.target"],
    "it": ["data.source", "translate", "data.num_workers", "model", "train", "tracking", "adversarial", "data.target"],
    "sr": ["data.source", "translate", "resample", "data.num_workers", "model", "train", "tracking", "adversarial",
           "data.target"],
    "tgaa": ["data.source", "translate", "resample", "tgaa", "evaluate.batch_size", "data.num_workers", "model",
             "train", "tracking", "adversarial", "data.target"],
    "upst": ["data.source", "data.target", "translate", "upst", "data.num_workers", "model", "train", "tracking"],
}


def _train(c: _Ctx, row: str) -> dict[str, Any]:
    lp = c.loop(city_dependent=row != "source_only")
    run = c.run_dir(row, lp)
    args = f"train --row {row} --seed {lp.seed} --out {run} --resume-dir {run}/resume"
    data: list[str]
    translated = row in ("it", "sr", "tgaa", "upst")
    if row == "source_only":
        data = [c.b.source]
    elif row == "oracle":
        data = [c.target(lp)]
    elif row == "aa":
        data = [c.b.source, c.target(lp)] if c.b.cities else list(c.b.data_all)
    else:
        data = [c.translated(lp), c.target(lp)]
    if row in ("sr", "tgaa"):
        args += " --class-stats stats/source_class_counts.npz"
        data.append("stats/source_class_counts.npz")
    if row == "tgaa":
        args += f" --rank-model {c.model('sr', lp)}"
        data.append(c.model("sr", lp))
    if row == "upst":
        args += f" --pseudo {c.pseudo(lp)} --init-model {c.model('tgaa', lp)}"
        data += [c.pseudo(lp), c.model("tgaa", lp)]
    if c.b.init_dep and row != "upst":  # upst starts from the tgaa model, the others from model.init
        data.append("${model.init}")
    outs: list[Any] = [f"{run}/model.pt", {f"{run}/resume": {"cache": False, "persist": True}}]
    if row == "tgaa":
        outs.append({f"{run}/tgaa_stages.json": {"cache": False}})
    if row == "upst":  # rounds 2..R: their pseudo labels, one folder per round (empty for one round)
        outs.append(f"{run}/later_rounds")
    return lp.wrap({
        "cmd": c.cmd(args, lp, f"train_{row}", translated),
        "deps": [*data, *(c.code(p) for p in _TRAIN_CODE), c.image()],
        "params": _TRAIN_PARAMS[row],
        "outs": outs,
        "plots": [{f"{run}/train_log.csv": {"x": "step", "y": "loss_seg", "cache": False}}],
    })


_PSEUDO_CODE = ("uplr/method/pseudo.py", "uplr/method/gmm.py", "uplr/stages/pseudo.py")
_INFER_PARAMS = ["evaluate.batch_size", "train.device", "train.amp", "tracking"]


def _pseudo_label(c: _Ctx) -> dict[str, Any]:
    lp = c.loop()
    tgaa, out = c.model("tgaa", lp), c.pseudo(lp)
    return lp.wrap({
        "cmd": c.cmd(f"pseudo --model {tgaa} --seed {lp.seed} --out {out} --summary {out}.json", lp, "pseudo_label"),
        "deps": [tgaa, c.target(lp), *(c.code(p) for p in _PSEUDO_CODE), c.image()],
        "params": ["data.target", "model", "upst.method", "upst.bins", "upst.threshold", "upst.bdl_cap",
                   "upst.cbst_portion", "upst.save_confidence", *_INFER_PARAMS],
        "outs": [out, {f"{out}.json": {"cache": False}}],
    })


def _pseudo_quality(c: _Ctx) -> dict[str, Any]:
    lp = c.loop()
    tgaa, out = c.model("tgaa", lp), f"{lp.under('metrics/pseudo_quality')}/seed{lp.seed}.json"
    return lp.wrap({
        "cmd": c.cmd(f"pseudo --model {tgaa} --seed {lp.seed} --quality {out}", lp, "pseudo_quality"),
        "deps": [tgaa, c.target(lp), *(c.code(p) for p in _PSEUDO_CODE), c.image()],
        "params": ["data.target", "model", "upst", *_INFER_PARAMS],
        "metrics": [{out: {"cache": False}}],
    })


def _evaluate(c: _Ctx, row: str) -> dict[str, Any]:
    lp = c.loop()
    model = c.model(row, lp)
    out, pred = f"{lp.under('metrics')}/{row}/seed{lp.seed}.json", f"{lp.under('predictions')}/{row}/seed{lp.seed}"
    args = f"evaluate --row {row} --seed {lp.seed} --model {model} --out {out} --predictions {pred}"
    return lp.wrap({
        "cmd": c.cmd(args, lp, f"evaluate_{row}"),
        "deps": [model, c.target(lp), c.code("uplr/evaluate"), c.code("uplr/stages/evaluate.py"), c.image()],
        "params": ["data.target", "model", "evaluate", "train.device", "train.amp", "tracking"],
        "outs": [pred],
        "metrics": [{out: {"cache": False}}],
    })


def _tables(c: _Ctx) -> dict[str, Any]:
    return {
        "cmd": f"{RUNNER} {c.b.tables_cmd}",
        "deps": ["metrics", c.code("uplr/report")],
        "outs": [{"reports": {"cache": False}}],
    }


def stages(b: Benchmark) -> dict[str, Any]:
    """The ``stages`` mapping of ``b``'s dvc.yaml, in pipeline order."""
    c = _Ctx(b)
    out: dict[str, Any] = {}
    if b.generate:
        out["generate"] = _generate(c)
    out["translate"] = _translate(c)
    out["class_stats"] = _class_stats(c)
    for row in TRAIN_ROWS:
        if row != "oracle" or b.oracle:
            out[f"train_{row}"] = _train(c, row)
    out["pseudo_label"] = _pseudo_label(c)
    if b.quality:
        out["pseudo_quality"] = _pseudo_quality(c)
    out["train_upst"] = _train(c, "upst")
    for row in EVAL_ROWS:
        if row != "oracle" or b.oracle:
            out[f"evaluate_{row}"] = _evaluate(c, row)
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


# ----------------------------------------------------------------------------------------------------
# the four pipelines

_GENERATED = ("Rendered by uplr/pipelines.py (`python -m uplr.pipelines`): edit that file, not this one; a test\n"
              "checks that the two agree.")

_EMBEDDED_HEADER = f"""\
The default pipeline: the embedded benchmark, end to end on the CPU.
  generate -> translate (IT) / class_stats (SR) -> train rows x seeds -> evaluate x seeds -> tables
Rows (Table 3): source_only, aa, it, sr, tgaa, upst; plus the target-supervised oracle.
`make demo` runs the source-only and oracle chain; `make ablation` (= dvc repro) runs every row.
Each stage lists only the params it reads, so a change re-runs only its dependents. Every command goes
through `python -m uplr.runner`, which runs it on the host or, with UPLR_RUNNER=docker, in the image
named by docker/IMAGE (a dependency of every stage). Every stage run is an MLflow run.
The tables stage reads MLflow, not the stages' files; it depends on metrics/ only to run last.
The real benchmarks (paper scale) are pipelines/<benchmark>/dvc.yaml (docs/real-data.md).
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


def _real(name: str, title: str, source: str, target: str, data: str, rows: str = "; plus the oracle",
          extra: str = "", **kw: Any) -> Benchmark:
    folder = f"{PIPELINES_DIR}/{name}"
    header = _REAL_HEADER.format(title=title, folder=folder, name=name, data=data, rows=rows, extra=extra,
                                 generated=_GENERATED)
    src, tgt = f"../../datasets/{source}", f"../../datasets/{target}"
    return Benchmark(name=name, folder=folder, header=header, source=src,
                     target=f"{tgt}/{{city}}" if kw.get("cities") else tgt, data_all=(src, tgt), init_dep=True,
                     tables_cmd="uplr tables --out reports --experiment ${tracking.experiment} --stage tables", **kw)


BENCHMARKS: dict[str, Benchmark] = {
    "embedded": Benchmark(name="embedded", folder=".", header=_EMBEDDED_HEADER, source="data/embedded/source",
                          target="data/embedded/target", data_all=("data/embedded",), generate=True),
    "gta5_cityscapes": _real("gta5_cityscapes", "GTA5 -> Cityscapes", "GTA5", "Cityscapes",
                             "datasets/GTA5 (source) and datasets/Cityscapes (target)"),
    "synthia_cityscapes": _real("synthia_cityscapes", "SYNTHIA-RAND-CITYSCAPES -> Cityscapes", "SYNTHIA",
                                "Cityscapes", "datasets/SYNTHIA (source) and datasets/Cityscapes (target)"),
    "cityscapes_nthu": _real("cityscapes_nthu", "Cityscapes -> NTHU Cross-City", "Cityscapes", "NTHU",
                             "datasets/Cityscapes (source) and datasets/NTHU (target)",
                             rows="; no oracle (NTHU train has no labels)", extra=_CROSS_CITY_EXTRA,
                             cities=True, oracle=False, quality=False),
}
REAL = tuple(k for k in BENCHMARKS if k != "embedded")


def benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UplrError(f"unknown benchmark {name!r}; valid benchmarks are {', '.join(BENCHMARKS)}") from None


def param_paths(b: Benchmark) -> set[str]:
    """Every param path (``train``, ``upst.bins``, ...) that some stage of ``b`` lists."""
    found: set[str] = set()
    for st in stages(b).values():
        body = st.get("do", st)
        found.update(p for p in body.get("params", []) if isinstance(p, str))
    return found


# ----------------------------------------------------------------------------------------------------
# writing and checking


def dvc_yaml_path(b: Benchmark, root: Path = REPO) -> Path:
    return Path(root) / b.dvc_yaml


def stale(root: Path = REPO) -> list[Path]:
    """The dvc.yaml files under ``root`` that differ from their rendering (or are missing)."""
    out = []
    for b in BENCHMARKS.values():
        path = dvc_yaml_path(b, root)
        if not path.is_file() or path.read_text() != render(b):
            out.append(path)
    return out


def _write(path: Path, text: str) -> None:
    """Atomic write that keeps the file's mode (a new file gets 0666 minus the umask, like an editor's)."""
    import os

    from uplr.io import atomic_path

    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with atomic_path(path) as tmp:
        tmp.write_text(text)
        tmp.chmod(mode)


def write_all(root: Path = REPO) -> list[Path]:
    """(Re)write every dvc.yaml under ``root``; returns the files whose content changed."""
    changed = []
    for b in BENCHMARKS.values():
        path = dvc_yaml_path(b, root)
        text = render(b)
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write(path, text)
            changed.append(path)
    return changed


def read_cities(folder: Path) -> list[str]:
    """The city axis of a Cross-City pipeline folder (its ``cities.yaml``)."""
    path = Path(folder) / CITIES_FILE
    try:
        cities = (yaml.safe_load(path.read_text()) or {}).get("cities")
    except (OSError, yaml.YAMLError) as exc:
        raise UplrError(f"{path}: cannot read the city axis ({exc}); restore it from git") from exc
    if not isinstance(cities, list) or not cities or not all(isinstance(c, str) for c in cities):
        raise UplrError(f"{path}: `cities` must be a non-empty list of NTHU city names, e.g. [Rome, Rio]")
    return cities


@dataclass(frozen=True)
class DataSplit:
    """One dataset split a pipeline reads (what ``uplr data check`` validates)."""

    dataset: str
    root: Path
    split: str
    city: str = ""
    strict: bool = False

    def command(self, cwd: Path) -> str:
        """The equivalent ``uplr data check`` command line, run from ``cwd``."""
        def rel(p: str | Path) -> str:
            try:
                return str(Path(p).resolve().relative_to(Path(cwd).resolve()))
            except ValueError:
                return str(p)

        from uplr.data.datasets import is_list_path

        split = rel(self.split) if is_list_path(self.split) else self.split
        return " ".join(["uplr data check", self.dataset, "--root", rel(self.root), "--split", split,
                         *(["--city", self.city] if self.city else []), *(["--strict"] if self.strict else [])])


def data_splits(b: Benchmark, root: Path = REPO) -> list[DataSplit]:
    """Every split ``b``'s stages read (source; target train and val, per city), from its params files."""
    from uplr.config import load_config
    from uplr.data.datasets import is_list_path

    folder = Path(root) / b.folder
    cfg = load_config(folder / "params.yaml")

    def split(s: str) -> str:
        return str(cfg.path(s).resolve()) if is_list_path(s) else s

    s, t = cfg.data.source, cfg.data.target
    out = [DataSplit(s.dataset, cfg.path(s.root).resolve(), split(s.split), s.city, s.strict)]
    for city in read_cities(folder) if b.cities else [t.city]:
        for sp in (t.split, t.val_split):
            out.append(DataSplit(t.dataset, cfg.path(t.root).resolve(), split(sp), city, t.strict))
    return list(dict.fromkeys(out))


def data_check(b: Benchmark, root: Path = REPO, full: bool = True) -> bool:
    """Run ``uplr data check`` on every split of ``b``; prints each report, returns whether all are ok."""
    from uplr.data.check import check_dataset

    ok = True
    for ds in data_splits(b, root):
        print(f"$ {ds.command(root)}")
        if not ds.root.is_dir():
            raise UplrError(f"{ds.root}: dataset folder not found; put the {ds.dataset} dataset there and "
                            f"`dvc add` it (docs/real-data.md)")
        report = check_dataset(ds.dataset, ds.root, ds.split, city=ds.city, strict=ds.strict, full=full)
        print(report.format())
        ok = ok and report.ok
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m uplr.pipelines", description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=REPO, help=f"repository root (default: {REPO})")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a dvc.yaml differs")
    ap.add_argument("--data-check", metavar="BENCHMARK",
                    help="instead: check every dataset split the benchmark's pipeline reads (exit 1 on a problem)")
    args = ap.parse_args(argv)
    from uplr.runtime import setup_logging

    setup_logging(False)
    try:
        if args.data_check:
            return 0 if data_check(benchmark(args.data_check), args.root) else 1
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
