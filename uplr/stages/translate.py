"""Stage ``translate`` (IT): a target-styled copy of the source set, in the source's own layout.

``translate.method: fda`` writes FDA-translated images (uplr/method/fda.py) under ``translate.out`` with
the labels copied beside them, so the copy loads with the same loader and split list as the source.
``translate.method: external`` accepts a set translated elsewhere (e.g. BDL's CycleGAN output) at
``translate.external_root``: the stage validates it against the source list (the loader checks every
listed frame) and links (or copies) it into ``translate.out``, so the rest of the pipeline reads one
place either way; put that folder under DVC (``dvc add``) so its hash enters the lineage.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from uplr.config import Config, flatten, to_dict
from uplr.data import configured
from uplr.data.configured import external_root, translated_root
from uplr.io import atomic_dir, write_json
from uplr.track.mlflow_run import stage_run

log = logging.getLogger(__name__)


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def run(cfg: Config, stage: str = "translate", manifest: Path | None = None) -> None:
    from uplr.method.fda import translate_files

    t = cfg.translate
    src = configured.dataset(cfg, cfg.data.source, label_size="native")
    inputs = configured.data_inputs(cfg)
    tags = {"kind": "translate", "benchmark": cfg.benchmark, "method": t.method}
    with stage_run(cfg.tracking.experiment, stage, f"translate/{t.method}", inputs, tags,
                   flatten({"translate": to_dict(t)})) as mlrun:
        if t.method == "external":
            ext = configured.source_train(cfg, root=str(external_root(cfg)))  # validates every listed frame
            with atomic_dir(translated_root(cfg)) as tmp:
                for i in range(len(ext)):
                    for path in (ext.image_path(i), ext.label_path(i)):
                        _link_or_copy(path, tmp / path.relative_to(ext.root))
            info = {"method": "external", "root": str(external_root(cfg)), "n_images": len(ext)}
        else:
            trg = configured.dataset(cfg, cfg.data.target, label_size="native")
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
                style = translate_files(srcs, [trg.image_path(j) for j in range(len(trg))], outs, t.beta, t.seed,
                                        window=t.window)
                for extra in ("all.txt",):
                    if (src.root / extra).is_file():
                        shutil.copyfile(src.root / extra, tmp / extra)
            info = {"method": "fda", "beta": t.beta, "window": t.window, "seed": t.seed, "n_images": len(src),
                    "style_image": {str(src.names[i]) if hasattr(src, "names") else str(i): trg.names[int(s)]
                                    for i, s in enumerate(style)}}
        if manifest is not None:
            write_json(manifest, info)
            mlrun.log_artifact(manifest)
    log.info("translated source set: %s (%d images)", translated_root(cfg), info["n_images"])
