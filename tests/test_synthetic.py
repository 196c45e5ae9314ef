"""The embedded benchmark generator: on-disk formats, determinism, class statistics, the domain gap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, name2label
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from PIL import Image

from uplr.data import _scenes, synthetic
from uplr.errors import UplrError

# independent of the module under test: straight from cityscapesscripts
VALID_IDS = {lab.id for lab in CS_LABELS if lab.id >= 0}
TRAIN_NAMES = [
    lab.name for lab in sorted((lab for lab in CS_LABELS if 0 <= lab.trainId < 19), key=lambda x: x.trainId)
]
ID_TO_TRAIN = np.full(256, 255, np.int64)
for _lab in CS_LABELS:
    if 0 <= _lab.trainId < 19:
        ID_TO_TRAIN[_lab.id] = _lab.trainId
TARGET_RE = re.compile(r"^([a-z]+)/\1_(\d{6})_(\d{6})_leftImg8bit\.png$")
SOURCE_RE = re.compile(r"^\d{5}\.png$")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tiny") / "embedded"
    summary = synthetic.generate(
        out, seed=3, height=32, width=64, n_source=4, n_target_train=5, n_target_val=3
    )
    return out, summary


@pytest.fixture(scope="module")
def stats_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stats") / "embedded"
    synthetic.generate(out, seed=11, height=64, width=128, n_source=60, n_target_train=60, n_target_val=1)
    return out


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    src = sorted((path / "source" / "images").glob("*.png"))
    imgs = np.stack([np.asarray(Image.open(p)) for p in src])
    labs = np.stack([np.asarray(Image.open(path / "source" / "labels" / p.name)) for p in src])
    return imgs, labs


def _read_target(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = (path / "target" / f"{split}.txt").read_text().split()
    imgs = np.stack([np.asarray(Image.open(path / "target" / "leftImg8bit" / split / n)) for n in names])
    labs = np.stack(
        [
            np.asarray(
                Image.open(path / "target" / "gtFine" / split / n.replace("_leftImg8bit", "_gtFine_labelIds"))
            )
            for n in names
        ]
    )
    return imgs, labs


def _class_freq(labels: np.ndarray) -> np.ndarray:
    t = ID_TO_TRAIN[labels.ravel()]
    c = np.bincount(t[t < 19], minlength=19).astype(float)
    return c / c.sum()


# ----------------------------------------------------------------------------------------------------
# formats


def test_source_is_gta5_format(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    names = (out / "source" / "all.txt").read_text().splitlines()
    assert names == [f"{i:05d}.png" for i in range(1, 5)]
    assert all(SOURCE_RE.match(n) for n in names)
    assert sorted(p.name for p in (out / "source" / "images").iterdir()) == names
    assert sorted(p.name for p in (out / "source" / "labels").iterdir()) == names
    for n in names:
        img = Image.open(out / "source" / "images" / n)
        lab = Image.open(out / "source" / "labels" / n)
        assert img.mode == "RGB" and lab.mode == "P"
        assert img.size == lab.size == (64, 32)
        pal = np.asarray(lab.getpalette()[: 3 * 35]).reshape(-1, 3)
        for i in range(34):  # the GTA5 palette: labelId -> Cityscapes colour, then license plate's
            assert tuple(pal[i]) == tuple(id2label[i].color), i
        assert tuple(pal[34]) == tuple(id2label[-1].color)
        assert set(np.unique(np.asarray(lab)).tolist()) <= VALID_IDS


def test_target_is_cityscapes_format(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    cities = {}
    for split, n in (("train", 5), ("val", 3)):
        lines = (out / "target" / f"{split}.txt").read_text().splitlines()
        assert len(lines) == n and lines == sorted(lines)
        on_disk = sorted(
            str(p.relative_to(out / "target" / "leftImg8bit" / split))
            for p in (out / "target" / "leftImg8bit" / split).rglob("*.png")
        )
        assert on_disk == lines
        cities[split] = set()
        for line in lines:
            m = TARGET_RE.match(line)
            assert m, line
            cities[split].add(m.group(1))
            img = Image.open(out / "target" / "leftImg8bit" / split / line)
            lab = Image.open(
                out / "target" / "gtFine" / split / line.replace("_leftImg8bit.png", "_gtFine_labelIds.png")
            )
            assert img.mode == "RGB" and lab.mode == "L"
            assert img.size == lab.size == (64, 32)
            assert set(np.unique(np.asarray(lab)).tolist()) <= VALID_IDS
        gt = sorted(p.name for p in (out / "target" / "gtFine" / split).rglob("*"))
        assert all(g.endswith("_gtFine_labelIds.png") for g in gt if "." in g)
    assert cities["train"] and cities["val"] and not cities["train"] & cities["val"]


def test_summary_and_preview(tiny: tuple[Path, dict]) -> None:
    out, summary = tiny
    assert json.loads((out / "summary.json").read_text()) == summary
    assert Image.open(out / "preview.png").mode == "RGB"
    assert summary["classes"] == TRAIN_NAMES
    # the summary's frequencies agree with counts made here from the written files
    _, labs = _read(out)
    s = summary["splits"]["source/all"]
    assert s["images"] == 4 and s["pixels"] == labs.size
    expected = _class_freq(labs)
    got = np.array([s["class_pixel_fraction"][n] for n in TRAIN_NAMES])
    np.testing.assert_allclose(got, expected, atol=2e-6)
    present = (ID_TO_TRAIN[labs.reshape(4, -1)][:, :, None] == np.arange(19)).any(1).mean(0)
    np.testing.assert_allclose([s["class_image_fraction"][n] for n in TRAIN_NAMES], present, atol=1e-6)
    assert s["void_fraction"] == pytest.approx(float((ID_TO_TRAIN[labs] == 255).mean()), abs=1e-6)
    assert set(summary["splits"]) == {"source/all", "target/train", "target/val"}


def test_has_void_pixels_with_ignored_ids(stats_run: Path) -> None:
    _, tlabs = _read_target(stats_run, "train")
    _, slabs = _read(stats_run)
    ids = set(np.unique(tlabs).tolist()) | set(np.unique(slabs).tolist())
    assert name2label["ego vehicle"].id in ids and name2label["static"].id in ids
    # the ego vehicle is at the bottom of the image
    rows = np.nonzero(tlabs == name2label["ego vehicle"].id)[1]
    assert rows.min() > 0.75 * tlabs.shape[1]


def test_bad_parameters_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UplrError, match="generate.height"):
        synthetic.generate(
            tmp_path / "x", seed=0, height=4, width=64, n_source=1, n_target_train=1, n_target_val=1
        )
    with pytest.raises(UplrError, match="generate.n_target_val"):
        synthetic.generate(
            tmp_path / "x", seed=0, height=32, width=64, n_source=1, n_target_train=1, n_target_val=0
        )
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_bytes_different_seed_different_images(
    tiny: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = tiny
    again = tmp_path / "again"
    synthetic.generate(again, seed=3, height=32, width=64, n_source=4, n_target_train=5, n_target_val=3)
    assert _files(out) == _files(again)
    other = tmp_path / "other"
    synthetic.generate(other, seed=4, height=32, width=64, n_source=4, n_target_train=5, n_target_val=3)
    a, b = _files(out), _files(other)
    assert a.keys() == b.keys()
    images = [k for k in a if k.endswith(".png") and ("images" in k or "leftImg8bit" in k)]
    assert len(images) == 12 and all(a[k] != b[k] for k in images)


def test_images_do_not_depend_on_how_many_are_generated(tmp_path: Path) -> None:
    small, big = tmp_path / "n3", tmp_path / "n5"
    synthetic.generate(small, seed=5, height=32, width=64, n_source=3, n_target_train=3, n_target_val=3)
    synthetic.generate(big, seed=5, height=32, width=64, n_source=5, n_target_train=5, n_target_val=4)
    a, b = _files(small), _files(big)
    shared = [k for k in a if k.endswith(".png") and k != "preview.png"]
    assert len(shared) == 18
    assert all(a[k] == b[k] for k in shared)
    # the domains and splits have their own streams: no two images are the same
    assert len({a[k] for k in shared if "images" in k or "leftImg8bit" in k}) == 9


# ----------------------------------------------------------------------------------------------------
# class statistics and the domain gap


def test_every_class_appears_and_rare_classes_are_rare(stats_run: Path) -> None:
    _, slabs = _read(stats_run)
    _, tlabs = _read_target(stats_run, "train")
    for labs in (slabs, tlabs):
        freq = _class_freq(labs)
        rare = [
            TRAIN_NAMES.index(n)
            for n in ("train", "motorcycle", "rider", "bus", "traffic light", "traffic sign")
        ]
        common = [TRAIN_NAMES.index(n) for n in ("road", "building", "vegetation", "sky", "sidewalk")]
        assert freq[rare].max() < freq[common].min()
        assert freq[rare].max() < 0.02
    assert (_class_freq(slabs) > 0).all(), dict(zip(TRAIN_NAMES, _class_freq(slabs), strict=True))
    # the rarest: a train is in few images
    has_train = (slabs == name2label["train"].id).reshape(len(slabs), -1).any(1).mean()
    assert 0 < has_train < 0.25


def test_class_frequencies_shift_between_domains(stats_run: Path) -> None:
    _, slabs = _read(stats_run)
    _, tlabs = _read_target(stats_run, "train")
    p, q = _class_freq(slabs), _class_freq(tlabs)
    assert 0.5 * np.abs(p - q).sum() > 0.04
    idx = {n: TRAIN_NAMES.index(n) for n in ("car", "truck", "person", "bicycle", "vegetation")}
    assert p[idx["car"]] + p[idx["truck"]] > q[idx["car"]] + q[idx["truck"]]
    assert q[idx["person"]] > 1.5 * p[idx["person"]]
    assert q[idx["bicycle"]] > 1.5 * p[idx["bicycle"]]
    assert q[idx["vegetation"]] > p[idx["vegetation"]]


def test_appearance_differs_while_layout_matches(stats_run: Path) -> None:
    simgs, slabs = _read(stats_run)
    timgs, tlabs = _read_target(stats_run, "train")
    h = slabs.shape[1]
    for name in ("road", "building", "vegetation", "sky"):
        i = name2label[name].id
        ms = simgs[slabs == i].astype(float).mean(0)
        mt = timgs[tlabs == i].astype(float).mean(0)
        assert np.abs(ms - mt).mean() > 10, (name, ms, mt)
    # colour alone does not carry over: nearest class-mean colour, means from the source vs the target
    names = ("road", "sidewalk", "building", "vegetation", "sky", "car")
    ids = np.array([name2label[n].id for n in names])

    def centroids(imgs: np.ndarray, labs: np.ndarray) -> np.ndarray:
        return np.stack([imgs[labs == i].astype(float).mean(0) for i in ids])

    m = np.isin(tlabs, ids)
    x, y = timgs[m].astype(float), tlabs[m]

    def accuracy(c: np.ndarray) -> float:
        return float((ids[np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), 1)] == y).mean())

    from_source, from_target = accuracy(centroids(simgs, slabs)), accuracy(centroids(timgs, tlabs))
    assert from_target > from_source + 0.15, (from_source, from_target)
    rows = np.arange(h)[None, :, None]
    for labs in (slabs, tlabs):
        sky = labs == name2label["sky"].id
        road = labs == name2label["road"].id
        assert (sky & (rows < h / 3)).sum() > 0.75 * sky.sum()
        assert (road & (rows >= h / 2)).sum() > 0.9 * road.sum()
    # mean row of sky and road agree between the domains (same layout prior)
    for name in ("sky", "road", "building"):
        i = name2label[name].id
        rs = np.nonzero(slabs == i)[1].mean() / h
        rt = np.nonzero(tlabs == i)[1].mean() / h
        assert abs(rs - rt) < 0.06, (name, rs, rt)

    # textures: the target is noisier at the pixel level (high-frequency part of the gap)
    def hf(imgs: np.ndarray) -> float:
        g = imgs.astype(float).mean(-1)
        return float(np.median(np.abs(np.diff(g, axis=2)), axis=None))

    assert hf(timgs) > hf(simgs) + 1.0


# ----------------------------------------------------------------------------------------------------
# atomicity


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _scenes.draw_scene
    calls = {"n": 0}

    def flaky(*args: object, **kw: object) -> _scenes.Scene:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("boom")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_scenes, "draw_scene", flaky)
    out = tmp_path / "embedded"
    with pytest.raises(RuntimeError, match="boom"):
        synthetic.generate(out, seed=1, height=32, width=64, n_source=2, n_target_train=2, n_target_val=1)
    assert calls["n"] == 4
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind either


def test_failed_regeneration_keeps_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "embedded"
    synthetic.generate(out, seed=1, height=32, width=64, n_source=1, n_target_train=1, n_target_val=1)
    before = _files(out)

    def boom(*args: object, **kw: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_scenes, "render", boom)
    with pytest.raises(RuntimeError):
        synthetic.generate(out, seed=2, height=32, width=64, n_source=1, n_target_train=1, n_target_val=1)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["embedded"]


# ----------------------------------------------------------------------------------------------------
# the project's loaders read the output like real data


def test_project_loaders_read_the_benchmark(tiny: tuple[Path, dict]) -> None:
    from uplr.data.datasets import build_dataset

    out, _ = tiny
    src = build_dataset("gta5", out / "source", split=str(out / "source" / "all.txt"), strict=True)
    val = build_dataset("cityscapes", out / "target", split=str(out / "target" / "val.txt"), strict=True)
    assert len(src) == 4 and len(val) == 3
    for ds, lab_path in ((src, out / "source" / "labels" / "00001.png"), (val, val.label_path(0))):
        assert ds.read_image(0).size == (64, 32)
        expected = ID_TO_TRAIN[np.asarray(Image.open(lab_path))]
        np.testing.assert_array_equal(ds.read_label(0), expected.astype(np.uint8))
