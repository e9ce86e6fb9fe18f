import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from assets.records import Intrinsics
from assets.storage import (
    DEPTH_INVALID,
    atomic_dir,
    atomic_write_json,
    decode_depth_png,
    decode_mask_png,
    directory_digest,
    encode_depth_png,
    encode_mask_png,
    load_point_map,
    load_rgb,
)


def test_depth_codec_is_log_encoded_and_accurate(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 40.0, size=(32, 48)).astype(np.float32)
    depth[3, 4] = np.nan
    depth[5, 6] = 0.0
    depth[7, 8] = np.inf
    data = encode_depth_png(depth, near=0.1, far=100.0)
    decoded = decode_depth_png(data)
    valid = np.isfinite(depth) & (depth > 0)
    rel = np.abs(decoded[valid] - depth[valid]) / depth[valid]
    assert rel.max() < np.log(1000) / 65533  # within one code step
    assert np.isnan(decoded[3, 4]) and np.isnan(decoded[5, 6]) and np.isposinf(decoded[7, 8])
    # the stored codes follow the official formula depth = near^(1-t) * far^t, t = (v - 1) / 65533
    import io

    from PIL import Image

    codes = np.asarray(Image.open(io.BytesIO(data)))
    assert codes.dtype == np.uint16 and codes[3, 4] == DEPTH_INVALID == 0 and codes[7, 8] == 65535
    t = (codes[0, 0] - 1) / 65533
    assert 0.1 ** (1 - t) * 100.0**t == pytest.approx(depth[0, 0], rel=1e-4)


def test_legacy_codec_is_read_only_on_request():
    """Shards written before the switch (t = v / 65535, 65535 invalid, no marker) decode with codec="legacy-v0"."""
    import io

    from PIL import Image, PngImagePlugin

    codes = np.array([[0, 32768, 65534, 65535]], dtype=np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add_text("near", "0.5")
    info.add_text("far", "8.0")
    buf = io.BytesIO()
    Image.fromarray(codes).save(buf, format="PNG", pnginfo=info)
    legacy = decode_depth_png(buf.getvalue(), codec="legacy-v0")
    np.testing.assert_allclose(
        legacy[0, :3],
        [
            0.5,
            0.5 ** (1 - 32768 / 65535) * 8.0 ** (32768 / 65535),
            0.5 ** (1 / 65535) * 8.0 ** (65534 / 65535),
        ],
        rtol=1e-6,
    )
    assert np.isnan(legacy[0, 3])
    official = decode_depth_png(buf.getvalue())  # no marker: the official convention
    assert np.isnan(official[0, 0]) and np.isposinf(official[0, 3])


def test_point_map_reconstructs_xyz(tmp_path):
    K = Intrinsics(fx=50, fy=50, cx=16, cy=16, width=32, height=32)
    depth = np.full((32, 32), 2.0, np.float32)
    path = tmp_path / "d.png"
    path.write_bytes(encode_depth_png(depth))
    points, valid = load_point_map(path, K)
    assert valid.all()
    np.testing.assert_allclose(points[16, 16], [0.5 / 50 * 2, 0.5 / 50 * 2, 2.0], rtol=1e-4)


def test_all_invalid_depth_is_rejected():
    with pytest.raises(ValueError, match="no valid pixel"):
        encode_depth_png(np.full((4, 4), np.nan))


def test_mask_round_trip_and_corrupt_image(tmp_path):
    ids = np.arange(64, dtype=np.uint8).reshape(8, 8) % 5
    np.testing.assert_array_equal(decode_mask_png(encode_mask_png(ids)), ids)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="unreadable image"):
        load_rgb(bad)


def test_atomic_dir_swaps_whole_and_cleans_up_on_error(tmp_path):
    final = tmp_path / "stage" / "shard-000"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (final / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (final / "a.txt").read_text() == "one"
    assert sorted(p.name for p in final.parent.iterdir()) == ["shard-000"]
    with atomic_dir(final) as tmp:
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]  # replaced whole, no mixing


def test_sigkill_mid_write_leaves_no_visible_shard(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from assets.storage import atomic_dir
        with atomic_dir(Path({str(tmp_path)!r}) / "qa" / "s0") as tmp:
            (tmp / "part.bin").write_bytes(b"x" * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert not (tmp_path / "qa" / "s0").exists()
    with atomic_dir(tmp_path / "qa" / "s0") as tmp:  # the retry clears the leftover temp dir
        (tmp / "ok").write_text("done")
    assert [p.name for p in (tmp_path / "qa").iterdir()] == ["s0"]


def test_digest_ignores_manifest_and_sees_content(tmp_path):
    (tmp_path / "x").write_text("1")
    d1 = directory_digest(tmp_path)
    atomic_write_json(tmp_path / "_manifest.json", {"digest": d1})
    assert directory_digest(tmp_path) == d1
    (tmp_path / "x").write_text("2")
    assert directory_digest(tmp_path) != d1
    assert json.loads((tmp_path / "_manifest.json").read_text())["digest"] == d1
