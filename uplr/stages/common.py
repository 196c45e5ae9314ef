"""What every stage needs: the datasets named by the config, the run's output paths, tags."""

from __future__ import annotations

from pathlib import Path

from uplr.config import Config, DomainConfig


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
