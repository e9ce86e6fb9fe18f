"""The depth PNG codec against the official code's own outputs (tests/fixtures/official_hispatial/README.md).

The fixtures were made by running MoGe's `write_depth` / `read_depth` (microsoft/MoGe moge/utils/io.py) and
HiSpatial's `read_depth` (microsoft/HiSpatial hispatial/data/vqa_dataset.py) in a scratch environment."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from assets.storage import DEPTH_CODEC_KEY, decode_depth_png, encode_depth_png, read_depth_codes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official_hispatial"


def _codes(data: bytes) -> tuple[np.ndarray, dict[str, str]]:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img), dict(img.text)


def test_encoder_writes_the_codes_moge_writes_per_pixel():
    depth = np.load(FIXTURES / "codec_input_depth.npy")
    official_codes, official_text = _codes((FIXTURES / "codec_moge_written.png").read_bytes())
    ours, text = _codes(encode_depth_png(depth))
    assert np.isnan(depth).any() and np.isinf(depth).any()  # the fixture exercises both special codes
    np.testing.assert_array_equal(ours, official_codes)
    assert text["near"] == official_text["near"] and text["far"] == official_text["far"]
    assert text[DEPTH_CODEC_KEY] == "moge"


def test_decoder_reads_official_pngs_as_the_official_reader_does():
    for png, expected in [
        ("codec_moge_written.png", "codec_official_decoded.npy"),
        ("codec_special_codes.png", "codec_special_decoded.npy"),
    ]:
        ours = decode_depth_png((FIXTURES / png).read_bytes())
        official = np.load(FIXTURES / expected)
        assert ours.dtype == official.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(official))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(official))
        finite = np.isfinite(official)
        # the official reader computes in float32; ours in float64 rounded once: a few float32 ulps apart at most
        np.testing.assert_allclose(ours[finite], official[finite], rtol=2e-6, atol=0)


def test_special_codes_mean_what_moge_says():
    codes, near, far, codec = read_depth_codes(FIXTURES / "codec_special_codes.png")
    depth = decode_depth_png(FIXTURES / "codec_special_codes.png")
    assert codec == "moge" and (near, far) == (0.5, 20.0)
    assert codes[0, 0] == 0 and np.isnan(depth[0, 0])  # 0 = unknown
    assert codes[1, 2] == 65535 and np.isposinf(depth[1, 2])  # 65535 = infinite
    assert depth[0, 1] == np.float32(0.5) and depth[1, 1] == np.float32(20.0)  # 1 = near, 65534 = far
