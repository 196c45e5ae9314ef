"""The datasets and stage artifacts a config names: what stages hand each other, read in one place.

The source, target and translated-source datasets at the config's sizes, and the class-statistics file
(the class_stats stage's output, read by the SR and TGAA rows). Stage modules import this, never each
other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uplr.config import Config, DomainConfig
from uplr.errors import UplrError
from uplr.io import atomic_path


def _split(cfg: Config, split: str) -> str:
    """A list-file split is a path relative to the params file; a packaged list name stays a name."""
    from uplr.data.datasets import is_list_path

    return str(cfg.path(split)) if is_list_path(split) else split


def dataset(cfg: Config, dom: DomainConfig, split: str | None = None, label_size: str = "image",
            root: str | None = None):
    """The dataset ``dom`` describes (its ``split`` unless given), resized to ``dom.size``."""
    from uplr.data.datasets import build_dataset

    return build_dataset(dom.dataset, cfg.path(root or dom.root), _split(cfg, split or dom.split),
                         size=dom.size, city=dom.city, strict=dom.strict, label_size=label_size)


def source_train(cfg: Config, root: str | None = None):
    return dataset(cfg, cfg.data.source, root=root)


def target_train(cfg: Config):
    return dataset(cfg, cfg.data.target)


def target_val(cfg: Config):
    """Target validation images at training size, labels at native resolution (scored there)."""
    return dataset(cfg, cfg.data.target, split=cfg.data.target.val_split, label_size="native")


def data_inputs(cfg: Config) -> list[Path]:
    return [cfg.path(cfg.data.source.root), cfg.path(cfg.data.target.root)]


# ----------------------------------------------------------------------------------------------------
# the translated source set (the translate stage's output)


def translated_root(cfg: Config) -> Path:
    """Where the training rows read the translated source set (the translate stage's output)."""
    if cfg.translate.method not in ("fda", "external"):
        raise UplrError(f"translate.method must be 'fda' or 'external', got {cfg.translate.method!r}")
    return cfg.path(cfg.translate.out)


def external_root(cfg: Config) -> Path:
    if not cfg.translate.external_root:
        raise UplrError("translate.method is 'external' but translate.external_root is empty; set it to the "
                        "folder of the translated source set (same layout and file names as the source)")
    return cfg.path(cfg.translate.external_root)


def translated_source(cfg: Config):
    """The translated source set, read with the source's loader and split list."""
    return source_train(cfg, root=str(cfg.path(cfg.translate.out)))


# ----------------------------------------------------------------------------------------------------
# per-image class pixel counts of the source set (the class_stats stage's output)


def save_counts(path: Path, counts: np.ndarray, names: list[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, counts=counts, names=np.array(names))


def load_counts(path: Path, n_expected: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UplrError(f"{path}: class statistics not found; run the class_stats stage (dvc repro class_stats)")
    counts = np.load(path)["counts"]
    if len(counts) != n_expected:
        raise UplrError(f"{path}: counts for {len(counts)} images but the source set has {n_expected}; "
                        "re-run the class_stats stage")
    return counts
