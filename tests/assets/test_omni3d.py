"""Omni3D import against released records, Cube R-CNN's own corners and a real KITTI frame (tests/fixtures/omni3d)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assets.geometry import GravityFrame, box_corners_cam
from assets.omni3d import (
    DepthSpec,
    cuboid_corners,
    is_unavailable,
    omni3d_box,
    omni3d_gravity,
    omni3d_shard,
    triage_annotation,
)
from assets.records import Intrinsics
from assets.stage import DataError, ShardFailure
from assets.storage import decode_depth_png, encode_jpeg, read_scenes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "omni3d"
RECORDS = json.loads((FIXTURES / "sunrgbd_records.json").read_text())["annotations"]
CUBE_RCNN = {
    c["id"]: np.array(c["cube_rcnn_corners"])
    for c in json.loads((FIXTURES / "cube_rcnn_corners.json").read_text())["corners"]
}
KITTI = FIXTURES / "kitti_000008"
# The quoted records come without their image entry: this K is recovered from the sink's own bbox2D_proj (the
# projection of its bbox3D_cam), the size is the smallest round one holding the principal point at its center.
SUNRGBD_K = Intrinsics(fx=1595.175, fy=1595.175, cx=714.547, cy=964.178, width=1440, height=1920)


def _same_corner_set(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:, None] - b[None], axis=-1).min(axis=1).max())


@pytest.mark.parametrize("record", RECORDS, ids=[r["category_name"] for r in RECORDS])
def test_released_corners_follow_cube_rcnn_convention(record):
    """l = dimensions[2] along the box's x axis, w = dimensions[0] along z: the released bbox3D_cam, Cube R-CNN's
    own function and ours agree corner for corner (in Cube R-CNN's vertex order)."""
    ours = cuboid_corners(record["center_cam"], record["dimensions"], np.array(record["R_cam"]))
    assert np.abs(ours - np.array(record["bbox3D_cam"])).max() < 1e-6
    assert np.abs(ours - CUBE_RCNN[record["id"]]).max() < 1e-6
    swapped = cuboid_corners(record["center_cam"], record["dimensions"][::-1], np.array(record["R_cam"]))
    assert np.abs(swapped - np.array(record["bbox3D_cam"])).max() > 0.05  # the old reading is refuted


@pytest.mark.parametrize("record", RECORDS, ids=[r["category_name"] for r in RECORDS])
def test_our_box_has_the_released_corners_and_the_source_width(record):
    R = np.array(record["R_cam"])
    frame = GravityFrame.from_gravity(omni3d_gravity([R]))
    box = omni3d_box(record["center_cam"], record["dimensions"], R, frame)
    assert _same_corner_set(box_corners_cam(box, frame), np.array(record["bbox3D_cam"])) < 1e-5
    w, h, length = record["dimensions"]
    assert (box.width, box.height, box.length) == pytest.approx((w, h, length))


def test_minus_one_markers_are_unavailable_not_numbers():
    assert (
        is_unavailable(-1)
        and is_unavailable(-1.0)
        and is_unavailable([-1, -1, -1, -1])
        and is_unavailable(None)
    )
    assert not is_unavailable(0) and not is_unavailable(0.0) and not is_unavailable([0, 0, 10, 10])
    assert not is_unavailable(False)
    sink, bathtub = RECORDS
    verdict = triage_annotation(sink, SUNRGBD_K)
    assert verdict.reject is None
    assert verdict.box2d.as_list() == pytest.approx(sink["bbox2D_trunc"])  # bbox2D_tight is [-1] * 4
    # visibility -1 is unknown (not "< 0.1"); truncation 0 is known: visible fraction 1
    assert verdict.visible_fraction == 1.0
    # Cube R-CNN ignores depth_error > 0.5: kept as a known object, not asked about
    assert verdict.not_askable == "depth_error 0.68 > 0.5"
    # the bathtub's visible part lies right of the image (Omni3D agrees: its bbox2D_trunc is [-1] * 4)
    assert "not in view" in triage_annotation(bathtub, SUNRGBD_K).reject
    wider = SUNRGBD_K.model_copy(update={"width": 8000})
    behind = triage_annotation(bathtub, wider)
    assert behind.reject is None and "behind_camera" in behind.not_askable
    assert behind.visible_fraction == 1.0  # visibility and truncation both -1


def test_2d_box_preference_tight_then_trunc_then_proj_then_clipped_projection():
    sink = dict(RECORDS[0])
    K = SUNRGBD_K
    assert triage_annotation(sink, K).box2d.as_list() == pytest.approx(sink["bbox2D_trunc"])
    tight = {**sink, "bbox2D_tight": [320.0, 550.0, 800.0, 790.0]}
    assert triage_annotation(tight, K).box2d.as_list() == [320.0, 550.0, 800.0, 790.0]
    only_proj = {**sink, "bbox2D_trunc": [-1, -1, -1, -1]}
    assert triage_annotation(only_proj, K).box2d.as_list() == pytest.approx(sink["bbox2D_proj"])
    # the bathtub's corners straddle the camera plane: its bbox2D_proj is not used, the clipped box is
    wider = K.model_copy(update={"width": 20000, "height": 20000})
    bathtub = triage_annotation(RECORDS[1], wider)
    assert bathtub.box2d.as_list() != pytest.approx(RECORDS[1]["bbox2D_proj"])
    corners = np.array(RECORDS[1]["bbox3D_cam"])
    front = corners[corners[:, 2] > 0.05]
    assert bathtub.box2d.x0 <= (K.fx * front[:, 0] / front[:, 2] + K.cx).min() + 1e-3


def test_invalid_3d_and_out_of_view_annotations_are_rejected_with_reasons():
    sink = RECORDS[0]
    assert "valid3D" in triage_annotation({**sink, "valid3D": False}, SUNRGBD_K).reject
    assert "dimensions" in triage_annotation({**sink, "dimensions": [0.5, -1, 0.4]}, SUNRGBD_K).reject
    far_left = {**sink, "center_cam": [-50.0, 0.0, 2.0], "bbox2D_trunc": [-1] * 4, "bbox2D_proj": [-1] * 4}
    assert "not in view" in triage_annotation(far_left, SUNRGBD_K).reject


def _kitti_shard(tmp_path: Path, **kwargs):
    return omni3d_shard(
        tmp_path / "data",
        "kitti-000",
        KITTI / "omni3d.json",
        KITTI,
        depth=DepthSpec(encoding="uint16", scale=1 / 256),
        **kwargs,
    )


def test_real_kitti_frame_ingests_every_labelled_car_with_lidar_depth(tmp_path):
    report = _kitti_shard(tmp_path)
    assert report.rejections == [] and report.num_out == 1
    scene = read_scenes(tmp_path / "data/source_images/kitti-000/scenes.jsonl")[0]
    labels = json.loads((KITTI / "omni3d.json").read_text())["annotations"]
    assert len(scene.objects) == len(labels) == 6 and all(o.category == "car" for o in scene.objects)
    assert all(o.askable for o in scene.objects)
    frame = GravityFrame.from_gravity(scene.gravity_cam)
    for obj, label in zip(scene.objects, labels, strict=True):
        assert obj.attributes["source_id"] == str(label["id"])
        w, h, length = label["dimensions"]
        assert (obj.box3d.width, obj.box3d.height, obj.box3d.length) == pytest.approx((w, h, length))
        assert (
            _same_corner_set(box_corners_cam(obj.box3d, frame), CUBE_RCNN[label["id"]]) < 1e-5
        )  # Cube R-CNN computes in float32
    first = scene.objects[0]
    assert first.box3d.width == pytest.approx(1.57) and first.box3d.length == pytest.approx(3.23)
    assert first.visible_fraction == pytest.approx(1 - 0.88)  # KITTI truncation 0.88, visibility unknown
    assert scene.depth_file and scene.metadata["depth_source"] == "sensor"
    assert scene.metadata["depth_density"] == "sparse"
    depth = decode_depth_png(tmp_path / "data" / scene.depth_file)
    raw = np.asarray(Image.open(KITTI / "depth_lidar.png")) / 256.0
    measured = raw > 0
    assert np.array_equal(np.isfinite(depth), measured)
    assert np.allclose(depth[measured], raw[measured], rtol=1e-3)


def test_a_shard_whose_every_image_is_rejected_says_why(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.jpg").write_bytes(encode_jpeg(np.zeros((48, 64, 3), np.uint8) + 90))
    ann = {**RECORDS[0], "image_id": 1, "valid3D": False}
    data = {
        "images": [
            {
                "id": 1,
                "file_path": "a.jpg",
                "width": 64,
                "height": 48,
                "K": [[60.0, 0, 32.0], [0, 60.0, 24.0], [0, 0, 1]],
            }
        ],
        "categories": [],
        "annotations": [ann],
    }
    (tmp_path / "omni.json").write_text(json.dumps(data))
    # Nothing usable at all: the shard fails with the reasons (counted per reason) and publishes nothing, so a
    # previous good version of it would stay in place.
    with pytest.raises(ShardFailure, match=r"(?s)all 1 items were rejected.*valid3D is false"):
        omni3d_shard(tmp_path / "data", "omni-000", tmp_path / "omni.json", images)
    assert not (tmp_path / "data/source_images/omni-000").exists()


def test_rejected_annotations_get_their_own_line(tmp_path):
    labels = json.loads((KITTI / "omni3d.json").read_text())
    labels["annotations"][2]["valid3D"] = False
    (tmp_path / "omni.json").write_text(json.dumps(labels))
    for name in ("image.jpg", "depth_lidar.png"):
        (tmp_path / name).write_bytes((KITTI / name).read_bytes())
    report = omni3d_shard(tmp_path / "data", "k", tmp_path / "omni.json", tmp_path)
    assert report.num_out == 1 and [r.item for r in report.rejections] == ["k-8/8002"]
    assert "valid3D is false (kept as a 2D annotation" in report.rejections[0].reason
    scene = read_scenes(tmp_path / "data/source_images/k/scenes.jsonl")[0]
    assert len(scene.objects) == 5 and scene.depth_file is None
    (kept_2d,) = scene.annotations_2d  # the car is still a labelled instance: references and counts see it
    assert kept_2d.category == "car" and kept_2d.annotation_id == 8002
    assert kept_2d.box2d.as_list() == labels["annotations"][2]["bbox2D_tight"][:2] + [1241.0, 374.0]


def test_depth_encodings_sunrgbd_shift_millimetres_npy_and_ray_distance(tmp_path):
    from assets.omni3d import depth_on_image_grid, read_depth_file

    mm = np.array([[1234, 0], [4000, 65000 >> 3]], dtype=np.uint32)
    stored = (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(
        np.uint16
    )  # the SUN RGB-D toolbox's rotation, inverted
    Image.fromarray(stored).save(tmp_path / "d.png")
    depth = read_depth_file(tmp_path / "d.png", DepthSpec(encoding="sunrgbd", scale=0.001))
    assert depth[0, 0] == pytest.approx(1.234) and np.isnan(depth[0, 1]) and depth[1, 0] == pytest.approx(4.0)
    Image.fromarray(mm.astype(np.uint16)).save(tmp_path / "a.png")
    assert read_depth_file(tmp_path / "a.png", DepthSpec())[1, 0] == pytest.approx(
        4.0
    )  # ARKitScenes / CA-1M mm
    np.save(tmp_path / "r.npy", np.full((4, 6), 2.0))
    ray = read_depth_file(tmp_path / "r.npy", DepthSpec(encoding="npy", scale=1.0, kind="ray"))
    K = Intrinsics(fx=3.0, fy=3.0, cx=3.0, cy=2.0, width=6, height=4)
    z = depth_on_image_grid(ray, np.array([[3.0, 0, 3.0], [0, 3.0, 2.0], [0, 0, 1]]), K, kind="ray")
    x, y = (0.5 - 3.0) / 3.0, (0.5 - 2.0) / 3.0  # pixel (0, 0)'s center
    assert z[0, 0] == pytest.approx(2.0 / np.sqrt(x * x + y * y + 1))  # Hypersim distance -> planar depth
    with pytest.raises(ValueError, match="encoding"):
        DepthSpec(encoding="exr")
    with pytest.raises(DataError, match="missing depth"):
        read_depth_file(tmp_path / "none.png", DepthSpec())


def test_depth_resampled_from_another_resolution_by_nearest_pixel():
    from assets.omni3d import depth_on_image_grid, scaled_K

    K = Intrinsics(fx=100.0, fy=100.0, cx=64.0, cy=48.0, width=128, height=96)
    small = np.arange(64 * 48, dtype=np.float64).reshape(48, 64) + 1
    grid = depth_on_image_grid(small, scaled_K(K, 64, 48), K)
    assert grid.shape == (96, 128)
    assert np.array_equal(grid[::2, ::2], small) and np.array_equal(grid[1::2, 1::2], small)


def test_point_maps_pass_sensor_depth_through_and_never_ask_the_estimator(tmp_path):
    from assets.filtering import filter_shard
    from assets.point_maps import point_maps_shard

    class Refuses:  # an estimator that must not be consulted for a scene with sensor depth
        def estimate(self, rgb, known=None):
            raise AssertionError("MoGe-2 was asked for a scene that has sensor depth")

    _kitti_shard(tmp_path)
    filter_shard(tmp_path / "data", "kitti-000")
    report = point_maps_shard(tmp_path / "data", "kitti-000", estimator=Refuses())
    assert report.num_out == 1 and report.metadata["point_maps_ground_truth"] == 1
    (scene,) = read_scenes(tmp_path / "data/point_maps/kitti-000/scenes.jsonl")
    assert scene.metadata["point_map_source"] == "ground_truth" and scene.depth_file.startswith(
        "source_images/"
    )


def test_hypersim_hdf5_distance_becomes_planar_depth(tmp_path):
    """Hypersim ships `depth_meters` as HDF5 (dataset "dataset"), the distance from the camera center along each
    pixel's ray; DepthSpec(encoding="hdf5", kind="ray") reads it and turns it into z-depth."""
    import h5py

    from assets.omni3d import depth_on_image_grid, read_depth_file, scaled_K

    with h5py.File(tmp_path / "frame.0000.depth_meters.hdf5", "w") as fh:
        fh.create_dataset("dataset", data=np.full((4, 6), 5.0, dtype=np.float16))
    spec = DepthSpec(pattern="{stem}.depth_meters.hdf5", encoding="hdf5", scale=1.0, kind="ray")
    path = spec.path_for(tmp_path, {"id": 3, "file_path": "images/frame.0000.jpg"})
    assert path == tmp_path / "frame.0000.depth_meters.hdf5"
    raw = read_depth_file(path, spec)
    K = Intrinsics(fx=3.0, fy=3.0, cx=3.0, cy=2.0, width=6, height=4)
    z = depth_on_image_grid(raw, scaled_K(K, 6, 4), K, kind=spec.kind)
    x, y = (5.5 - 3.0) / 3.0, (3.5 - 2.0) / 3.0  # pixel (row 3, col 5)
    assert z[3, 5] == pytest.approx(5.0 / np.sqrt(x * x + y * y + 1))
