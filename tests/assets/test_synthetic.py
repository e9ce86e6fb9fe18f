"""The synthetic source must be exact: stored depth, masks, gravity and 3D boxes agree with the geometry that
rendered them, to within the depth codec's precision. These are the ground truths every later stage is tested on."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from assets.geometry import (
    GravityFrame,
    box2d_from_mask,
    box_corners_cam,
    depth_to_points,
    points_in_box,
    project,
)
from assets.storage import decode_depth_png, decode_mask_png, directory_digest, read_scenes
from assets.synthetic import (
    CATEGORIES,
    STAGE,
    SyntheticConfig,
    render_scene,
    scene_rng,
    write_synthetic_shard,
)

SHARD = "synthetic-000"
CONFIG = SyntheticConfig(num_scenes=24, seed=7)
SMALL = SyntheticConfig(num_scenes=3, seed=7)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("data")
    report = write_synthetic_shard(root, SHARD, CONFIG)
    directory = root / STAGE / SHARD
    return root, directory, report, read_scenes(directory / "scenes.jsonl")


@pytest.fixture(scope="module")
def small_digest(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("small")
    write_synthetic_shard(root, SHARD, SMALL)
    return directory_digest(root / STAGE / SHARD)


def _load(root: Path, scene):
    depth = decode_depth_png(root / scene.depth_file)
    mask = decode_mask_png(root / scene.mask_file)
    return depth, mask


def test_report_and_layout(shard):
    root, directory, report, scenes = shard
    assert len(scenes) == CONFIG.num_scenes == report.num_out
    assert report.rejections == []
    meta = report.metadata
    assert meta["scenes"] == len(scenes)
    assert meta["objects"] == sum(len(s.objects) for s in scenes)
    assert meta["categories"] == dict(Counter(o.category for s in scenes for o in s.objects))
    assert meta["digest"] == directory_digest(directory)
    assert (directory / "_manifest.json").exists()
    assert (
        directory / "rejected.jsonl"
    ).read_text() == ""  # the one rule: always there, empty = none rejected
    for scene in scenes:
        assert scene.has_ground_truth_3d and scene.source == "synthetic"
        assert scene.image_file == f"{STAGE}/{SHARD}/images/{scene.scene_id}.jpg"
        for rel in (scene.image_file, scene.depth_file, scene.mask_file):
            assert not Path(rel).is_absolute() and (root / rel).is_file()
    assert [s.scene_id for s in scenes] == [f"{SHARD}-{i:04d}" for i in range(CONFIG.num_scenes)]
    assert not list(directory.parent.glob(f".{SHARD}.tmp-*"))


def test_stored_depth_matches_analytic_hits_and_floor_plane(shard):
    root, _, _, scenes = shard
    for scene in scenes[:4]:
        rendered = render_scene(CONFIG, SHARD, int(scene.metadata["index"]))
        depth, _ = _load(root, scene)
        assert np.isfinite(depth).all(), "a closed room gives every pixel a depth"
        stored = depth_to_points(depth, scene.intrinsics)
        exact = depth_to_points(rendered.depth, scene.intrinsics)
        error = np.linalg.norm(stored - exact, axis=-1)
        assert (error <= 1e-4 * exact[..., 2] + 1e-6).all(), f"codec error {error.max():.2e} m"

        # Everything lies inside the room, as seen through the camera pose.
        world = exact.reshape(-1, 3) @ rendered.cam_to_world[:3, :3].T + rendered.cam_to_world[:3, 3]
        size = np.asarray(rendered.room_size)
        assert (world >= -1e-3).all() and (world <= size + 1e-3).all()

        # The floor (world z = 0, found through the pose) is where the record alone puts it: at height
        # -camera_height along up = -gravity_cam, and at the depth of the analytic ray/plane intersection.
        floor = (world[:, 2] < 1e-4).reshape(depth.shape)
        assert floor.mean() > 0.05
        frame = GravityFrame.from_gravity(scene.gravity_cam)
        camera_height = float(scene.metadata["camera_height_m"])
        heights = frame.to_grav(stored)[..., 2]
        assert heights.min() >= -camera_height - 1e-3, "nothing is below the floor"
        assert np.abs(heights[floor] + camera_height).max() < 1e-3
        rays = depth_to_points(np.ones_like(depth), scene.intrinsics)
        plane_depth = -camera_height / (rays @ frame.up)
        assert (np.abs(depth[floor] - plane_depth[floor]) < 1e-4 * plane_depth[floor]).all()


def test_projected_3d_boxes_enclose_2d_boxes(shard):
    _, _, _, scenes = shard
    checked = 0
    for scene in scenes:
        frame = GravityFrame.from_gravity(scene.gravity_cam)
        for obj in scene.objects:
            corners = box_corners_cam(obj.box3d, frame)
            assert corners[:, 2].min() > 0
            uv = project(corners, scene.intrinsics)
            box = obj.box2d
            assert box.x0 >= uv[:, 0].min() - 1 and box.x1 <= uv[:, 0].max() + 1
            assert box.y0 >= uv[:, 1].min() - 1 and box.y1 <= uv[:, 1].max() + 1
            checked += 1
    assert checked > 50


def test_mask_points_lie_in_gravity_aligned_boxes(shard):
    root, _, _, scenes = shard
    for scene in scenes[:8]:
        depth, mask = _load(root, scene)
        points = depth_to_points(depth, scene.intrinsics)
        frame = GravityFrame.from_gravity(scene.gravity_cam)
        camera_height = float(scene.metadata["camera_height_m"])
        assert set(np.unique(mask)) <= {0} | {o.instance_id for o in scene.objects}
        bottoms = []
        for obj in scene.objects:
            pixels = mask == obj.instance_id
            assert pixels.sum() == obj.num_pixels >= CONFIG.min_visible_pixels
            assert box2d_from_mask(pixels) == obj.box2d
            assert 0.0 < obj.visible_fraction <= 1.0
            inside = points_in_box(points[pixels], obj.box3d, frame, tol=0.01)
            assert inside.all(), f"{obj.category}: {np.mean(~inside):.1%} of its points outside its box"
            # The box's vertical axis is `up` = -gravity.
            corners = box_corners_cam(obj.box3d, frame)
            vertical = corners[1] - corners[0]  # corner order: z sign varies fastest
            assert np.allclose(vertical / np.linalg.norm(vertical), -np.asarray(scene.gravity_cam), atol=1e-9)
            bottoms.append(frame.to_grav(np.asarray(obj.box3d.center_cam))[2] - obj.box3d.height / 2)
        bottoms = np.asarray(bottoms)
        assert (bottoms >= -camera_height - 1e-6).all(), "objects never sink into the floor"
        if scene.metadata["kind"] == "indoor":
            assert np.isclose(bottoms, -camera_height, atol=1e-6).any(), "some furniture stands on the floor"


def test_objects_stand_on_what_supports_them(shard):
    _, _, _, scenes = shard
    resting = 0
    for scene in scenes:
        frame = GravityFrame.from_gravity(scene.gravity_cam)
        floor = -float(scene.metadata["camera_height_m"])
        up = {o.instance_id: frame.to_grav(np.asarray(o.box3d.center_cam))[2] for o in scene.objects}
        tops = [up[o.instance_id] + o.box3d.height / 2 for o in scene.objects]
        for obj in scene.objects:
            bottom = up[obj.instance_id] - obj.box3d.height / 2
            if abs(bottom - floor) > 1e-6 and any(abs(bottom - top) < 1e-6 for top in tops):
                resting += 1
    assert resting >= 10, "small objects rest exactly on table/desk/cabinet tops"


def test_camera_has_pitch_roll_and_plausible_fov(shard):
    _, _, _, scenes = shard
    tilted = rolled = 0
    for scene in scenes:
        gravity = np.asarray(scene.gravity_cam)
        angle = math.degrees(math.acos(np.clip(gravity @ np.array([0.0, 1.0, 0.0]), -1, 1)))
        tilted += angle > 3.0
        rolled += abs(gravity[0]) > math.sin(math.radians(0.4))
        k = scene.intrinsics
        hfov = math.degrees(2 * math.atan(k.width / 2 / k.fx))
        assert 50.0 <= hfov <= 75.0
        assert k.width == k.height == CONFIG.image_size
    assert tilted >= 0.9 * len(scenes)
    assert rolled >= 0.9 * len(scenes)


def test_fronts_are_horizontal_and_along_the_length_axis(shard):
    root, _, _, scenes = shard
    fronted = 0
    for scene in scenes:
        for obj in scene.objects:
            category = CATEGORIES[obj.category]
            yaw = obj.box3d.yaw
            if not category.has_front:
                assert obj.front_grav is None
                # Width is the horizontal extent more nearly parallel to the image plane.
                assert abs(math.sin(yaw)) >= abs(math.cos(yaw)) - 1e-9
                continue
            fronted += 1
            front = np.asarray(obj.front_grav)
            assert abs(front[2]) < 1e-9 and np.isclose(np.linalg.norm(front), 1.0)
            assert np.allclose(front[:2], [math.cos(yaw), math.sin(yaw)], atol=1e-9)
    assert fronted > 10
    # Widths and lengths follow the facing direction: a sofa is wider than deep, a tv much wider than thick.
    for scene in scenes:
        for obj in scene.objects:
            if obj.category in {"sofa", "tv", "monitor", "bookshelf", "keyboard"}:
                assert obj.box3d.width > obj.box3d.length, obj.category


def test_chair_backs_are_behind_their_front(shard):
    """The backrest (the highest part of a chair) lies on the opposite side of `front_grav`."""
    root, _, _, scenes = shard
    checked = 0
    for scene in scenes:
        chairs = [o for o in scene.objects if o.category == "chair"]
        if not chairs:
            continue
        depth, mask = _load(root, scene)
        frame = GravityFrame.from_gravity(scene.gravity_cam)
        points = frame.to_grav(depth_to_points(depth, scene.intrinsics))
        for chair in chairs:
            grav = points[mask == chair.instance_id]
            center = frame.to_grav(np.asarray(chair.box3d.center_cam))
            high = grav[grav[:, 2] > center[2] + 0.3 * chair.box3d.height]
            if len(high) < 30:
                continue
            along = (high[:, :2] - center[:2]) @ np.asarray(chair.front_grav)[:2]
            assert np.median(along) < -0.1 * chair.box3d.length
            checked += 1
    assert checked >= 2


def test_plausible_metric_sizes(shard):
    _, _, _, scenes = shard
    limits = {
        "chair": (0.75, 1.0),
        "table": (0.7, 0.8),
        "cup": (0.07, 0.12),
        "bottle": (0.2, 0.36),
        "sofa": (0.7, 0.92),
        "desk": (0.7, 0.78),
        "bookshelf": (1.1, 2.05),
        "laptop": (0.15, 0.28),
    }
    seen = set()
    for scene in scenes:
        for obj in scene.objects:
            if obj.category in limits:
                low, high = limits[obj.category]
                assert low <= obj.box3d.height <= high, (obj.category, obj.box3d.height)
                seen.add(obj.category)
            assert max(obj.box3d.size) < 2.5
    assert len(seen) >= 4


def test_categories_repeats_and_captions(shard):
    _, _, _, scenes = shard
    categories = Counter(o.category for s in scenes for o in s.objects)
    assert len(categories) >= 15, sorted(categories)
    repeated = [s for s in scenes if max(Counter(o.category for o in s.objects).values()) >= 2]
    assert len(repeated) >= len(scenes) // 3
    assert any(s.metadata["kind"] == "tabletop" for s in scenes)
    assert any(s.metadata["kind"] == "indoor" for s in scenes)
    for scene in scenes:
        assert scene.caption.endswith(".") and scene.caption.count(".") == 1
        for obj in scene.objects:
            assert obj.category in scene.caption or CATEGORIES[obj.category].plural in scene.caption
        assert len({o.instance_id for o in scene.objects}) == len(scene.objects)


def test_bytes_per_scene(shard):
    _, directory, _, scenes = shard
    for scene in scenes:
        image = (directory / "images" / f"{scene.scene_id}.jpg").stat().st_size
        depth = (directory / "depth" / f"{scene.scene_id}.png").stat().st_size
        assert image + depth <= 300_000, (scene.scene_id, image, depth)


def test_same_seed_same_bytes_different_shard_or_seed_differs(tmp_path, small_digest):
    write_synthetic_shard(tmp_path / "a", SHARD, SMALL)
    assert directory_digest(tmp_path / "a" / STAGE / SHARD) == small_digest
    write_synthetic_shard(tmp_path / "b", "synthetic-001", SMALL)
    assert directory_digest(tmp_path / "b" / STAGE / "synthetic-001") != small_digest
    other_seed = SyntheticConfig(num_scenes=1, seed=8)
    assert not np.array_equal(render_scene(other_seed, SHARD, 0).rgb, render_scene(SMALL, SHARD, 0).rgb)
    # The per-scene stream is a stable hash, not Python's salted hash().
    assert scene_rng(7, SHARD, 0).integers(1 << 30) == scene_rng(7, SHARD, 0).integers(1 << 30)


def test_sigkill_mid_write_leaves_no_visible_shard(tmp_path, small_digest):
    root = tmp_path / "data"
    script = (
        "from pathlib import Path\n"
        "from assets.synthetic import SyntheticConfig, write_synthetic_shard\n"
        f"write_synthetic_shard(Path({str(root)!r}), {SHARD!r}, SyntheticConfig(num_scenes=500, seed=7))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env)
    parent = root / STAGE
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if len(list(parent.glob(f".{SHARD}.tmp-*/images/*.jpg"))) >= 2:
                break
            assert proc.poll() is None, "the writer ended before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("the writer produced no images in time")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (parent / SHARD).exists(), "a killed write must not leave a visible shard"
    assert list(parent.glob(f".{SHARD}.tmp-*")), "only the hidden temp directory remains"

    write_synthetic_shard(root, SHARD, SMALL)
    assert not list(parent.glob(f".{SHARD}.tmp-*")), "the next write cleans up"
    assert directory_digest(parent / SHARD) == small_digest


def test_bad_input_is_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="shard name"):
        write_synthetic_shard(tmp_path, "../escape", SMALL)
    with pytest.raises(ValueError, match="objects_per_scene"):
        SyntheticConfig(objects_per_scene=(5, 2))
    with pytest.raises(ValueError):
        SyntheticConfig(image_size=224)
    assert not (tmp_path / STAGE).exists()
