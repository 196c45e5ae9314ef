"""``check_dataset``: a clean pass on good fakes, and each kind of bad file caught and named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fakes import (
    make_fake_cityscapes,
    make_fake_gta5,
    make_fake_nthu,
    make_fake_synthia,
    write_palette_png,
    write_synthia_label,
)
from PIL import Image

from uplr.data.check import check_dataset
from uplr.errors import UplrError

MAKERS = {
    "gta5": make_fake_gta5,
    "synthia": make_fake_synthia,
    "cityscapes": make_fake_cityscapes,
    "nthu": make_fake_nthu,
}


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("name", list(MAKERS))
def test_clean_pass_on_good_fakes(tmp_path, name):
    lst = MAKERS[name](tmp_path, n=3)
    report = check_dataset(name, tmp_path, str(lst), city="Rome")
    assert report.ok and report.listed == 3 and report.n_ok == 3 and report.by_kind == {}
    assert not report.skipped
    assert report.format().endswith("OK")


def test_nthu_train_without_labels_passes(tmp_path):
    lst = make_fake_nthu(tmp_path, city="Rio", split="train")
    assert check_dataset("nthu", tmp_path, str(lst), city="Rio").ok


def test_each_kind_of_problem_is_found_and_named(tmp_path):
    lst = make_fake_cityscapes(tmp_path, n=7, size=(128, 64))
    images = sorted((tmp_path / "leftImg8bit").rglob("*.png"))
    labels = sorted((tmp_path / "gtFine").rglob("*.png"))
    images[0].unlink()  # missing_image
    labels[1].unlink()  # missing_label
    truncate(images[2])  # unreadable_image
    truncate(labels[3])  # unreadable_label
    Image.fromarray(np.zeros((60, 128), dtype=np.uint8)).save(labels[4])  # size_mismatch
    bad = np.full((64, 128), 7, dtype=np.uint8)
    bad[0, 0] = 200
    Image.fromarray(bad).save(labels[5])  # bad_label_values
    Image.fromarray(np.zeros((64, 128, 3), dtype=np.uint8)).save(labels[6])  # bad_label_format (RGB)

    report = check_dataset("cityscapes", tmp_path, str(lst))
    assert not report.ok
    assert report.by_kind == {
        "missing_image": 1,
        "missing_label": 1,
        "unreadable_image": 1,
        "unreadable_label": 1,
        "size_mismatch": 1,
        "bad_label_values": 1,
        "bad_label_format": 1,
    }
    assert report.listed == 7 and report.n_ok == 0
    by_kind = {p.kind: p for p in report.problems}
    assert by_kind["missing_image"].path == images[0]
    assert by_kind["missing_label"].path == labels[1]
    assert by_kind["unreadable_image"].path == images[2]
    assert by_kind["unreadable_label"].path == labels[3]
    assert (
        by_kind["bad_label_values"].path == labels[5] and "200 (1 px)" in by_kind["bad_label_values"].detail
    )
    text = report.format()
    for f in (images[0], labels[1], images[2], labels[3], labels[4], labels[5], labels[6]):
        assert f.name in text
    assert "fix: " in text and "re-download" in text and "expected layout" in text


def test_headers_only_mode_misses_truncation_but_not_missing_files(tmp_path):
    lst = make_fake_gta5(tmp_path, n=3, size=(128, 64))
    truncate(tmp_path / "images/00001.png")
    (tmp_path / "labels/00003.png").unlink()
    quick = check_dataset("gta5", tmp_path, str(lst), full=False, strict=True)
    assert quick.by_kind == {"missing_label": 1}
    full = check_dataset("gta5", tmp_path, str(lst), full=True, strict=True)
    assert full.by_kind == {"missing_label": 1, "unreadable_image": 1}
    assert full.n_ok == 1


def test_gta5_known_unusable_frames_are_skipped_unless_strict(tmp_path):
    lst = make_fake_gta5(tmp_path, n=4)
    write_palette_png(tmp_path / "labels/00002.png", np.zeros((31, 64), dtype=np.uint8))
    (tmp_path / "images/00004.png").unlink()
    report = check_dataset("gta5", tmp_path, str(lst))
    assert report.ok and [p.name for p in report.skipped] == ["00002.png", "00004.png"]
    assert report.n_ok == 2 and "skipped 2 known-unusable GTA5 frames" in report.format()
    strict = check_dataset("gta5", tmp_path, str(lst), strict=True)
    assert not strict.ok and strict.by_kind == {"missing_image": 1, "size_mismatch": 1}
    # corrupt values are never "known unusable"
    write_palette_png(tmp_path / "labels/00001.png", np.full((32, 64), 99, dtype=np.uint8))
    assert check_dataset("gta5", tmp_path, str(lst)).by_kind == {"bad_label_values": 1}


def test_gta5_more_unusable_than_known_is_a_problem(tmp_path):
    make_fake_gta5(tmp_path, n=3)
    lst = tmp_path / "long.txt"
    lst.write_text("".join(f"{k}\n" for k in range(1, 31)))  # 30 listed, 27 absent (> 25 known)
    report = check_dataset("gta5", tmp_path, str(lst), full=False)
    assert not report.ok and report.by_kind == {"incomplete": 1} and len(report.skipped) == 27
    assert report.n_ok == 3


def test_synthia_wrong_channel_values_are_caught(tmp_path):
    lst = make_fake_synthia(tmp_path, n=2)
    ids = np.full((32, 64), 30, dtype=np.uint16)  # R channel holds an id SYNTHIA doesn't have
    write_synthia_label(tmp_path / "GT/LABELS/0000001.png", ids)
    report = check_dataset("synthia", tmp_path, str(lst))
    assert report.by_kind == {"bad_label_values": 1} and report.problems[0].name == "0000001.png"


def test_missing_root_and_unknown_dataset_raise(tmp_path):
    with pytest.raises(UplrError, match="does not exist"):
        check_dataset("cityscapes", tmp_path / "absent", "val")
    with pytest.raises(UplrError, match="valid datasets"):
        check_dataset("kitti", tmp_path, "val")


def test_exit_status_tells_complete_skipped_and_broken_apart(tmp_path):
    lst = make_fake_gta5(tmp_path, n=3)
    assert check_dataset("gta5", tmp_path, str(lst)).exit_status == 0
    (tmp_path / "images/00002.png").unlink()
    report = check_dataset("gta5", tmp_path, str(lst))
    assert report.ok and report.exit_status == 3 and "OK with 1 of 3 frames skipped" in report.format()
    assert check_dataset("gta5", tmp_path, str(lst), strict=True).exit_status == 1
