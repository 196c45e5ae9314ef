"""`uplr tables`: reports/ rebuilt from an MLflow store alone, the paper's numbers beside ours.

A temporary store is filled directly with MlflowClient (evaluation runs of four benchmarks, several rows
and seeds, a re-run whose newest run must win, a FAILED run that must be ignored, a generate run with
the class frequencies). Expected numbers are computed here with numpy from the values logged, and the
paper's numbers are typed from the digest (shared/paper/uplr-iccv2021-digest.txt).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from uplr.data.labels import CLASSES_19, SUBSETS
from uplr.errors import UplrError
from uplr.report import tables
from uplr.report.reference import DEFAULT_PATH, load_reference

EXP_A, EXP_B = "uplr-tables-a", "uplr-tables-b"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# embedded target-val pixel shares (generate run): terrain absent, so never chosen for Figure 6
FREQ = {c: 0.2 - 0.01 * i for i, c in enumerate(CLASSES_19)}
FREQ.update({"terrain": 0.0, "wall": 0.001, "rider": 0.002})


def _iou(rng: np.random.Generator, absent: tuple[str, ...] = ()) -> dict[str, float | None]:
    return {c: (None if c in absent else float(rng.uniform(0.05, 0.95))) for c in CLASSES_19}


class Store:
    """Fills the store and remembers what was logged (the winning run per benchmark/row/city/seed)."""

    def __init__(self, client, exp_ids: dict[str, str]):
        self.client, self.exp_ids, self.clock = client, exp_ids, 1_700_000_000_000
        self.logged: dict[tuple[str, str, str, int], dict[str, float | None]] = {}
        self.run_ids: dict[tuple[str, str, str, int], str] = {}
        self.ignored: list[str] = []

    def run(self, exp: str, bench: str, row: str, seed: int, iou: dict[str, float | None], city: str = "",
            status: str = "FINISHED", start: int | None = None, extra: dict[str, float] | None = None) -> str:
        from mlflow.entities import Metric

        self.clock += 1000
        start = self.clock if start is None else start
        tags = {"uplr.kind": "evaluation", "uplr.benchmark": bench, "uplr.row": row, "uplr.seed": str(seed),
                "uplr.city": city, "uplr.checkpoint": "last"}
        r = self.client.create_run(self.exp_ids[exp], start_time=start, tags=tags, run_name=f"evaluate/{row}/seed{seed}")
        metrics = {f"iou/{c}": v for c, v in iou.items() if v is not None}
        metrics.update(extra or {})
        self.client.log_batch(r.info.run_id, metrics=[Metric(k, v, start, 0) for k, v in metrics.items()])
        self.client.set_terminated(r.info.run_id, status=status, end_time=start + 500)
        return r.info.run_id

    def result(self, exp, bench, row, seed, iou, city="", **kw) -> None:
        key = (bench, row, city, seed)
        self.logged[key] = iou
        self.run_ids[key] = self.run(exp, bench, row, seed, iou, city, **kw)


def fill(client, artifacts: Path) -> Store:
    exp_ids = {}
    for name in (EXP_A, EXP_B):
        exp = client.get_experiment_by_name(name)
        exp_ids[name] = exp.experiment_id if exp else client.create_experiment(
            name, artifact_location=(artifacts / name).as_uri())
    s = Store(client, exp_ids)
    rng = np.random.default_rng(7)
    # GTA5 -> Cityscapes: tgaa x3 seeds (seed 1 re-run: the newer run is logged first, the older one after
    # it with a smaller start time); upst x2 plus a newer FAILED run; source_only x1; sr + two TGAA stages
    s.result(EXP_A, "gta5_cityscapes", "tgaa", 1, _iou(rng))
    s.ignored.append(s.run(EXP_A, "gta5_cityscapes", "tgaa", 1, {c: 0.01 for c in CLASSES_19}, start=1_000))
    for seed in (0, 2):
        s.result(EXP_A, "gta5_cityscapes", "tgaa", seed, _iou(rng))
    for seed in (0, 1):
        s.result(EXP_A, "gta5_cityscapes", "upst", seed, _iou(rng))
    s.ignored.append(s.run(EXP_A, "gta5_cityscapes", "upst", 0, {c: 0.99 for c in CLASSES_19}, status="FAILED"))
    s.result(EXP_A, "gta5_cityscapes", "source_only", 0, _iou(rng))
    for row in ("sr", "tgaa@S1", "tgaa@S2"):
        for seed in (0, 1):
            s.result(EXP_A, "gta5_cityscapes", row, seed, _iou(rng))
    # SYNTHIA -> Cityscapes: tgaa x2; wall absent in seed 1; a wrongly logged (rescaled) miou/16 is ignored
    s.result(EXP_A, "synthia_cityscapes", "tgaa", 0, _iou(rng), extra={"miou/16": 0.9})
    s.result(EXP_A, "synthia_cityscapes", "tgaa", 1, _iou(rng, absent=("wall",)))
    # Cross-City
    for row, city, seed in (("source_only", "Rome", 0), ("source_only", "Rome", 1), ("source_only", "Rio", 0),
                            ("upst", "Tokyo", 0), ("upst", "Tokyo", 1)):
        s.result(EXP_A, "cityscapes_nthu", row, seed, _iou(rng), city=city)
    # embedded benchmark (second experiment)
    for row, seeds in (("source_only", (0, 1, 2)), ("sr", (0, 1)), ("tgaa@S1", (0, 1)), ("tgaa@S2", (0, 1)),
                       ("tgaa@S3", (0, 1)), ("tgaa", (0, 1)), ("upst", (0,))):
        for seed in seeds:
            s.result(EXP_B, "embedded", row, seed, _iou(rng))
    s.result(EXP_B, "embedded", "oracle", 0, _iou(rng, absent=("train",)))
    gen = client.create_run(exp_ids[EXP_B], tags={"uplr.kind": "generate", "uplr.benchmark": "embedded"})
    artifacts.mkdir(parents=True, exist_ok=True)
    summary = artifacts / "summary.json"
    summary.write_text(json.dumps({"splits": {"target/val": {"class_pixel_fraction": FREQ}}}))
    client.log_artifact(gen.info.run_id, str(summary))
    client.set_terminated(gen.info.run_id, status="FINISHED")
    return s


# ----------------------------------------------------------------------------------------------------
# expected values, computed independently of uplr.report


def runs_of(s: Store, bench: str, row: str, city: str = "") -> list[dict[str, float | None]]:
    return [v for (b, r, c, _), v in sorted(s.logged.items()) if (b, r, c) == (bench, row, city)]


def per_run(values: list[dict[str, float | None]], cls: str) -> np.ndarray:
    return np.array([100 * v[cls] for v in values if v[cls] is not None])


def per_run_miou(values: list[dict[str, float | None]], subset: str) -> np.ndarray:
    names = [CLASSES_19[i] for i in SUBSETS[subset]]
    return np.array([np.mean([100 * v[c] for c in names if v[c] is not None]) for v in values])


def cell(x: np.ndarray) -> str:
    return f"{x.mean():.1f} ± {x.std(ddof=1):.1f}" if len(x) > 1 else f"{x.mean():.1f}"


def md_table(path: Path, title_start: str = "") -> tuple[list[str], dict[str, list[str]]]:
    """(header, {first-or-second text cell: row}) of the first Markdown table in ``path``."""
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    header, body = split[0], split[2:]
    key = 1 if header[0] == "Group" or header[0] == "Stage" else 0
    return header, {r[key]: dict(zip(header, r, strict=True)) for r in body}


# ----------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def built(mlflow_uri, tmp_path_factory):
    """Fill the store, build reports/ in-process, delete it, build it via the CLI, then again over it."""
    import mlflow

    from uplr.cli import main

    tmp = tmp_path_factory.mktemp("tables")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        store = fill(mlflow.MlflowClient(tracking_uri=mlflow_uri), tmp / "artifacts")
        out = tmp / "reports"
        tables.run(out, [EXP_A, EXP_B], echo=False)
        first = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        shutil.rmtree(out)
        assert main(["tables", "--out", str(out), "--experiment", EXP_A, "--experiment", EXP_B]) == 0
        second = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
        tables.run(out, [EXP_A, EXP_B], echo=False)
        third = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    return store, out, (first, second, third)


# ----------------------------------------------------------------------------------------------------
# the reference file


def test_reference_numbers_match_the_digest():
    ref = load_reference()
    assert "ICCV 2021" in ref.source["venue"] and "9092-9101" in ref.source["venue"]
    t1 = {e.method: e for e in ref.table1.entries}
    assert t1["AdaptSeg [31]"].iou["road"] == 86.5 and t1["AdaptSeg [31]"].miou["19"] == 42.4
    assert t1["Ours (AA)"].ours == "tgaa" and t1["Ours (AA)"].iou["traffic light"] == 42.9
    assert t1["Ours (ST)"].ours == "upst" and t1["Ours (ST)"].iou["bicycle"] == 54.6
    assert t1["Ours (ST)"].miou["19"] == 52.6 and t1["FDA [36]"].iou["train"] == 16.9
    t2 = {e.method: e for e in ref.table2.entries}
    assert t2["CLAN [20]"].iou["wall"] is None and t2["CLAN [20]"].miou == {"16": None, "13": 47.8}
    assert t2["Ours (ST)"].iou["bus"] == 36.6 and t2["Ours (AA)"].miou == {"16": 45.2, "13": 52.0}
    assert [e.miou for e in ref.table3.entries] == [36.6, 42.9, 45.3, 46.1, 48.8, 52.6]
    assert [len(e.components) for e in ref.table3.entries] == [0, 1, 2, 3, 4, 5]
    assert len(ref.table1.entries) == 17 and len(ref.table2.entries) == 12
    assert ref.cross_city.paper == "not reported in our source"


def test_reference_rows_are_consistent_with_their_miou():
    """Transcription check: each printed mIoU is the mean of the row's per-class IoU (to rounding)."""
    ref = load_reference()
    for spec in (ref.table1, ref.table2):
        for e in spec.entries:
            for subset, printed in e.miou.items():
                names = [CLASSES_19[i] for i in SUBSETS[subset]]
                vals = [e.iou[c] for c in names]
                if printed is None or None in vals:
                    continue
                assert abs(np.mean(vals) - printed) <= 0.1, (spec.key, e.method, subset)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("fence: 23.3, pole: 28.3", "fence: 23.3, pol: 28.3", ["table1.entries[3] ('CLAN [20]').iou", "'pol'",
                                                              "pole", "traffic light"]),
        ("benchmark: synthia_cityscapes", "benchmark: synthia_cityscape", ["table2.benchmark", "'synthia_cityscape'",
                                                                            "gta5_cityscapes, synthia_cityscapes"]),
        ("{row: sr, miou:", "{row: srr, miou:",
         ["table3.entries[3]", "'srr'", "source_only, aa, it, sr"]),
        ("cities: [Rome, Rio, Tokyo, Taipei]", "cities: [Rome, Rio, Tokio, Taipei]", ["cross_city.cities[2]", "Tokyo"]),
        ("  k: 5", "  k: 0", ["figure6.k"]),
    ],
)
def test_reference_file_is_validated(tmp_path, old, new, expected):
    text = DEFAULT_PATH.read_text()
    assert text.count(old) == 1
    broken = tmp_path / "paper_tables.yaml"
    broken.write_text(text.replace(old, new))
    with pytest.raises(UplrError) as err:
        load_reference(broken)
    msg = str(err.value)
    assert str(broken) in msg
    for part in expected:
        assert part in msg


# ----------------------------------------------------------------------------------------------------
# the report


def test_files_in_every_format_and_identical_bytes(built):
    _, out, (first, second, third) = built
    names = ["table1_gta5_cityscapes", "table2_synthia_cityscapes", "table3_gta5_cityscapes", "table3_embedded",
             "crosscity_cityscapes_nthu", "embedded", "figure6_embedded", "figure6_gta5_cityscapes",
             "variants_embedded"]
    readme = (out / "README.md").read_text()
    for name in names:
        for suffix in (".md", ".csv", ".tex"):
            assert (out / f"{name}{suffix}").is_file()
            assert f"({name}{suffix})" in readme
        tex = (out / f"{name}.tex").read_text()
        assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\begin{tabular}" in tex
    for png in ("figure6_embedded.png", "figure6_gta5_cityscapes.png", "table3_embedded.png",
                "table3_gta5_cityscapes.png"):
        data = (out / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and f"({png})" in readme
        with Image.open(out / png) as im:
            im.verify()
    assert first == second == third  # deleting reports/ and rebuilding (via the CLI) changes no byte
    assert not [n for n in first if n.startswith(".")]  # no temporary files left behind


def test_table1_ours_mean_std_n_and_delta(built):
    s, out, _ = built
    header, rows = md_table(out / "table1_gta5_cityscapes.md")
    assert header[2:21] == list(CLASSES_19) and header[-2:] == ["mIoU", "n"]
    runs = runs_of(s, "gta5_cityscapes", "tgaa")
    assert len(runs) == 3
    ours = rows["Ours (AA), ours (row tgaa)"]
    for c in CLASSES_19:
        assert ours[c] == cell(per_run(runs, c))
    miou = per_run_miou(runs, "19")
    assert ours["mIoU"] == cell(miou) and ours["n"] == "3"
    delta = rows["Ours (AA), Δ ours − paper"]
    assert delta["mIoU"] == f"{miou.mean() - 48.8:+.1f}"
    assert delta["road"] == f"{per_run(runs, 'road').mean() - 88.7:+.1f}"
    # the paper's rows beside ours, as printed in the digest
    assert rows["AdaptSeg [31]"]["road"] == "86.5" and rows["AdaptSeg [31]"]["mIoU"] == "42.4"
    assert rows["Ours (AA), paper"]["mIoU"] == "48.8" and rows["Ours (ST), paper"]["bicycle"] == "54.6"
    assert rows["Zhe et al. [39]"]["traffic light"] == "48.8"
    # upst: the FAILED (newest) run is ignored; source_only with one seed has no ±
    upst = rows["Ours (ST), ours (row upst)"]
    assert upst["mIoU"] == cell(per_run_miou(runs_of(s, "gta5_cityscapes", "upst"), "19")) and upst["n"] == "2"
    # CSV: our numbers with std, n, seeds and the run ids of the winning runs only
    csv = pd.read_csv(out / "table1_gta5_cityscapes.csv").set_index("row")
    tg = csv.loc["tgaa"]
    assert tg["n"] == 3 and tg["seeds"] == "0,1,2"
    assert tg["miou/19"] == pytest.approx(miou.mean(), abs=1e-3)
    assert tg["miou/19_std"] == pytest.approx(miou.std(ddof=1), abs=1e-3)
    assert tg["miou/19_paper"] == 48.8
    assert tg["miou/19_delta"] == pytest.approx(miou.mean() - 48.8, abs=1e-3)
    ids = set(csv.loc["tgaa", "run_ids"].split(",")) | set(csv.loc["upst", "run_ids"].split(","))
    assert {s.run_ids[("gta5_cityscapes", "tgaa", "", k)] for k in (0, 1, 2)} <= ids
    assert not ids & set(s.ignored)


def test_table2_subset_mious_from_per_class_iou_and_not_run(built):
    s, out, _ = built
    header, rows = md_table(out / "table2_synthia_cityscapes.md")
    assert "terrain" not in header and "truck" not in header and "train" not in header
    assert header[-3:] == ["mIoU (16)", "mIoU* (13)", "n"]
    runs = runs_of(s, "synthia_cityscapes", "tgaa")
    ours = rows["Ours (AA), ours (row tgaa)"]
    # seed 0 logged miou/16 = 90 (a rescaled number): the table uses the per-class IoU instead
    assert ours["mIoU (16)"] == cell(per_run_miou(runs, "16"))
    assert ours["mIoU* (13)"] == cell(per_run_miou(runs, "13"))
    assert ours["wall"] == f"{100 * runs[0]['wall']:.1f}"  # absent in seed 1: the mean of the one value
    assert rows["CLAN [20]"]["wall"] == "-" and rows["CLAN [20]"]["mIoU (16)"] == "-"
    assert rows["CLAN [20]"]["mIoU* (13)"] == "47.8" and rows["Ours (ST), paper"]["bus"] == "36.6"
    upst = rows["Ours (ST), ours (row upst)"]
    assert {upst[c] for c in header[2:-1]} == {"not run"} and upst["n"] == "0"


def test_table3_ablation_both_benchmarks(built):
    s, out, _ = built
    header, rows = md_table(out / "table3_gta5_cityscapes.md")
    assert header == ["Method", "AA", "IT", "SR", "TGAA", "UPST", "mIoU (ours)", "n",
                      "Δ to the row above (paired, 95% CI)", "mIoU (paper)", "Δ ours − paper"]
    assert [rows[k]["mIoU (paper)"] for k in ("Source only", "+AA", "+IT", "+SR", "+TGAA", "+UPST")] == \
        ["36.6", "42.9", "45.3", "46.1", "48.8", "52.6"]
    assert [rows["+IT"][c] for c in ("AA", "IT", "SR")] == ["✓", "✓", ""]
    assert rows["+AA"]["mIoU (ours)"] == "not run" and rows["+AA"]["Δ ours − paper"] == "not run"
    one = per_run_miou(runs_of(s, "gta5_cityscapes", "source_only"), "19")
    assert rows["Source only"]["mIoU (ours)"] == f"{one[0]:.1f}" and rows["Source only"]["n"] == "1"
    assert rows["Source only"]["Δ ours − paper"] == f"{one[0] - 36.6:+.1f}"
    assert rows["Source only"]["Δ to the row above (paired, 95% CI)"] == ""  # the first row has none above
    header, rows = md_table(out / "table3_embedded.md")
    assert "Δ ours − paper" not in header
    assert {r["mIoU (paper)"] for r in rows.values()} == {"different benchmark"}
    sr = per_run_miou(runs_of(s, "embedded", "sr"), "19")
    assert rows["+SR"]["mIoU (ours)"] == cell(sr) and rows["+AA"]["mIoU (ours)"] == "not run"
    assert "different benchmark" in (out / "table3_embedded.md").read_text().split("|")[-1]
    # paired Δ (+TGAA − +SR, seeds 0 and 1) against scipy's paired t-test interval
    from scipy.stats import ttest_rel

    tg = per_run_miou(runs_of(s, "embedded", "tgaa"), "19")
    ci = ttest_rel(tg, sr).confidence_interval(0.95)
    shown = "" if ci.low > 0 or ci.high < 0 else ", not shown"
    assert rows["+TGAA"]["Δ to the row above (paired, 95% CI)"] == \
        f"{np.mean(tg - sr):+.1f} [{ci.low:+.1f}, {ci.high:+.1f}]{shown}"
    assert rows["+UPST"]["Δ to the row above (paired, 95% CI)"].endswith("(1 seed: no interval)")


def test_variants_table_lists_every_control_and_variant(built):
    from uplr import experiments as X

    _, out, _ = built
    header, rows = md_table(out / "variants_embedded.md")
    assert header[:2] == ["Variant", "compared with"]
    assert list(rows) == [X.ROWS[r].label for r in X.table_rows("variants")]
    assert rows["+SR, continued (control for +TGAA)"]["compared with"] == "+TGAA"
    assert {r["mIoU (ours)"] for r in rows.values()} == {"not run"}  # the fixture store has no variant runs


def test_cross_city_layout(built):
    s, out, _ = built
    header, rows = md_table(out / "crosscity_cityscapes_nthu.md")
    assert header == ["Method", "Rome", "Rio", "Tokyo", "Taipei", "Paper"]
    rome = per_run_miou(runs_of(s, "cityscapes_nthu", "source_only", "Rome"), "nthu13")
    rio = per_run_miou(runs_of(s, "cityscapes_nthu", "source_only", "Rio"), "nthu13")
    so = rows["Source only"]
    assert so["Rome"] == f"{cell(rome)} (n=2)" and so["Rio"] == f"{cell(rio)} (n=1)"
    assert so["Tokyo"] == so["Taipei"] == "not run"
    tokyo = per_run_miou(runs_of(s, "cityscapes_nthu", "upst", "Tokyo"), "nthu13")
    assert rows["+UPST"]["Tokyo"] == f"{cell(tokyo)} (n=2)"
    assert {r["Paper"] for r in rows.values()} == {"not reported in our source"}
    assert {rows["+AA"][c] for c in ("Rome", "Rio", "Tokyo", "Taipei")} == {"not run"}


def test_embedded_per_class_with_oracle_and_na(built):
    s, out, _ = built
    _, rows = md_table(out / "embedded.md")
    oracle = rows["Oracle (target-supervised)"]
    assert oracle["train"] == "n/a" and oracle["n"] == "1"
    assert oracle["road"] == f"{100 * runs_of(s, 'embedded', 'oracle')[0]['road']:.1f}"
    assert rows["Source only"]["mIoU"] == cell(per_run_miou(runs_of(s, "embedded", "source_only"), "19"))
    assert rows["+AA"]["road"] == "not run"
    assert not any(k.startswith("tgaa@") for k in rows)


def test_figure6_classes_stages_and_error_bars(built):
    s, out, _ = built
    # embedded: the 5 least frequent classes with pixels in the target val ground truth
    present = sorted((f, CLASSES_19.index(c), c) for c, f in FREQ.items() if f > 0)
    want = [c for _, _, c in present[:5]]
    header, rows = md_table(out / "figure6_embedded.md")
    assert header == ["Stage", "Row", *want, "n"] and "terrain" not in header
    assert [r["Stage"] for r in rows.values()] == ["S0", "S1", "S2", "S3"]
    assert rows["sr"]["Stage"] == "S0" and rows["tgaa@S3"]["Stage"] == "S3"
    for row in ("sr", "tgaa@S2"):
        for c in want:
            assert rows[row][c] == cell(per_run(runs_of(s, "embedded", row), c))
    data = pd.read_csv(out / "figure6_embedded.csv")
    assert len(data) == 4 * 5 and set(data["n"]) == {2}
    # gta5: no frequencies in MLflow, so the 5 classes with the lowest IoU at S0 (row sr)
    sr = runs_of(s, "gta5_cityscapes", "sr")
    means = {c: per_run(sr, c).mean() for c in CLASSES_19}
    lowest = sorted(CLASSES_19, key=lambda c: means[c])[:5]
    header, _ = md_table(out / "figure6_gta5_cityscapes.md")
    assert header[2:-1] == lowest
    assert "lowest IoU" in (out / "figure6_gta5_cityscapes.md").read_text()


def test_empty_store_says_not_run_and_prints(tmp_path, mlflow_uri, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    tables.run(tmp_path / "r", ["uplr-tables-none"])
    printed = capsys.readouterr().out
    assert "Table 1." in printed and "Cross-City" in printed
    _, rows = md_table(tmp_path / "r" / "table1_gta5_cityscapes.md")
    assert rows["Ours (AA), ours (row tgaa)"]["road"] == "not run"
    assert not list((tmp_path / "r").glob("*.png"))
    # a figure of an earlier build whose runs are gone is removed, other files are left alone
    (tmp_path / "r" / "figure6_gta5_cityscapes.png").write_bytes(PNG_MAGIC)
    (tmp_path / "r" / "notes.txt").write_text("mine")
    tables.run(tmp_path / "r", ["uplr-tables-none"], echo=False)
    assert not (tmp_path / "r" / "figure6_gta5_cityscapes.png").exists()
    assert (tmp_path / "r" / "notes.txt").exists()
