import json

import numpy as np
import pytest

from assets.filtering import FilterConfig, extreme_pixel_fraction, filter_shard, invalid_depth_fraction
from assets.storage import read_jsonl, read_scenes
from tests.assets.scene_fixtures import living_room, write_source_shard


def white_rows(rgb: np.ndarray, fraction: float) -> np.ndarray:
    out = rgb.copy()
    out[: round(fraction * rgb.shape[0])] = 255
    return out


def build_shard(root, variants):
    """variants: scene_id -> function (rgb, depth) -> (rgb, depth)."""
    rendered = []
    for scene_id, change in variants.items():
        scene, rgb, depth, mask = living_room(scene_id, "s0")
        rgb, depth = change(rgb, depth)
        rendered.append((scene, rgb, depth, mask))
    write_source_shard(root, "s0", rendered)


def reasons(root) -> dict[str, str]:
    return {r["item"]: r["reason"] for r in read_jsonl(root / "filtered_images/s0/rejected.jsonl")}


def test_pixel_statistics():
    rgb = np.full((10, 10, 3), 120, np.uint8)
    rgb[:3] = 255
    rgb[3, :5] = 0
    rgb[4, :5] = (0, 0, 40)  # not pure black
    assert extreme_pixel_fraction(rgb, tolerance=0) == pytest.approx(0.35)
    depth = np.ones((4, 5))
    depth[0, :3] = np.nan
    depth[1, 0] = 0.0
    depth[1, 1] = np.inf
    assert invalid_depth_fraction(depth) == pytest.approx(5 / 20)


def test_heuristics_reject_with_reasons_and_keep_the_rest(tmp_path):
    def nan_columns(fraction):
        def change(rgb, depth):
            depth = depth.copy()
            depth[:, : round(fraction * depth.shape[1])] = np.nan
            return rgb, depth

        return change

    build_shard(
        tmp_path,
        {
            "clean": lambda rgb, d: (rgb, d),
            "white-30": lambda rgb, d: (white_rows(rgb, 0.30), d),
            "white-40": lambda rgb, d: (white_rows(rgb, 0.40), d),
            "black-40": lambda rgb, d: (
                np.where(np.arange(72)[:, None, None] < 29, 0, rgb).astype(np.uint8),
                d,
            ),
            "depth-40": nan_columns(0.40),
            "depth-60": nan_columns(0.60),
        },
    )
    report = filter_shard(tmp_path, "s0")
    kept = [s.scene_id for s in read_scenes(tmp_path / "filtered_images/s0/scenes.jsonl")]
    assert kept == ["clean", "white-30", "depth-40"]
    got = reasons(tmp_path)
    assert set(got) == {"white-40", "black-40", "depth-60"}
    for item in ("white-40", "black-40"):  # 29 of 72 rows, less a JPEG-ringing row or two at the edge
        assert got[item].startswith("DataError: too many pure white/black pixels: ")
        assert float(got[item].split(": ")[2].split(" ")[0]) == pytest.approx(29 / 72, abs=0.04)
    assert (
        got["depth-60"] == "DataError: too much invalid depth: 0.604 > 0.5"
    )  # 58 of 96 columns, lossless PNG
    assert (report.num_in, report.num_out, len(report.rejections)) == (6, 3, 3)
    scenes = {s.scene_id: s for s in read_scenes(tmp_path / "filtered_images/s0/scenes.jsonl")}
    assert scenes["white-30"].metadata["extreme_pixel_fraction"] == pytest.approx(21 / 72, abs=0.02)
    assert scenes["depth-40"].metadata["invalid_depth_fraction"] == pytest.approx(38 / 96, abs=1e-3)
    # records point at the source files instead of copying them
    assert scenes["clean"].image_file == "source_images/s0/images/clean.jpg"
    histogram = {row["reason"]: row["count"] for row in report.metadata["rejection_reasons"]}
    assert histogram == {
        "DataError: too many pure white/black pixels": 2,
        "DataError: too much invalid depth": 1,
    }
    manifest = json.loads((tmp_path / "filtered_images/s0/_manifest.json").read_text())
    assert manifest["num_out"] == 3 and manifest["num_rejected"] == 3 and len(manifest["digest"]) == 64
    assert [row["scene_id"] for row in report.preview] == kept


def test_thresholds_come_from_the_config(tmp_path):
    build_shard(
        tmp_path, {"clean": lambda rgb, d: (rgb, d), "white-30": lambda rgb, d: (white_rows(rgb, 0.30), d)}
    )
    report = filter_shard(tmp_path, "s0", FilterConfig(max_extreme_fraction=0.25))
    assert report.num_out == 1 and "white/black" in report.rejections[0].reason
    with pytest.raises(ValueError):
        FilterConfig(max_invalid_depth_fraction=1.5)


def test_corrupt_image_and_malformed_lines_are_rejections_not_crashes(tmp_path):
    build_shard(tmp_path, {"a": lambda rgb, d: (rgb, d), "b": lambda rgb, d: (rgb, d)})
    (tmp_path / "source_images/s0/images/b.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    scenes_path = tmp_path / "source_images/s0/scenes.jsonl"
    lines = scenes_path.read_text().splitlines()
    missing_field = json.loads(lines[0])
    missing_field["scene_id"] = "no-intrinsics"
    del missing_field["intrinsics"]
    lines += ["{not json", json.dumps(missing_field), lines[0]]  # the last one repeats scene "a"
    scenes_path.write_text("\n".join(lines) + "\n\n")
    report = filter_shard(tmp_path, "s0")
    assert report.num_in == 5 and report.num_out == 1
    got = reasons(tmp_path)
    assert got["b"].startswith("DataError: unreadable image: source_images/s0/images/b.jpg: ")
    histogram = {row["reason"]: row["count"] for row in report.metadata["rejection_reasons"]}
    assert histogram["DataError: unreadable image"] == 1
    assert got["line 3"].startswith("DataError: malformed scene record: line 3")
    assert "intrinsics" in got["no-intrinsics"]
    assert got["a"].startswith("DataError: duplicate scene_id")


def test_image_size_must_match_intrinsics(tmp_path):
    build_shard(tmp_path, {"clean": lambda rgb, d: (rgb, d), "small": lambda rgb, d: (rgb[:, :80], d)})
    filter_shard(tmp_path, "s0")
    assert reasons(tmp_path)["small"].startswith("DataError: image size mismatch: 80x72")


def test_model_filters_run_after_the_heuristics_and_record_their_reason(tmp_path):
    build_shard(
        tmp_path,
        {
            "photo": lambda rgb, d: (rgb, d),
            "chart": lambda rgb, d: (rgb, d),
            "white": lambda rgb, d: (white_rows(rgb, 0.5), d),
        },
    )
    seen = []

    def clip_filter(rgb, scene):
        seen.append(scene.scene_id)
        return scene.scene_id != "chart", "top tags: bar chart, diagram, plot"

    class VLMFilter:
        def __call__(self, rgb, scene):
            return True, "has spatial content"

    report = filter_shard(tmp_path, "s0", clip_filter=clip_filter, vlm_filter=VLMFilter())
    assert seen == ["photo", "chart"]  # the white image never reached the (expensive) model filter
    assert reasons(tmp_path)["chart"] == "DataError: clip filter: top tags: bar chart, diagram, plot"
    assert report.metadata["clip_filter"] is True and report.num_out == 1


def test_a_failed_run_leaves_the_previous_shard_intact(tmp_path):
    build_shard(tmp_path, {"a": lambda rgb, d: (rgb, d)})
    filter_shard(tmp_path, "s0")
    before = (tmp_path / "filtered_images/s0/scenes.jsonl").read_text()

    def buggy(rgb, scene):
        raise TypeError("a bug, not bad data")

    with pytest.raises(TypeError):
        filter_shard(tmp_path, "s0", clip_filter=buggy)
    assert (tmp_path / "filtered_images/s0/scenes.jsonl").read_text() == before
    assert not list((tmp_path / "filtered_images").glob(".s0.tmp-*"))


def test_missing_upstream_shard_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize the upstream stage"):
        filter_shard(tmp_path, "nope")
