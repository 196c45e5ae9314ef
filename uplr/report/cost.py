"""``uplr cost BENCHMARK``: an ESTIMATE of the GPU-hours the paper's schedule needs on an H100.

Inputs:

* the FLOPs of one training iteration of each row, measured on the CPU by torch's FLOP counter in the
  smoke run (``make reproduce BENCHMARK=... SMOKE=1`` writes ``pipelines/<benchmark>/smoke.json``; see
  :mod:`uplr.train.cost`), and the forward FLOPs of one target image (inference passes);
* the schedule: the training stages of ``pipelines/<benchmark>/dvc.yaml`` (one per seed, per city for
  Cross-City's matrix stages) and their iterations from its params.yaml (``train.iterations``;
  ``tgaa.iterations`` for TGAA continuing the +SR model; ``upst.iterations`` x ``upst.rounds`` for UPST);
  the inference passes (evaluations, TGAA's per-stage
  ranking and evaluation, pseudo labels) over the packaged official lists' image counts;
* an assumed device: one H100 at :data:`H100_BF16_DENSE` FLOP/s (bf16 dense tensor-core peak, NVIDIA's
  datasheet figure for the SXM part) at a stated utilisation (:data:`UTILISATIONS`).

GPU-hours = iterations x FLOPs per iteration / (peak x utilisation) / 3600. Nothing here ran on a GPU:
the utilisation is an assumption, and the figure ignores data loading, checkpointing and evaluation
overheads beyond their FLOPs. The peers' figure (:data:`PEER_REPORTS`) is what they report, not verified.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from uplr.errors import UplrError

H100_BF16_DENSE = 990e12
"""FLOP/s: H100 SXM bf16 dense tensor-core peak (~989.5 TFLOP/s, NVIDIA datasheet; not measured by us)."""
UTILISATIONS = (0.35, 0.50)
PEER_REPORTS = (
    "ProDA (Zhang et al., CVPR 2021): about 36 h per training stage on 4 V100 GPUs (~144 V100-hours per "
    "stage), as the peers report it (ProDA's paper/README, quoted in issue 13); not verified by us",
)


def gpu_hours(iterations: int, flops_per_iteration: float, utilisation: float,
              peak: float = H100_BF16_DENSE) -> float:
    """GPU-hours = iterations · FLOPs per iteration / (peak · utilisation) / 3600."""
    if not 0 < utilisation <= 1:
        raise UplrError(f"utilisation must be in (0, 1], got {utilisation}")
    return iterations * flops_per_iteration / (peak * utilisation) / 3600.0


@dataclass
class Item:
    stage: str  # the dvc.yaml stage (or an inference pass)
    runs: int  # how many times the stage runs (seeds x cities)
    units: int  # iterations (training) or images (inference) per run
    flops_per_unit: float
    kind: str  # "train" or "inference"

    @property
    def flops(self) -> float:
        return self.runs * self.units * self.flops_per_unit


def _vars(folder: Path) -> dict[str, Any]:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    cities = folder / "cities.yaml"
    if cities.exists():
        params = {**params, **(yaml.safe_load(cities.read_text()) or {})}
    return params


def _count(value: Any, variables: dict[str, Any]) -> int:
    """How many items a foreach/matrix axis has (a list, or ``${name}`` naming a list in the vars)."""
    if isinstance(value, list):
        return len(value)
    m = re.fullmatch(r"\$\{([\w.]+)\}", str(value))
    if m is None:
        raise UplrError(f"cannot count the loop items {value!r}")
    obj: Any = variables
    for key in m.group(1).split("."):
        obj = obj[key]
    return len(obj)


def stage_runs(dvc_yaml: Path, variables: dict[str, Any]) -> dict[str, int]:
    """Each stage of ``dvc_yaml`` and how many times it runs (1; foreach items; matrix product)."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    runs = {}
    for name, st in stages.items():
        if "foreach" in st:
            runs[name] = _count(st["foreach"], variables)
        elif "matrix" in st:
            runs[name] = math.prod(_count(v, variables) for v in st["matrix"].values())
        else:
            runs[name] = 1
    return runs


def row_iterations(p: dict[str, Any], row: str) -> int:
    """Iterations one run of ``row``'s training stage adds (Table 3's chain: TGAA and UPST continue)."""
    from uplr.experiments import ROWS

    r = ROWS.get(row)
    section = (r.steps_from or ("upst" if r.pseudo else "tgaa" if r.init_from else "")) if r else ""
    if section == "upst":
        return int(p["upst"]["iterations"]) * int(p["upst"].get("rounds", 1))
    tgaa_init = dict(r.overrides).get("tgaa.init", p.get("tgaa", {}).get("init", "sr")) if r else "sr"
    if section == "tgaa" and tgaa_init == "sr":
        return int(p["tgaa"]["iterations"])  # steps added to the model it continues
    return int(p["train"]["iterations"])


def _list_len(dataset: str, split: str, city: str = "") -> int | None:
    """Lines of a packaged official list (None if it is not packaged)."""
    from uplr.data.datasets import LISTS_DIR

    folder = LISTS_DIR / dataset / city if city else LISTS_DIR / dataset
    for p in (folder / f"{split}.txt", folder / "List" / f"{split}.txt"):
        if p.is_file():
            return sum(1 for line in p.read_text().splitlines() if line.strip())
    return None


def schedule(repo: Path, benchmark: str, measured: dict[str, Any]) -> tuple[list[Item], list[str]]:
    """The paper-scale schedule of ``benchmark`` priced with the measured FLOPs; and notes."""
    folder = repo / "pipelines" / benchmark
    if not (folder / "dvc.yaml").is_file():
        raise UplrError(f"{folder / 'dvc.yaml'}: no such pipeline; valid benchmarks are the folders of pipelines/")
    variables = _vars(folder)
    runs = stage_runs(folder / "dvc.yaml", variables)
    costs = measured["costs"]
    p = variables
    items: list[Item] = []
    notes: list[str] = []
    for name, n in runs.items():
        base = name.split("@", 1)[0]
        if not base.startswith("train_"):
            continue
        row = base[len("train_"):]
        if row not in costs:
            raise UplrError(f"{measured['_path']}: no measured cost for row {row!r}; rerun "
                            f"make reproduce BENCHMARK={benchmark} SMOKE=1")
        iters = row_iterations(p, row)
        items.append(Item(name, n, int(iters), float(costs[row]["flops_per_iteration"]), "train"))
    # inference passes over the full splits (forward only, target size)
    tgt = p["data"]["target"]
    cities = variables.get("cities") or [""]
    city = cities[0] if tgt["dataset"] == "nthu" else ""
    n_train = _list_len(tgt["dataset"], tgt["split"], city) if "/" not in str(tgt["split"]) else None
    n_val = _list_len(tgt["dataset"], tgt["val_split"], city) if "/" not in str(tgt["val_split"]) else None
    infer = max(float(c["inference_flops_per_target_image"]) for c in costs.values())
    if n_train and n_val:
        t = p["tgaa"]["stages"]
        evals = sum(n for name, n in runs.items() if name.startswith("evaluate_"))
        pseudo = sum(n for name, n in runs.items() if name.startswith("pseudo_"))
        tgaa = sum(n for name, n in runs.items() if name.startswith("train_tgaa"))
        items.append(Item("evaluations (val, every row)", evals, n_val, infer, "inference"))
        items.append(Item("pseudo labels + quality (target train)", pseudo, n_train, infer, "inference"))
        items.append(Item(f"TGAA ranking + per-stage evaluation ({t} stages)", tgaa, t * (n_train + n_val),
                          infer, "inference"))
        notes.append(f"inference images per pass: target train {n_train}, val {n_val} (packaged official lists"
                     + (f"; {city} counted for every city" if city else "") + ")")
    else:
        notes.append("inference passes not priced: the target splits are not packaged official lists")
    return items, notes


def load_measured(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UplrError(f"{path}: no smoke measurement; run make reproduce BENCHMARK=<benchmark> SMOKE=1 first "
                        "(it measures the FLOPs per iteration of every training row)")
    data = json.loads(path.read_text())
    if not data.get("costs"):
        raise UplrError(f"{path}: holds no cost measurement (was the smoke run made with --no-cost?); rerun it")
    data["_path"] = str(path)
    return data


def format_report(benchmark: str, items: list[Item], notes: list[str], measured: dict[str, Any],
                  utilisations: tuple[float, ...] = UTILISATIONS) -> str:
    u = utilisations
    head = "".join(f" {'GPU-h @' + format(x, '.0%'):>12}" for x in u)
    lines = [
        f"ESTIMATE, not a measurement: GPU-hours for the paper's schedule of {benchmark} on ONE H100",
        f"(bf16 dense peak {H100_BF16_DENSE / 1e12:.0f} TFLOP/s at {', '.join(format(x, '.0%') for x in u)} "
        "utilisation; assumed, never run on a GPU here).",
        f"FLOPs per iteration: torch FlopCounterMode (one training step of each row, "
        f"{next(iter(measured['costs'].values())).get('measured_with', '?')}), measured {measured.get('when', '?')} "
        f"({measured.get('trunk', '?')}, source {measured.get('source_size')}, target {measured.get('target_size')}).",
        "",
        f"{'stage':<44} {'runs':>5} {'iter|img/run':>12} {'TFLOP/unit':>11}{head}",
    ]
    totals = [0.0] * len(u)
    for it in items:
        hours = [gpu_hours(it.runs * it.units, it.flops_per_unit, x) for x in u]
        totals = [a + b for a, b in zip(totals, hours, strict=True)]
        cols = "".join(f" {h:>12.2f}" for h in hours)
        lines.append(f"{it.stage:<44} {it.runs:>5} {it.units:>12} {it.flops_per_unit / 1e12:>11.3f}{cols}")
    lines.append(f"{'total':<44} {'':>5} {'':>12} {'':>11}" + "".join(f" {t:>12.2f}" for t in totals))
    per_stage = [gpu_hours(i.units, i.flops_per_unit, u[0]) for i in items if i.kind == "train"]
    if per_stage:
        lines.append(f"one training stage, one run: {min(per_stage):.1f}-{max(per_stage):.1f} GPU-h at {u[0]:.0%}"
                     f" ({min(gpu_hours(i.units, i.flops_per_unit, u[1]) for i in items if i.kind == 'train'):.1f}-"
                     f"{max(gpu_hours(i.units, i.flops_per_unit, u[1]) for i in items if i.kind == 'train'):.1f} "
                     f"at {u[1]:.0%})")
    lines += ["", *[f"note: {n}" for n in notes],
              "note: the pipelines' params set train.amp: false (fp32, as the peers); at fp32/TF32 the tensor-core "
              "peak is about half the bf16 one, so the hours roughly double unless train.amp: true",
              "note: data loading, checkpoints, MLflow and start-up are not counted; batch size as in params.yaml",
              "note: batch-1 training of dilated convolutions rarely sustains a third of the tensor-core peak; "
              "read these hours as a lower bound, and the peers' figure below as another method's workload, "
              "not comparable one-to-one",
              "", "peers' report (for comparison, not verified by us):", *[f"  {r}" for r in PEER_REPORTS]]
    return "\n".join(lines)


def check_sizes(repo: Path, benchmark: str, measured: dict[str, Any]) -> None:
    """The measurement must be at the pipeline's crop sizes (a reduced smoke run is not)."""
    data = yaml.safe_load((repo / "pipelines" / benchmark / "params.yaml").read_text())["data"]
    want = [list(data["source"]["size"]), list(data["target"]["size"])]
    got = [measured.get("source_size"), measured.get("target_size")]
    if measured.get("benchmark", benchmark) != benchmark or got != want:
        raise UplrError(f"{measured['_path']}: measured for {measured.get('benchmark')} at source/target sizes "
                        f"{got[0]}/{got[1]}, but pipelines/{benchmark}/params.yaml trains at {want[0]}/{want[1]}; "
                        f"rerun make reproduce BENCHMARK={benchmark} SMOKE=1 at the real sizes")


def cost_report(repo: Path, benchmark: str, measured_path: Path | None = None) -> str:
    path = measured_path or repo / "pipelines" / benchmark / "smoke.json"
    measured = load_measured(path)
    check_sizes(repo, benchmark, measured)
    items, notes = schedule(repo, benchmark, measured)
    if measured.get("cost_only"):
        notes.insert(0, "the FLOPs come from `python -m uplr.smoke --cost-only` (the rows measured at the "
                        "pipeline's params without a pipeline run)")
    return format_report(benchmark, items, notes, measured)
