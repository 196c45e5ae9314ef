"""Label tables typed from LABEL_ENCODINGS.md (tests/fixtures/), independently of uplr's own LUTs."""

# SYNTHIA "id->Cityscapes trainId"
SPEC_SYNTHIA = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12, 8: 13,
                18: 14, 19: 15, 20: 16, 12: 17, 11: 18}
# NTHU: labelId -> 13-class id, and the equivalent Cityscapes trainIds
SPEC_NTHU_13 = {7: 0, 8: 1, 11: 2, 19: 3, 20: 4, 21: 5, 23: 6, 24: 7, 25: 8, 26: 9, 28: 10, 32: 11, 33: 12}
NTHU_LABELIDS = set(SPEC_NTHU_13)
NTHU_TRAINIDS = (0, 1, 2, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)
