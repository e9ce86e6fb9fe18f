"""Fault suite for single bad items (issue 19, findings 3-5): each bad item becomes one rejection with its reason,
the good items of its shard are all produced, and only a cause shared by every item fails a shard.

Images are decoded faithfully (16-bit, float, alpha, palette, CMYK, EXIF orientation; OpenCV's own decoding is
the oracle in tests/fixtures/images/) and bounded in size (downscaled at import, decompression bombs rejected)."""

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assets import stage
from assets.filtering import FilterConfig, filter_shard
from assets.point_maps import point_maps_shard
from assets.sources import coco_shard, images_shard
from assets.stage import DataError
from assets.storage import encode_jpeg, read_jsonl, read_scenes

FIXTURES = Path(__file__).parents[1] / "fixtures" / "images"


def decode_image(*args, **kwargs):
    """Imported per call, so on a checkout without assets.images each test fails on its own."""
    from assets.images import decode_image

    return decode_image(*args, **kwargs)


def to_rgb8(image):
    from assets.images import to_rgb8

    return to_rgb8(image)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(30, 220, (h, w, 3), dtype=np.uint8)


def _rejected(root: Path, stage: str, shard: str) -> dict[str, str]:
    return {r["item"]: r["reason"] for r in read_jsonl(root / stage / shard / "rejected.jsonl")}


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------ finding 3: one bad item


def test_tiny_and_strip_images_are_rejected_for_their_size_and_the_rest_go_on(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_noise(48, 64, i)).save(folder / f"good{i}.jpg")
    Image.fromarray(_noise(1, 1)).save(folder / "pixel.png")
    Image.fromarray(_noise(1, 640)).save(folder / "strip.png")
    root = tmp_path / "data"
    assert images_shard(root, "web", folder).num_out == 4  # decodable: imported, judged by the filter
    report = filter_shard(root, "web")
    assert (report.num_in, report.num_out) == (4, 2)
    assert _rejected(root, "filtered_images", "web") == {
        "web-pixel": "DataError: image too small: 1x1, shorter side < min_image_side 32",
        "web-strip": "DataError: image too small: 640x1, shorter side < min_image_side 32",
    }
    assert filter_shard(root, "web", FilterConfig(min_image_side=1)).num_out == 4  # the minimum is a setting
    with pytest.raises(ValueError, match="min_image_side"):
        FilterConfig(min_image_side=0)


def test_a_model_error_on_one_image_rejects_that_image_only(tmp_path):
    """MoGe-2 raises a RuntimeError on a 1x640 image (its token grid has zero rows) and on a 1x1 one; batched with
    good images of the same shard, only those two are rejected, with the model's own message."""
    from assets.wild.moge import MoGeEstimator

    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_noise(48, 64, i)).save(folder / f"good{i}.jpg")
    Image.fromarray(_noise(1, 640)).save(folder / "strip.png")
    root = tmp_path / "data"
    images_shard(root, "web", folder)
    filter_shard(root, "web", FilterConfig(min_image_side=1))  # let the strip reach the model
    report = point_maps_shard(root, "web", estimator=MoGeEstimator.tiny(num_tokens=16, batch_size=8))
    assert (report.num_in, report.num_out) == (3, 2)
    reason = _rejected(root, "point_maps", "web")["web-strip"]
    assert reason.startswith(
        "DataError: point-map estimator MoGeEstimator failed on this item: RuntimeError: "
    )
    assert {s.scene_id for s in read_scenes(root / "point_maps/web/scenes.jsonl")} == {
        "web-good0",
        "web-good1",
    }


def test_model_errors_are_item_failures_but_bugs_still_raise():
    expected = "MoGe failed on this item: RuntimeError: Input and output sizes"
    with pytest.raises(DataError, match=expected), stage.model_errors("MoGe"):
        raise RuntimeError("Input and output sizes should be greater than 0\nmore detail")
    with pytest.raises(TypeError), stage.model_errors("MoGe"):
        raise TypeError("a bug in our code is not a bad item")


def test_malformed_coco_annotations_are_rejected_alone(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in (1, 2):
        (images / f"{i}.jpg").write_bytes(encode_jpeg(_noise(48, 64, i)))
    ann = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "2.jpg", "width": 64, "height": 48},
            {"file_name": "no-id.jpg"},
        ],
        "categories": [{"id": 7, "name": "chair"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 30]},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": None},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [1, "x", 2, 2]},
            {"id": 4, "image_id": 2, "category_id": 99, "bbox": [1, 1, 20, 20]},
            {"id": 5, "category_id": 7, "bbox": [1, 1, 20, 20]},
            {"id": 6, "image_id": 2, "category_id": 7, "bbox": [2, 2, 30, 30]},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    root = tmp_path / "data"
    report = coco_shard(root, "coco", tmp_path / "ann.json", images)
    assert (report.num_in, report.num_out) == (3, 2)
    got = _rejected(root, "source_images", "coco")
    assert got == {
        "1.jpg/annotation 2": "DataError: malformed bbox: None (expected [x, y, width, height])",
        "2.jpg/annotation 3": "DataError: malformed bbox: [1, 'x', 2, 2] (expected four numbers)",
        "2.jpg/annotation 4": "DataError: unknown category 99",
        "annotation 5": "DataError: annotation without image_id: belongs to no image",
        "no-id.jpg": "DataError: malformed image entry: {'file_name': 'no-id.jpg'} (needs id and file_name)",
    }
    scenes = read_scenes(root / "source_images/coco/scenes.jsonl")
    assert [[a.annotation_id for a in s.annotations_2d] for s in scenes] == [[1], [6]]


def test_names_that_reduce_alike_get_unique_ids_stable_across_runs(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    for i, name in enumerate(["café", "cafè", "caf_", "plain"]):
        Image.fromarray(_noise(40, 40, i)).save(folder / f"{name}.jpg")
    root = tmp_path / "data"
    report = images_shard(root, "web", folder)
    assert report.num_out == 4 and not report.rejections
    ids = {
        s.metadata["original_file"]: s.scene_id for s in read_scenes(root / "source_images/web/scenes.jsonl")
    }
    digest = {n: hashlib.sha256(n.encode()).hexdigest()[:8] for n in ("café", "cafè")}
    assert ids[str(folder / "café.jpg")] == f"web-caf-{digest['café']}"
    assert ids[str(folder / "cafè.jpg")] == f"web-caf-{digest['cafè']}"
    assert ids[str(folder / "plain.jpg")] == "web-plain"
    assert (
        ids[str(folder / "caf_.jpg")] == f"web-caf-{hashlib.sha256(b'caf_').hexdigest()[:8]}"
    )  # strip is lossy too
    Image.fromarray(_noise(40, 40, 9)).save(folder / "cafë.jpg")  # a new colleague does not rename the others
    images_shard(root, "web", folder)
    again = {
        s.metadata["original_file"]: s.scene_id for s in read_scenes(root / "source_images/web/scenes.jsonl")
    }
    assert {k: again[k] for k in ids} == ids and len(set(again.values())) == 5


def test_a_duplicate_coco_image_id_rejects_the_second_entry_not_the_shard(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (images / name).write_bytes(encode_jpeg(_noise(48, 64)))
    ann = {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], "annotations": []}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    root = tmp_path / "data"
    report = coco_shard(root, "coco", tmp_path / "ann.json", images)
    assert report.num_out == 1
    assert _rejected(root, "source_images", "coco")["b.jpg"].startswith(
        "DataError: duplicate scene id coco-1"
    )


def test_corrupt_files_of_one_name_in_two_folders_are_both_quarantined(tmp_path):
    folder = tmp_path / "raw"
    for sub, data in (("a", b"\xff\xd8 first"), ("b", b"\xff\xd8 second")):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "x.jpg").write_bytes(data)
    (folder / "ok.jpg").write_bytes(encode_jpeg(_noise(48, 64)))
    root = tmp_path / "data"
    assert images_shard(root, "web", folder).num_out == 1
    kept = sorted(p.read_bytes() for p in (root / "source_images/web/quarantine").iterdir())
    assert kept == [b"\xff\xd8 first", b"\xff\xd8 second"]


def test_a_shard_whose_every_item_is_rejected_fails_and_keeps_its_previous_version(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(encode_jpeg(_noise(48, 64)))
    root = tmp_path / "data"
    images_shard(root, "web", folder)
    before = (root / "source_images/web/scenes.jsonl").read_text()
    (folder / "a.jpg").write_bytes(b"\xff\xd8 broken")
    (folder / "b.jpg").write_bytes(b"also broken")
    with pytest.raises(stage.ShardFailure, match=r"all 2 items were rejected") as failure:
        images_shard(root, "web", folder)
    message = str(failure.value)
    assert "DataError: unreadable image (2)" in message and "a.jpg: DataError: unreadable image" in message
    assert len(failure.value.rejections) == 2
    assert (root / "source_images/web/scenes.jsonl").read_text() == before  # the good version stays visible


# ------------------------------------------------------------------------------ finding 4: faithful decoding


def test_16_bit_and_exif_decoding_matches_opencv():
    oracle = json.loads((FIXTURES / "opencv_decoded.json").read_text())
    assert oracle["source"].startswith("opencv-python 5.0.0")
    for name in ("grey16.png", "grey16.tif", "rgb16.png"):
        decoded = decode_image((FIXTURES / name).read_bytes())
        np.testing.assert_array_equal(
            decoded.rgb, np.array(oracle["images"][name], dtype=np.uint8), err_msg=name
        )
    upright = decode_image((FIXTURES / "exif6.jpg").read_bytes())
    expected = np.array(oracle["images"]["exif6.jpg"], dtype=np.uint8)
    assert upright.rgb.shape == expected.shape == (48, 32, 3) and upright.exif_applied
    assert np.abs(upright.rgb.astype(int) - expected).max() <= 3
    stored = decode_image((FIXTURES / "exif6.jpg").read_bytes(), apply_exif=False)
    assert stored.rgb.shape == (32, 48, 3)


def test_a_16_bit_grey_png_is_imported_at_its_own_brightness(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    grey = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    Image.fromarray(grey).save(folder / "grey16.png")
    root = tmp_path / "data"
    images_shard(root, "web", folder)
    (scene,) = read_scenes(root / "source_images/web/scenes.jsonl")
    rgb = np.asarray(Image.open(root / scene.image_file).convert("RGB")).astype(float)
    assert abs(rgb.mean() - (grey >> 8).mean()) < 2  # was 251 of 255: 98% of pixels white
    assert (rgb >= 253).all(axis=-1).mean() < 0.05
    assert scene.metadata["original_mode"] == "I;16"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.fromarray(np.array([[0, 30000, 65535, 70000, -5]], dtype=np.int32)), [0, 117, 255, 255, 0]),
        (Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)), [0, 128, 255]),
        (Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32)), [0, 100, 255]),
        (Image.fromarray(np.array([[-1.0, 0.0, 3.0]], dtype=np.float32)), [0, 64, 255]),
    ],
)
def test_integer_and_float_images_keep_their_range(image, expected):
    rgb = to_rgb8(image)
    assert rgb[0, :, 0].tolist() == expected and (rgb[..., 0] == rgb[..., 2]).all()


def test_transparency_is_composited_over_white_and_cmyk_converted():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0] = [(200, 10, 10, 255), (0, 0, 0, 0), (0, 0, 0, 128)]  # opaque red, transparent, half-black
    assert to_rgb8(Image.fromarray(rgba, "RGBA"))[0].tolist() == [
        [200, 10, 10],
        [255, 255, 255],
        [127, 127, 127],
    ]
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    assert to_rgb8(la)[0, :, 0].tolist() == [200, 255, 127]
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    palette.putpalette([10, 20, 30, 40, 50, 60])
    palette.info["transparency"] = 1
    assert to_rgb8(palette)[0].tolist() == [[10, 20, 30], [255, 255, 255]]
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # pure red ink
    assert to_rgb8(cmyk)[0, 0].tolist() == [255, 0, 0]


# ------------------------------------------------------------------------------ finding 5: bounded size


def test_large_images_are_downscaled_at_import_with_their_original_size_kept(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "big.jpg").write_bytes(encode_jpeg(_noise(1500, 2400)))
    (folder / "small.jpg").write_bytes(encode_jpeg(_noise(48, 64)))
    root = tmp_path / "data"
    images_shard(root, "web", folder, max_image_side=600)
    big, small = read_scenes(root / "source_images/web/scenes.jsonl")
    assert (big.intrinsics.width, big.intrinsics.height) == (600, 375)
    assert Image.open(root / big.image_file).size == (600, 375)
    assert (
        big.metadata["original_width"],
        big.metadata["original_height"],
        big.metadata["import_scale"],
    ) == (2400, 1500, 0.25)
    assert (small.intrinsics.width, small.metadata["original_width"]) == (
        64,
        64,
    ) and "import_scale" not in small.metadata


def test_coco_boxes_follow_the_downscale(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "1.png").write_bytes(_png(_noise(400, 800)))
    ann = {
        "images": [{"id": 1, "file_name": "1.png", "width": 800, "height": 400}],
        "categories": [{"id": 7, "name": "chair"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [100, 40, 200, 120]}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    coco_shard(tmp_path / "data", "coco", tmp_path / "ann.json", images, max_image_side=200)
    (scene,) = read_scenes(tmp_path / "data/source_images/coco/scenes.jsonl")
    assert (scene.intrinsics.width, scene.intrinsics.height) == (200, 100)
    assert scene.annotations_2d[0].box2d.as_list() == [25.0, 10.0, 75.0, 40.0]


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_decompression_bombs_are_rejected_from_their_header(tmp_path):
    bomb = _png_header_only(30000, 30000)  # 900 MP in a 60-byte file
    with pytest.raises(DataError, match="image too large to decode"):
        decode_image(bomb)
    with pytest.raises(DataError, match=r"image too large to decode: 64x48 = 0 MP > 0 MP"):
        decode_image(_png(_noise(48, 64)), max_pixels=1000)
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(bomb)
    (folder / "ok.jpg").write_bytes(encode_jpeg(_noise(48, 64)))
    root = tmp_path / "data"
    report = images_shard(root, "web", folder)
    assert report.num_out == 1
    assert _rejected(root, "source_images", "web")[str(folder / "bomb.png")].startswith(
        "DataError: image too large to decode (decompression-bomb guard): bomb.png: "
    )
    assert (root / "source_images/web/quarantine/bomb.png").read_bytes() == bomb
