"""Dataset loaders on real samples (shared fixtures) and on spec-conformant fakes; bad inputs."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import id2label, trainId2label
from fakes import (
    make_fake_cityscapes,
    make_fake_gta5,
    make_fake_nthu,
    make_fake_synthia,
    write_palette_png,
    write_synthia_label,
)
from PIL import Image, ImageFile
from spec_tables import NTHU_LABELIDS, SPEC_SYNTHIA

from uplr.data.datasets import (
    GTA5,
    IMG_MEAN,
    Cityscapes,
    NTHUCrossCity,
    SynthiaRandCityscapes,
    build_dataset,
    denormalize,
)
from uplr.errors import UplrError

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "samples"  # committed (see fixtures/NOTICE.md)

CS_STEM = "frankfurt_000000_000294"
GTA_NAME = "00100370.png"

# independent label mappings (spec tables / cityscapesscripts), not the loader's LUTs


def cs_map(ids: np.ndarray) -> np.ndarray:
    """labelId -> trainId through cityscapesscripts' id2label (ignored and unknown ids -> 255)."""
    out = np.full(ids.shape, 255, dtype=np.int64)
    for v in np.unique(ids):
        lab = id2label.get(int(v))
        if lab is not None and not lab.ignoreInEval:
            out[ids == v] = lab.trainId
    return out


def preprocess(path: Path) -> np.ndarray:
    """ADVENT preprocessing written out: RGB -> BGR, minus the BGR mean, CHW."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    bgr = rgb[:, :, ::-1] - np.array([104.00698793, 116.66876762, 122.67891434])
    return bgr.transpose(2, 0, 1)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ----------------------------------------------------------------------------------------------------
# real samples


@pytest.fixture
def cs_sample(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "cityscapes"
    for sub, suffix in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtFine_labelIds")):
        src = SAMPLES / "cityscapes" / sub / "val" / "frankfurt" / f"{CS_STEM}_{suffix}.png"
        dst = root / sub / "val" / "frankfurt" / src.name
        dst.parent.mkdir(parents=True)
        os.symlink(src, dst)
    lst = tmp_path / "val.txt"
    lst.write_text(f"frankfurt/{CS_STEM}_leftImg8bit.png\n")
    return root, lst


def test_cityscapes_real_sample(cs_sample):
    root, lst = cs_sample
    ds = Cityscapes(root, split=str(lst))
    item = ds[0]
    raw = np.asarray(Image.open(root / "gtFine/val/frankfurt" / f"{CS_STEM}_gtFine_labelIds.png"))
    assert item["label"].dtype == torch.int64 and item["image"].dtype == torch.float32
    np.testing.assert_array_equal(item["label"].numpy(), cs_map(raw))
    assert len(np.unique(item["label"].numpy())) > 5  # a real scene, not all ignore
    img_path = root / "leftImg8bit/val/frankfurt" / f"{CS_STEM}_leftImg8bit.png"
    np.testing.assert_allclose(item["image"].numpy(), preprocess(img_path), atol=1e-4)
    assert item["name"] == f"frankfurt/{CS_STEM}_leftImg8bit.png" and item["index"] == 0
    np.testing.assert_array_equal(ds.read_label(0), cs_map(raw).astype(np.uint8))
    assert ds.image_path(0) == img_path and ds.label_path(0).name.endswith("_gtFine_labelIds.png")


def test_cityscapes_packaged_val_list_is_used(cs_sample):
    root, _ = cs_sample
    # the official val list names 500 frames; only the sample is present -> a clear error, no skipping
    with pytest.raises(UplrError, match=r"499 of 500 .*missing_image: 499"):
        Cityscapes(root, split="val")


@pytest.fixture
def gta_sample(tmp_path: Path) -> Path:
    root = tmp_path / "gta5"
    (root / "labels").mkdir(parents=True)
    src = SAMPLES / "gta5" / "labels" / GTA_NAME
    os.symlink(src, root / "labels" / GTA_NAME)
    w, h = Image.open(src).size
    (root / "images").mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / GTA_NAME)
    (tmp_path / "gta.txt").write_text(GTA_NAME + "\n")
    return root


def test_gta5_real_label_reads_palette_indices(gta_sample, tmp_path):
    ds = GTA5(gta_sample, split=str(tmp_path / "gta.txt"))
    label = ds[0]["label"].numpy()
    src = Image.open(gta_sample / "labels" / GTA_NAME)
    assert src.mode == "P"
    np.testing.assert_array_equal(label, cs_map(np.asarray(src)))
    # the file's own colours agree with the class found for every pixel: indices were read, not RGB
    rgb = np.asarray(src.convert("RGB"))
    present = [t for t in np.unique(label) if t != 255]
    assert {0, 13} <= set(present)  # road and car
    for t in present:
        assert (rgb[label == t] == np.array(trainId2label[int(t)].color)).all(), t


def test_gta5_resize_with_native_label(gta_sample, tmp_path):
    ds = GTA5(gta_sample, split=str(tmp_path / "gta.txt"), size=(128, 64), label_size="native")
    item = ds[0]
    assert item["image"].shape == (3, 64, 128)
    assert item["label"].shape == (256, 512)
    ds2 = GTA5(gta_sample, split=str(tmp_path / "gta.txt"), size=(128, 64))
    lab = ds2[0]["label"].numpy()
    assert lab.shape == (64, 128)
    assert set(np.unique(lab)) <= set(np.unique(item["label"].numpy()))


# ----------------------------------------------------------------------------------------------------
# fakes


def test_gta5_fake(tmp_path):
    lst = make_fake_gta5(tmp_path, n=3)
    ds = GTA5(tmp_path, split=str(lst))
    assert len(ds) == 3 and ds.names == ["00001.png", "00002.png", "00003.png"] and ds.has_labels
    for i in range(3):
        item = ds[i]
        raw = np.asarray(Image.open(tmp_path / "labels" / ds.names[i]))
        np.testing.assert_array_equal(item["label"].numpy(), cs_map(raw))
        np.testing.assert_allclose(
            item["image"].numpy(), preprocess(tmp_path / "images" / ds.names[i]), atol=1e-4
        )
        assert item["image"].shape == (3, 32, 64)


def test_gta5_bare_integer_list_entries(tmp_path):
    make_fake_gta5(tmp_path, n=3)
    lst = tmp_path / "split_x.txt"
    lst.write_text("1\n3\n")
    ds = GTA5(tmp_path, split=str(lst))
    assert ds.names == ["00001.png", "00003.png"]
    assert ds.image_path(1) == tmp_path / "images" / "00003.png"


def test_gta5_license_plate_index_34_is_ignore(tmp_path):
    make_fake_gta5(tmp_path, n=1)
    write_palette_png(tmp_path / "labels/00001.png", np.full((32, 64), 34, dtype=np.uint8))
    assert (GTA5(tmp_path, split=str(tmp_path / "all.txt")).read_label(0) == 255).all()


@pytest.mark.slow
def test_gta5_packaged_list_skips_absent_frames(tmp_path, caplog):
    make_fake_gta5(tmp_path, n=3)
    with caplog.at_level(logging.WARNING):
        ds = GTA5(tmp_path)  # split="all": 24,966 listed
    assert ds.names == ["00001.png", "00002.png", "00003.png"]
    assert len(ds.skipped) == 24963
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "24963 of 24966" in warnings[0].getMessage()


def test_synthia_fake_matches_spec_table(tmp_path):
    lst = make_fake_synthia(tmp_path, n=2)
    ds = SynthiaRandCityscapes(tmp_path, split=str(lst))
    assert ds.names == ["0000000.png", "0000001.png"]
    for i in range(2):
        r = cv2.imread(str(tmp_path / "GT/LABELS" / ds.names[i]), cv2.IMREAD_UNCHANGED)[:, :, 2]
        expected = np.vectorize(lambda v: SPEC_SYNTHIA.get(int(v), 255))(r)
        np.testing.assert_array_equal(ds[i]["label"].numpy(), expected)


def test_synthia_16bit_rgb_read_where_pil_fails(tmp_path):
    make_fake_synthia(tmp_path, n=1)
    ids = np.array([[3, 8, 10, 1], [21, 0, 22, 11]], dtype=np.uint16).repeat(8, 0).repeat(16, 1)  # 16x64
    label = tmp_path / "GT/LABELS/0000000.png"
    write_synthia_label(label, ids, np.random.default_rng(3))
    Image.fromarray(np.zeros((16, 64, 3), dtype=np.uint8)).save(tmp_path / "RGB/0000000.png")
    # PIL gets this file wrong (8-bit RGB of the high bytes): it can't be the loader's method
    pil = np.asarray(Image.open(label))
    assert pil.dtype == np.uint8 and not np.array_equal(pil[:, :, 0], ids)
    ds = SynthiaRandCityscapes(tmp_path, split=str(tmp_path / "all.txt"))
    expected = np.vectorize(lambda v: SPEC_SYNTHIA.get(int(v), 255))(ids)
    np.testing.assert_array_equal(ds.read_label(0), expected)
    assert ds.read_label(0)[0, 0] == 0 and ds.read_label(0)[0, 16] == 13  # road, car


def test_cityscapes_fake_with_resize(tmp_path):
    lst = make_fake_cityscapes(tmp_path, split="val", n=3)
    ds = Cityscapes(tmp_path, split=str(lst), size=(32, 16))
    for i in range(3):
        item = ds[i]
        assert item["image"].shape == (3, 16, 32) and item["label"].shape == (16, 32)
        raw = np.asarray(Image.open(ds.label_path(i)))
        # labels are constant on 4x4 blocks, so a 2x nearest downscale equals the subsampled label
        np.testing.assert_array_equal(item["label"].numpy(), cs_map(raw)[::2, ::2])


def test_cityscapes_explicit_split_folder_entries(tmp_path, monkeypatch):
    make_fake_cityscapes(tmp_path / "cs", split="train", n=2)
    (tmp_path / "mylist").write_text("train/frankfurt/frankfurt_000000_000019_leftImg8bit.png\n")
    monkeypatch.chdir(tmp_path)
    ds = Cityscapes("cs", split="./mylist")  # relative list path: resolved against the cwd
    assert len(ds) == 1 and ds.image_path(0).parts[-3:-1] == ("train", "frankfurt")
    bad = tmp_path / "odd.txt"
    bad.write_text("frankfurt/frankfurt_000000_000019_leftImg8bit.png\n")
    with pytest.raises(UplrError, match="<split>/<city>"):
        Cityscapes("cs", split=str(bad))


def test_nthu_fake_test_split(tmp_path):
    lst = make_fake_nthu(tmp_path, city="Rome", n=2)
    ds = NTHUCrossCity(tmp_path, city="rome", split=str(lst))
    assert ds.city == "Rome" and ds.has_labels
    raw = np.asarray(Image.open(ds.label_path(0)))
    expected = np.where(np.isin(raw, list(NTHU_LABELIDS)), cs_map(raw), 255)
    np.testing.assert_array_equal(ds[0]["label"].numpy(), expected)
    assert {3, 4, 5, 9} & set(np.unique(cs_map(raw)))  # the fake has non-NTHU classes that must vanish
    assert not {3, 4, 5, 9, 14, 16} & set(np.unique(ds[0]["label"].numpy()))


def test_nthu_train_split_has_no_labels(tmp_path):
    lst = make_fake_nthu(tmp_path, city="Tokyo", n=2, split="train")
    ds = build_dataset("nthu", tmp_path, str(lst), city="Tokyo", size=(32, 16))
    assert not ds.has_labels and ds.label_path(0) is None
    item = ds[1]
    assert item["label"].shape == (16, 32) and (item["label"] == 255).all()
    assert ds.read_label(0).shape == (32, 64)


def test_nthu_city_errors(tmp_path):
    make_fake_nthu(tmp_path, city="Rome")
    with pytest.raises(UplrError, match="Taipei"):
        NTHUCrossCity(tmp_path, city="Paris", split="test")
    with pytest.raises(UplrError, match="Tokyo"):
        NTHUCrossCity(tmp_path, city="Tokyo", split="test")  # folder missing
    with pytest.raises(UplrError, match="needs a city"):
        build_dataset("nthu", tmp_path, "test")


def test_denormalize_roundtrip(tmp_path):
    lst = make_fake_gta5(tmp_path, n=1)
    item = GTA5(tmp_path, split=str(lst))[0]
    rgb = np.asarray(Image.open(tmp_path / "images/00001.png"))
    np.testing.assert_array_equal(denormalize(item["image"]), rgb)
    np.testing.assert_array_equal(denormalize(item["image"][None])[0], rgb)
    # the mean really is subtracted in BGR order
    np.testing.assert_allclose(item["image"][0].numpy(), rgb[:, :, 2] - IMG_MEAN[0], atol=1e-4)


def test_build_dataset_names_and_loader(tmp_path):
    lst = make_fake_synthia(tmp_path, n=4)
    ds = build_dataset("synthia", tmp_path, str(lst), size=[32, 16])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 16, 32) and batch["label"].shape == (2, 16, 32)
    with pytest.raises(UplrError, match="gta5, synthia, cityscapes, nthu"):
        build_dataset("mapillary", tmp_path, "all")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "split", "count", "first_image"),
    [
        ("gta5", "all", 24966, "images/00001.png"),
        ("gta5", "split_train", 12403, "images/00001.png"),
        ("gta5", "split_val", 6382, "images/00022.png"),
        ("gta5", "split_test", 6181, "images/00011.png"),
        ("synthia", "all", 9400, "RGB/0000000.png"),
        ("synthia", "split_train", 9000, "RGB/0000000.png"),
        ("synthia", "split_val", 400, "RGB/0009000.png"),
        ("cityscapes", "train", 2975, "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"),
        ("cityscapes", "val", 500, "leftImg8bit/val/frankfurt/frankfurt_000001_007973_leftImg8bit.png"),
        ("nthu", "train", 3200, "Rome/Images/Train/pano_00009_0_0.jpg"),
        ("nthu", "test", 100, "Rome/Images/Test/pano_00368_0_0.jpg"),
    ],
)
def test_packaged_lists_parse_to_real_paths(tmp_path, name, split, count, first_image):
    (tmp_path / "Rome").mkdir()
    ds = build_dataset(name, tmp_path, split, city="Rome", verify=False)
    assert len(ds) == count == len(set(ds.names))
    assert ds.image_path(0) == tmp_path / first_image
    if name == "nthu" and split == "train":
        assert ds.label_path(0) is None
    else:
        assert ds.label_path(0).parent.is_relative_to(tmp_path)


# ----------------------------------------------------------------------------------------------------
# bad inputs


def test_missing_root_names_path_and_layout(tmp_path):
    with pytest.raises(UplrError, match=r"(?s)nowhere.*images/00001.png"):
        GTA5(tmp_path / "nowhere")
    with pytest.raises(UplrError, match="leftImg8bit"):
        build_dataset("cityscapes", tmp_path / "nowhere", "val")


def test_unknown_split_and_bad_options(tmp_path):
    make_fake_gta5(tmp_path)
    with pytest.raises(UplrError, match="split_train"):
        GTA5(tmp_path, split="training")
    with pytest.raises(UplrError, match="does not exist"):
        GTA5(tmp_path, split="no/such/list.txt")
    with pytest.raises(UplrError, match="width, height"):
        GTA5(tmp_path, split=str(tmp_path / "all.txt"), size=(64,))
    with pytest.raises(UplrError, match="label_size"):
        GTA5(tmp_path, split=str(tmp_path / "all.txt"), label_size="full")


def test_missing_file_is_an_error_outside_gta5(tmp_path):
    lst = make_fake_cityscapes(tmp_path, n=3)
    victim = sorted((tmp_path / "gtFine").rglob("*.png"))[1]
    victim.unlink()
    with pytest.raises(UplrError, match=victim.name):
        Cityscapes(tmp_path, split=str(lst))


def test_truncated_image_and_label(tmp_path):
    lst = make_fake_gta5(tmp_path, n=2, size=(128, 64))
    truncate(tmp_path / "images/00001.png")
    truncate(tmp_path / "labels/00002.png")
    ds = GTA5(tmp_path, split=str(lst))  # headers are intact: construction works
    with pytest.raises(UplrError, match=r"images/00001.png.*re-download"):
        ds[0]
    with pytest.raises(UplrError, match=r"labels/00002.png.*re-download"):
        ds[1]


def test_truncated_synthia_label(tmp_path):
    lst = make_fake_synthia(tmp_path, n=1)
    truncate(tmp_path / "GT/LABELS/0000000.png")
    with pytest.raises(UplrError, match=r"0000000.png.*truncated"):
        SynthiaRandCityscapes(tmp_path, split=str(lst)).read_label(0)


def test_not_an_image_is_an_error_even_for_gta5(tmp_path):
    lst = make_fake_gta5(tmp_path, n=2)
    (tmp_path / "labels/00002.png").write_bytes(b"not a png at all")
    with pytest.raises(UplrError, match="00002.png is not a readable image"):
        GTA5(tmp_path, split=str(lst))


@pytest.mark.parametrize(
    ("kind", "value", "pattern"),
    [("gta5", 40, "40"), ("cityscapes", 34, "34"), ("synthia", 23, "23"), ("nthu", 100, "100")],
)
def test_label_value_outside_mapping(tmp_path, kind, value, pattern):
    maker = {
        "gta5": make_fake_gta5,
        "cityscapes": make_fake_cityscapes,
        "synthia": make_fake_synthia,
        "nthu": make_fake_nthu,
    }[kind]
    lst = maker(tmp_path, n=1)
    ds = build_dataset(kind, tmp_path, str(lst), city="Rome")
    path = ds.label_path(0)
    ids = np.full((32, 64), 7, dtype=np.uint8)
    ids[3, 5] = value
    if kind == "gta5":
        write_palette_png(path, ids)
    elif kind == "synthia":
        write_synthia_label(path, ids.astype(np.uint16))
    else:
        Image.fromarray(ids).save(path)
    with pytest.raises(UplrError, match=rf"{path.name}.*outside.*\b{pattern} \(1 px\)"):
        ds[0]


def test_rgb_label_is_a_format_error(tmp_path):
    lst = make_fake_gta5(tmp_path, n=1)
    Image.open(tmp_path / "labels/00001.png").convert("RGB").save(tmp_path / "labels/00001.png")
    with pytest.raises(UplrError, match=r"00001.png has PIL mode 'RGB'"):
        GTA5(tmp_path, split=str(lst)).read_label(0)


def _mismatch_gta5(tmp_path: Path) -> Path:
    lst = make_fake_gta5(tmp_path, n=3)
    write_palette_png(tmp_path / "labels/00002.png", np.zeros((30, 64), dtype=np.uint8))
    return lst


def test_gta5_size_mismatch_skipped_with_one_warning(tmp_path, caplog):
    lst = _mismatch_gta5(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = GTA5(tmp_path, split=str(lst))
    assert ds.names == ["00001.png", "00003.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1 of 3" in warnings[0] and "00002.png" in warnings[0]
    assert "size_mismatch: 1" in warnings[0]


def test_gta5_size_mismatch_strict_is_an_error(tmp_path):
    lst = _mismatch_gta5(tmp_path)
    with pytest.raises(UplrError, match=r"1 of 3.*00002.png is 64x32 but label .*00002.png is 64x30"):
        GTA5(tmp_path, split=str(lst), strict=True)
    (tmp_path / "images/00003.png").unlink()
    with pytest.raises(UplrError, match=r"2 of 3 .*missing_image: 1, size_mismatch: 1"):
        build_dataset("gta5", tmp_path, str(lst), strict=True)


def test_size_check_reads_headers_only(tmp_path, monkeypatch):
    lst = _mismatch_gta5(tmp_path)

    def no_decode(self, *a, **k):
        raise AssertionError("pixels decoded while listing")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    ds = GTA5(tmp_path, split=str(lst))
    assert len(ds) == 2 and len(ds.skipped) == 1


def test_cityscapes_size_mismatch_is_an_error(tmp_path):
    lst = make_fake_cityscapes(tmp_path, n=2)
    label = sorted((tmp_path / "gtFine").rglob("*.png"))[0]
    Image.fromarray(np.zeros((16, 64), dtype=np.uint8)).save(label)
    with pytest.raises(UplrError, match="size_mismatch: 1"):
        Cityscapes(tmp_path, split=str(lst))


def test_fakes_are_deterministic(tmp_path):
    make_fake_gta5(tmp_path / "a", seed=5)
    make_fake_gta5(tmp_path / "b", seed=5)
    make_fake_gta5(tmp_path / "c", seed=6)
    a, b, c = (np.asarray(Image.open(tmp_path / x / "labels/00002.png")) for x in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    shutil.rmtree(tmp_path / "c")


def test_data_file_error_survives_a_dataloader_worker():
    """torch re-builds a worker's exception from one string: the original message is kept, one line."""
    from uplr.data.files import DataFileError
    from uplr.errors import unwrap_worker_message

    wrapped = ("Caught DataFileError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\n    raise DataFileError(...)\n'
               "uplr.data.files.DataFileError: image file a/b.png is unreadable; re-download it\n")
    e = DataFileError(wrapped)
    assert str(e) == "image file a/b.png is unreadable; re-download it (in DataLoader worker process 1)"
    assert e.kind == "unknown" and e.path is None
    assert DataFileError("missing_image", None, "plain").kind == "missing_image"
    assert unwrap_worker_message("not wrapped", "UplrError") == "not wrapped"
