"""Every dataset split a benchmark's pipeline reads, checked before any training (``make data-check``).

Reads the benchmark's params.yaml (and, for Cross-City, its city axis) and runs ``uplr data check``'s
checker on the source split and on the target train and val splits of every city.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from uplr.errors import UplrError

CITIES_FILE = "cities.yaml"
"""Cross-City's city axis: a DVC vars file beside its dvc.yaml (``cities: [Rome, Rio, Tokyo, Taipei]``)."""


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


def data_splits(folder: Path, cities: bool) -> list[DataSplit]:
    """Every split ``b``'s stages read (source; target train and val, per city), from its params files."""
    from uplr.config import load_config
    from uplr.data.datasets import is_list_path

    folder = Path(folder)
    cfg = load_config(folder / "params.yaml")

    def split(s: str) -> str:
        return str(cfg.path(s).resolve()) if is_list_path(s) else s

    s, t = cfg.data.source, cfg.data.target
    out = [DataSplit(s.dataset, cfg.path(s.root).resolve(), split(s.split), s.city, s.strict)]
    for city in read_cities(folder) if cities else [t.city]:
        for sp in (t.split, t.val_split):
            out.append(DataSplit(t.dataset, cfg.path(t.root).resolve(), split(sp), city, t.strict))
    return list(dict.fromkeys(out))


def data_check(folder: Path, cities: bool, root: Path, full: bool = True) -> bool:
    """Run ``uplr data check`` on every split of the pipeline in ``folder``; prints each report (commands
    relative to ``root``), returns whether all are ok."""
    from uplr.data.check import check_dataset

    ok = True
    for ds in data_splits(folder, cities):
        print(f"$ {ds.command(root)}")
        if not ds.root.is_dir():
            raise UplrError(f"{ds.root}: dataset folder not found; put the {ds.dataset} dataset there and "
                            f"`dvc add` it (docs/real-data.md)")
        report = check_dataset(ds.dataset, ds.root, ds.split, city=ds.city, strict=ds.strict, full=full)
        print(report.format())
        ok = ok and report.ok
    return ok


