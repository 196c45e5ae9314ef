"""Stage ``translate`` (IT): a target-styled copy of the source set, in the source's own layout.

``translate.method: fda`` writes FDA-translated images (uplr/method/fda.py) under ``translate.out`` with
the labels copied beside them, so the copy loads with the same loader and split list as the source.
``translate.method: external`` accepts a set translated elsewhere (e.g. BDL's CycleGAN output) at
``translate.external_root``: the stage validates it against the source list and records its size; put
that folder under DVC (``dvc add``) so its hash enters the lineage.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from uplr.config import Config, flatten, to_dict
from uplr.errors import UplrError
from uplr.io import atomic_dir, write_json
from uplr.stages import common
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def translated_root(cfg: Config) -> Path:
    t = cfg.translate
    if t.method == "fda":
        return cfg.path(t.out)
    if t.method == "external":
        if not t.external_root:
            raise UplrError("translate.method is 'external' but translate.external_root is empty; set it to the "
                            "folder of the translated source set (same layout as the source)")
        return cfg.path(t.external_root)
    raise UplrError(f"translate.method must be 'fda' or 'external', got {t.method!r}")


def translated_source(cfg: Config):
    """The translated source set, read with the source's loader and split list."""
    return common.source_train(cfg, root=str(translated_root(cfg)))


def run(cfg: Config, stage: str = "translate", manifest: Path | None = None) -> None:
    from uplr.method.fda import translate_files

    t = cfg.translate
    src = common.dataset(cfg, cfg.data.source, label_size="native")
    inputs = common.data_inputs(cfg)
    tags = {"kind": "translate", "benchmark": cfg.benchmark, "method": t.method}
    with stage_run(cfg.tracking.experiment, stage, f"translate/{t.method}", inputs, tags,
                   flatten({"translate": to_dict(t)})) as mlrun:
        if t.method == "external":
            ext = translated_source(cfg)  # the loader validates every listed frame
            info = {"method": "external", "root": str(translated_root(cfg)), "n_images": len(ext)}
        else:
            trg = common.dataset(cfg, cfg.data.target, label_size="native")
            out = translated_root(cfg)
            with atomic_dir(out) as tmp:
                outs, srcs = [], []
                for i in range(len(src)):
                    rel_img = src.image_path(i).relative_to(src.root)
                    rel_lbl = src.label_path(i).relative_to(src.root)
                    (tmp / rel_lbl).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src.label_path(i), tmp / rel_lbl)
                    srcs.append(src.image_path(i))
                    outs.append(tmp / rel_img)
                style = translate_files(srcs, [trg.image_path(j) for j in range(len(trg))], outs, t.beta, t.seed)
                for extra in ("all.txt",):
                    if (src.root / extra).is_file():
                        shutil.copyfile(src.root / extra, tmp / extra)
            info = {"method": "fda", "beta": t.beta, "seed": t.seed, "n_images": len(src),
                    "style_image": {str(src.names[i]) if hasattr(src, "names") else str(i): trg.names[int(s)]
                                    for i, s in enumerate(style)}}
        if manifest is not None:
            write_json(manifest, info)
            mlrun.log_artifact(manifest)
    log.info("translated source set: %s (%d images)", translated_root(cfg), info["n_images"])
