"""The dataset fakes used by the tests: re-exported from :mod:`uplr.data.fake_formats` (their home since
``make reproduce ... SMOKE=1`` writes them too; a make target must not import from tests/)."""

from uplr.data.fake_formats import (  # noqa: F401
    CS_LABEL_IDS,
    GTA5_PALETTE,
    NTHU_LABEL_IDS,
    REAL_SIZES,
    SYNTHIA_IDS,
    make_fake_cityscapes,
    make_fake_gta5,
    make_fake_nthu,
    make_fake_synthia,
    write_palette_png,
    write_synthia_label,
)
