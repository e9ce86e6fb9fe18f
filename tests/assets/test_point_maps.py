import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from assets.filtering import filter_shard
from assets.geometry import depth_to_points
from assets.point_maps import PointMapEstimate, PointMapEstimator, point_maps_shard
from assets.records import Intrinsics
from assets.stage import ShardFailure
from assets.storage import atomic_write_bytes, encode_depth_png, load_point_map, read_jsonl, read_scenes
from tests.assets.scene_fixtures import intrinsics, living_room, write_source_shard


class RenderedDepthEstimator:
    """Stands in for MoGe-2: returns the exact point map of the rendered scene (optionally damaged), with
    intrinsics that differ from the source's so the test sees which ones were stored."""

    def __init__(self, depth: np.ndarray, nan_fraction: float = 0.0):
        self.intrinsics = intrinsics(focal=70.0)
        self.points = depth_to_points(depth, self.intrinsics).astype(np.float32)
        self.nan_columns = round(nan_fraction * depth.shape[1])
        self.calls = 0

    def estimate(self, rgb: np.ndarray) -> PointMapEstimate:
        self.calls += 1
        points = self.points.copy()
        points[:, : self.nan_columns] = np.nan
        valid = np.ones(points.shape[:2], dtype=bool)  # claims everything valid; NaN must still be caught
        return PointMapEstimate(points=points, valid=valid, intrinsics=self.intrinsics)


def build(tmp_path, scene_ids, ground_truth=True):
    rendered = [living_room(sid, "s0", with_files=ground_truth) for sid in scene_ids]
    write_source_shard(tmp_path, "s0", rendered)
    filter_shard(tmp_path, "s0")
    return rendered


def reasons(root):
    return {r["item"]: r["reason"] for r in read_jsonl(root / "point_maps/s0/rejected.jsonl")}


def failure_reasons(root, **kwargs) -> dict[str, str]:
    """A shard whose only scene is rejected fails as a whole (assets.stage.check_not_systemic), publishing
    nothing; the failure carries the rejections."""
    with pytest.raises(ShardFailure, match="all 1 items were rejected") as failure:
        point_maps_shard(root, "s0", **kwargs)
    assert not (root / "point_maps/s0").exists()
    return {r.item: r.reason for r in failure.value.rejections}


def test_ground_truth_depth_passes_through_by_reference(tmp_path):
    build(tmp_path, ["a", "b"])
    report = point_maps_shard(tmp_path, "s0")
    scenes = read_scenes(tmp_path / "point_maps/s0/scenes.jsonl")
    assert report.num_out == 2 and not report.rejections
    assert scenes[0].depth_file == "source_images/s0/depth/a.png"
    assert scenes[0].metadata["point_map_source"] == "ground_truth"
    assert scenes[0].metadata["valid_fraction"] == 1.0  # every ray hits the floor or the back wall
    assert not (tmp_path / "point_maps/s0/depth").exists()  # nothing copied
    assert report.preview[0]["point_map_source"] == "ground_truth"
    assert (report.metadata["point_maps_ground_truth"], report.metadata["point_maps_estimated"]) == (2, 0)


def test_bad_ground_truth_depth_is_rejected_with_its_reason(tmp_path):
    rendered = build(tmp_path, ["ok", "wrong-size", "corrupt", "empty"])
    _, _, depth, _ = rendered[0]
    atomic_write_bytes(tmp_path / "source_images/s0/depth/wrong-size.png", encode_depth_png(depth[:, :50]))
    (tmp_path / "source_images/s0/depth/corrupt.png").write_bytes(b"\x89PNG not really")
    # every code 65535 (invalid): the codec itself refuses to write this, but a foreign writer might
    info = PngImagePlugin.PngInfo()
    info.add_text("near", "0.1")
    info.add_text("far", "10.0")
    Image.fromarray(np.full(depth.shape, 65535, np.uint16)).save(
        tmp_path / "source_images/s0/depth/empty.png", pnginfo=info
    )
    report = point_maps_shard(tmp_path, "s0")
    got = reasons(tmp_path)
    assert got["wrong-size"] == "DataError: depth shape mismatch: (72, 50) vs intrinsics (72, 96)"
    assert got["corrupt"].startswith("DataError: unreadable depth: source_images/s0/depth/corrupt.png")
    assert got["empty"].startswith("DataError: no valid depth")
    assert report.num_out == 1 and len(report.rejections) == 3


def test_scene_without_depth_needs_an_estimator(tmp_path):
    build(tmp_path, ["web-0"], ground_truth=False)
    assert failure_reasons(tmp_path)["web-0"].startswith("DataError: no point-map estimator configured")


def test_estimated_point_map_is_stored_with_its_intrinsics(tmp_path):
    rendered = build(tmp_path, ["web-0"], ground_truth=False)
    estimator = RenderedDepthEstimator(rendered[0][2], nan_fraction=0.25)
    assert isinstance(estimator, PointMapEstimator)
    report = point_maps_shard(tmp_path, "s0", estimator=estimator)
    (scene,) = read_scenes(tmp_path / "point_maps/s0/scenes.jsonl")
    assert scene.depth_file == "point_maps/s0/depth/web-0.png"
    assert scene.intrinsics == estimator.intrinsics
    assert scene.metadata["point_map_source"] == "estimated"
    assert scene.metadata["nonfinite_pixels"] == 24 * 72
    assert scene.metadata["valid_fraction"] == pytest.approx(1 - 24 / 96, abs=1e-4)
    points, valid = load_point_map(tmp_path / scene.depth_file, scene.intrinsics)
    assert not valid[:, :24].any() and valid[:, 24:].all()
    np.testing.assert_allclose(points[valid], estimator.points[valid], rtol=2e-4)
    assert report.metadata["estimator"] == "RenderedDepthEstimator"
    assert report.metadata["point_maps_estimated"] == 1


def test_estimate_with_mostly_invalid_depth_is_filtered_like_the_paper(tmp_path):
    rendered = build(tmp_path, ["web-0"], ground_truth=False)
    got = failure_reasons(tmp_path, estimator=RenderedDepthEstimator(rendered[0][2], nan_fraction=0.6))
    assert got["web-0"] == "DataError: too much invalid depth: 0.604 > 0.5"
    relaxed = point_maps_shard(
        tmp_path,
        "s0",
        estimator=RenderedDepthEstimator(rendered[0][2], nan_fraction=0.6),
        max_invalid_depth_fraction=0.7,
    )
    assert relaxed.num_out == 1


def test_all_nan_estimate_is_rejected(tmp_path):
    rendered = build(tmp_path, ["web-0"], ground_truth=False)
    got = failure_reasons(tmp_path, estimator=RenderedDepthEstimator(rendered[0][2], nan_fraction=1.0))
    assert got["web-0"].startswith("DataError: no valid depth")


def test_estimate_of_the_wrong_shape_is_rejected(tmp_path):
    rendered = build(tmp_path, ["web-0"], ground_truth=False)

    class Cropped(RenderedDepthEstimator):
        def estimate(self, rgb):
            est = super().estimate(rgb)
            return PointMapEstimate(
                points=est.points[:10],
                valid=est.valid[:10],
                intrinsics=Intrinsics(**est.intrinsics.model_dump()),
            )

    assert failure_reasons(tmp_path, estimator=Cropped(rendered[0][2]))["web-0"].startswith(
        "DataError: estimate shape mismatch"
    )


def test_ground_truth_3d_scene_without_depth_keeps_its_camera(tmp_path):
    """Omni3D-style scenes: boxes are in the true camera frame, so the estimate must be for that camera."""
    rendered = build(tmp_path, ["omni-0"], ground_truth=False)
    scenes_path = tmp_path / "filtered_images/s0/scenes.jsonl"
    (scene,) = read_scenes(scenes_path)
    scene = scene.model_copy(update={"has_ground_truth_3d": True})
    atomic_write_bytes(scenes_path, (scene.model_dump_json() + "\n").encode())

    plain = RenderedDepthEstimator(rendered[0][2])
    assert "cannot estimate for a known camera" in failure_reasons(tmp_path, estimator=plain)["omni-0"]

    class Calibrated(RenderedDepthEstimator):
        def estimate(self, rgb, known=None):
            self.known = known
            return super().estimate(rgb)

    calibrated = Calibrated(rendered[0][2])
    calibrated.intrinsics = intrinsics(focal=55.0)  # what an uncalibrated guess would have said
    report = point_maps_shard(tmp_path, "s0", estimator=calibrated)
    (out,) = read_scenes(tmp_path / "point_maps/s0/scenes.jsonl")
    assert report.num_out == 1 and calibrated.known == scene.intrinsics
    assert (
        out.intrinsics == scene.intrinsics != calibrated.intrinsics
    )  # the source camera, not the estimator's
