"""Label tables against the spec (shared/fixtures/LABEL_ENCODINGS.md), transcribed here independently."""

from __future__ import annotations

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label, trainId2label
from spec_tables import NTHU_TRAINIDS, SPEC_NTHU_13, SPEC_SYNTHIA

from uplr.data import labels as L
from uplr.errors import UplrError

# LABEL_ENCODINGS.md, "labelId->trainId (AdaptSegNet/ADVENT/BDL info.json label2train)"
SPEC_LABELID_TO_TRAINID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
SPEC_NAMES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)


def test_labelid_lut_matches_spec_table():
    lut = L.labelid_to_trainid_lut()
    assert lut.dtype == np.uint8 and lut.shape == (256,)
    expected = np.full(256, 255, dtype=np.uint8)
    for lid, tid in SPEC_LABELID_TO_TRAINID.items():
        expected[lid] = tid
    np.testing.assert_array_equal(lut, expected)


def test_lut_is_a_copy():
    lut = L.labelid_to_trainid_lut()
    lut[7] = 99
    assert L.labelid_to_trainid_lut()[7] == 0


def test_class_names_and_palette_follow_cityscapesscripts():
    assert L.CLASSES_19 == SPEC_NAMES
    assert len(L.PALETTE) == 19
    for tid, color in enumerate(L.PALETTE):
        assert color == trainId2label[tid].color
    assert L.PALETTE[0] == (128, 64, 128)  # road


def test_trainid_to_labelid_inverts_the_lut():
    inv = L.trainid_to_labelid()
    lut = L.labelid_to_trainid_lut()
    for tid in range(19):
        assert lut[inv[tid]] == tid
        assert id2label[int(inv[tid])].trainId == tid
    assert inv[255] == 0


def test_colorize():
    img = L.colorize(np.array([[0, 13], [255, 18]], dtype=np.uint8))
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert tuple(img[0, 1]) == id2label[26].color  # car
    assert tuple(img[1, 0]) == (0, 0, 0)


def test_subsets():
    assert L.subset("19") == tuple(range(19))
    s16 = L.subset("16")
    assert len(s16) == 16 and not {9, 14, 16} & set(s16)
    s13 = L.subset("13")
    assert set(s13) == set(s16) - {3, 4, 5} and len(s13) == 13
    assert L.subset("nthu13") == NTHU_TRAINIDS
    # the NTHU classes by name are exactly the 13 in the spec
    assert {L.CLASSES_19[t] for t in L.subset("nthu13")} == {id2label[lid].name for lid in SPEC_NTHU_13}
    for name, ids in L.SUBSETS.items():
        assert list(ids) == sorted(set(ids)), name


def test_unknown_subset_is_an_error_listing_valid_ones():
    with pytest.raises(UplrError, match="nthu13"):
        L.subset("17")


def test_synthia_lut_matches_spec():
    lut = L.synthia_to_trainid_lut()
    expected = np.full(256, 255, dtype=np.uint8)
    for sid, tid in SPEC_SYNTHIA.items():
        expected[sid] = tid
    np.testing.assert_array_equal(lut, expected)
    for void in (0, 13, 14, 22):
        assert lut[void] == 255
    assert len(L.SYNTHIA_CLASSES) == 23 and L.SYNTHIA_MAX_ID == 22


def test_synthia_16_contiguous_table_is_consistent():
    """The spec's contiguous 16-id SYNTHIA table equals the 19-space map restricted to subset '16'."""
    spec16 = {
        3: 0,
        4: 1,
        2: 2,
        21: 3,
        5: 4,
        7: 5,
        15: 6,
        9: 7,
        6: 8,
        1: 9,
        10: 10,
        17: 11,
        8: 12,
        19: 13,
        12: 14,
        11: 15,
    }
    lut = L.synthia_to_trainid_lut()
    s16 = L.subset("16")
    for sid, c16 in spec16.items():
        assert s16.index(int(lut[sid])) == c16


def test_nthu_lut_keeps_only_the_13_classes():
    lut = L.nthu_labelid_to_trainid_lut()
    expected = np.full(256, 255, dtype=np.uint8)
    for lid, c13 in SPEC_NTHU_13.items():
        expected[lid] = NTHU_TRAINIDS[c13]
    np.testing.assert_array_equal(lut, expected)
    # wall, fence, pole, terrain, truck, train are dropped even though they are Cityscapes classes
    for lid in (12, 13, 17, 22, 27, 31):
        assert lut[lid] == 255
