"""The ``uplr`` command line: one subcommand per pipeline stage plus tools.

Every user-fixable failure is a :class:`~uplr.errors.UplrError`: printed as one line naming the file or
parameter and the fix, exit status 2, no traceback (``--verbose`` shows it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from uplr.errors import UplrError

log = logging.getLogger("uplr")


def _common(p: argparse.ArgumentParser, params: bool = True) -> None:
    if params:
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                       help="override a parameter, e.g. -o train.iterations=10 (repeatable; strict)")
    p.add_argument("--stage", default=None, help="the DVC stage name, recorded as a lineage tag")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log debug messages, and show the traceback of an error")


def _rows() -> tuple[str, ...]:
    from uplr.experiments import ROWS

    return tuple(ROWS)


def _config(args):
    from uplr.config import load_config

    return load_config(args.params, args.override)


def cmd_generate(args) -> int:
    from uplr.stages import generate

    generate.run(_config(args), args.stage or "generate")
    return 0


def cmd_data_check(args) -> int:
    from uplr.data.check import check_dataset

    report = check_dataset(args.dataset, Path(args.root), args.split, city=args.city, strict=args.strict,
                           full=not args.quick)
    print(report.format())
    return report.exit_status


def cmd_train(args) -> int:
    import importlib

    from uplr import experiments

    row = experiments.row(args.row)
    cfg = _config(args)
    extra = {k: Path(v) for k, v in (("class_stats", args.class_stats), ("pseudo", args.pseudo),
                                     ("init_model", args.init_model)) if v}
    needs = [k for k, used in (("class_stats", row.uses_class_stats), ("pseudo", row.pseudo),
                               ("init_model", row.init_from)) if used]
    missing = [k for k in needs if k not in extra]
    if missing:
        raise UplrError(f"row {args.row!r} needs " + ", ".join(f"--{m.replace('_', '-')}" for m in missing))
    # the row's entry module (the grid names it; its code is the stage's code dependency in dvc.yaml)
    importlib.import_module(row.entry).run(cfg, args.row, args.seed, Path(args.out),
                                           Path(args.resume_dir) if args.resume_dir else None,
                                           args.stage or row.train_stage, extra)
    return 0


def cmd_translate(args) -> int:
    from uplr.stages import translate

    translate.run(_config(args), args.stage or "translate", Path(args.manifest) if args.manifest else None)
    return 0


def cmd_class_stats(args) -> int:
    from uplr.stages import class_stats

    class_stats.run(_config(args), Path(args.out), args.stage or "class_stats")
    return 0


def cmd_pseudo(args) -> int:
    from uplr.stages import pseudo

    cfg = _config(args)
    if args.quality:
        pseudo.run_quality(cfg, Path(args.model), Path(args.quality), args.seed, args.stage or "pseudo_quality")
    else:
        if not args.out:
            raise UplrError("uplr pseudo needs --out (the pseudo-label folder) or --quality FILE")
        pseudo.run_pseudo(cfg, Path(args.model), Path(args.out), args.seed, args.stage or "pseudo_label",
                          Path(args.summary) if args.summary else None)
    return 0


def cmd_evaluate(args) -> int:
    if args.pred_dir or args.gt_dir:
        if not (args.pred_dir and args.gt_dir):
            raise UplrError("scoring a folder needs both --pred-dir and --gt-dir")
        from uplr.evaluate.folder import evaluate_folder, write_result

        result = evaluate_folder(Path(args.pred_dir), Path(args.gt_dir))
        if args.out:
            write_result(result, Path(args.out))
        _print_scores(result)
        return 0
    if not (args.model and args.out and args.row):
        raise UplrError("evaluating a model needs --model, --row and --out (or use --pred-dir/--gt-dir)")
    from uplr.stages import evaluate

    result = evaluate.run(_config(args), Path(args.model), args.row, args.seed, Path(args.out),
                          args.stage or f"evaluate_{args.row}",
                          predictions=Path(args.predictions) if args.predictions else None)
    _print_scores(result)
    return 0


def _print_scores(result: dict) -> None:
    width = max(len(k) for k in result["iou"])
    for name, v in result["iou"].items():
        print(f"  {name:<{width}}  {'n/a' if v is None else f'{100 * v:5.1f}'}")
    for name, v in result["miou"].items():
        print(f"  mIoU[{name}]  {'n/a' if v is None else f'{100 * v:5.2f}'}")


def cmd_tables(args) -> int:
    from uplr.report import tables

    if not args.stage:  # `make tables`: a plain rebuild
        tables.run(Path(args.out), experiments=args.experiment or None)
        return 0
    from uplr.track.mlflow_run import stage_run

    # as a DVC stage it is an MLflow run too (experiment uplr-reports), with the reports as artifacts
    with stage_run("uplr-reports", args.stage, "tables", [], {"kind": "tables"}) as mlrun:
        tables.run(Path(args.out), experiments=args.experiment or None)
        mlrun.log_artifact(Path(args.out), "reports")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="uplr",
        description="Reproduction suite for UPLR (ICCV 2021): one subcommand per DVC pipeline stage, plus "
        "tools to check datasets and score saved predictions. `uplr COMMAND --help` describes each one.",
    )
    from uplr import __version__

    ap.add_argument("--version", action="version", version=f"uplr {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write the embedded benchmark (DVC stage generate)",
                       description="Write the embedded benchmark (source in GTA5's layout, target in "
                       "Cityscapes' layout) to the folder params.yaml names, with a preview and class "
                       "frequencies. DVC stage generate.")
    _common(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("data", help="dataset tools", description="Dataset tools.")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="TOOL")
    c = dsub.add_parser("check", help="validate a dataset root against its split list",
                        description="Check every frame of a split list under a dataset root: missing "
                        "files, image/label size mismatch and (unless --quick) corrupt files and label values "
                        "outside the dataset's encoding. Exit status 1 when it finds a problem.")
    c.add_argument("dataset", choices=["gta5", "synthia", "cityscapes", "nthu"], help="which dataset's layout")
    c.add_argument("--root", required=True, help="the dataset's root folder")
    c.add_argument("--split", default=None, help="list name or list file (default: the dataset's main list)")
    c.add_argument("--city", default="", help="NTHU only: Rome, Rio, Tokyo or Taipei")
    c.add_argument("--strict", action="store_true", help="known-unusable GTA5 frames are errors, not skips "
                   "(exit status: 0 all usable, 1 problems, 3 only GTA5 frames skipped)")
    c.add_argument("--quick", action="store_true", help="read file headers only, do not decode pixels")
    _common(c, params=False)
    c.set_defaults(func=cmd_data_check)

    p = sub.add_parser("train", help="train one row (configuration) for one seed (DVC stage train_*)",
                       description="Train one row of the ablation (a method configuration) for one seed, "
                       "resuming from --resume-dir when it holds a checkpoint of the same inputs. Logs the "
                       "run to MLflow. DVC stages train_*.")
    p.add_argument("--row", required=True, choices=list(_rows()), help="the row of the experiment grid to train")
    p.add_argument("--seed", type=int, default=0, help="random seed of the run (default: 0)")
    p.add_argument("--out", required=True, help="folder for model.pt and train_log.csv")
    p.add_argument("--resume-dir", default=None, help="folder for the resumable checkpoint")
    p.add_argument("--class-stats", help="rows that resample (sr, tgaa, upst, ...): the class_stats stage's counts file")
    p.add_argument("--pseudo", help="upst rows: the pseudo-label folder")
    p.add_argument("--init-model", help="rows that continue another (tgaa, upst, controls): the parent's model.pt")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("translate", help="IT: write the target-styled copy of the source set (FDA) or check an external one",
                       description="Image translation (IT): write the target-styled copy of the source set "
                       "with FDA, or check an external translated copy, as params.yaml says. DVC stage "
                       "translate.")
    p.add_argument("--manifest", help="JSON written beside it: method, size, style image per source image")
    _common(p)
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("class-stats", help="SR/TGAA: per-image class pixel counts of the source set",
                       description="Count the pixels of every class in every source image (used by the "
                       "SR and TGAA samplers). DVC stage class_stats.")
    p.add_argument("--out", required=True, help="the .npz file to write")
    _common(p)
    p.set_defaults(func=cmd_class_stats)

    p = sub.add_parser("pseudo", help="UPST: write pseudo labels for the target train split, or a quality report",
                       description="UPST: label the target train split with a model, keeping the pixels the "
                       "uncertainty-aware selection trusts (255 elsewhere); or, with --quality, score every "
                       "selection method against the target labels. DVC stages pseudo_label, pseudo_quality.")
    p.add_argument("--model", required=True, help="the model that labels the target (model.pt)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the model's training run (a tag of the MLflow run; default: 0)")
    p.add_argument("--out", help="pseudo-label folder to write (uint8 PNGs, 255 = ignore)")
    p.add_argument("--summary", help="JSON summary of the pass (kept pixels, fitted GMMs)")
    p.add_argument("--quality", help="instead: write the precision/coverage report of every method to this JSON")
    _common(p)
    p.set_defaults(func=cmd_pseudo)

    p = sub.add_parser("evaluate", help="score a model on the target val split, or a folder of predictions",
                       description="Score a model on the target val split (per-class IoU, mIoU over 19/16/13 "
                       "classes; DVC stages evaluate_*), or, with --pred-dir and --gt-dir, score a folder of "
                       "saved trainId PNGs against Cityscapes gtFine labels like the official script.")
    p.add_argument("--model", help="model.pt written by `uplr train`")
    p.add_argument("--row", choices=list(_rows()), help="the row the model belongs to (a tag for the tables)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the model's training run (a tag of the MLflow run; default: 0)")
    p.add_argument("--out", help="where to write the per-class IoU JSON")
    p.add_argument("--predictions", help="folder to write trainId PNG predictions to")
    p.add_argument("--pred-dir", help="score this folder of trainId PNG predictions ...")
    p.add_argument("--gt-dir", help="... against this Cityscapes gtFine folder (*_gtFine_labelIds.png)")
    _common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tables", help="rebuild reports/ (Markdown, CSV, LaTeX, PNG) from MLflow",
                       description="Rebuild the paper's tables (Markdown, CSV, LaTeX, PNG) from the "
                       "evaluation runs in MLflow, with the paper's numbers beside ours.")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--experiment", action="append", help="MLflow experiment(s) to read (default: all uplr-*)")
    _common(p, params=False)
    p.set_defaults(func=cmd_tables)

    # -- cost: an estimate of the GPU-hours of the paper's schedule (uplr/report/cost.py) --
    p = sub.add_parser("cost", help="ESTIMATE the H100 GPU-hours of a real benchmark's schedule (needs a SMOKE=1 run)")
    p.add_argument("benchmark", help="gta5_cityscapes | synthia_cityscapes | cityscapes_nthu")
    p.add_argument("--measured", default=None, help="smoke summary JSON (default pipelines/<benchmark>/smoke.json)")
    _common(p, params=False)

    def cmd_cost(args) -> int:
        from uplr.report.cost import cost_report

        print(cost_report(Path.cwd(), args.benchmark, Path(args.measured) if args.measured else None))
        return 0

    p.set_defaults(func=cmd_cost)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before the heavy imports: --version and --help need none
    from uplr.logs import setup_logging

    setup_logging(getattr(args, "verbose", False))
    try:
        return args.func(args)
    except UplrError as exc:
        if getattr(args, "verbose", False):
            log.exception("failed")
        print(f"uplr: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write outside uplr.io (e.g. a library's) to a full disk or read-only folder
        from uplr.io import is_write_error, write_error

        if not is_write_error(exc):
            raise
        if getattr(args, "verbose", False):
            log.exception("failed")
        print(f"uplr: error: {write_error(exc, exc.filename or 'an output')}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
