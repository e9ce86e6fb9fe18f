"""The geometry chain on scenes with exact answers: oracle masks, exact and degraded point maps."""

import numpy as np
import pytest

from assets.geometry import GravityFrame, depth_to_points
from assets.records import Intrinsics
from assets.stage import DataError
from assets.wild.box_scenes import NoiseConfig, gravity_from_pitch_roll, measure_scene, render_box_scene
from assets.wild.geometry import (
    angle_between_deg,
    box_from_cloud,
    estimate_gravity,
    flying_pixels,
    min_area_rectangle,
    object_cloud,
)

SEEDS = (0, 3, 6)


@pytest.fixture(scope="module")
def scenes():
    return {seed: render_box_scene(seed, width=240, height=180) for seed in SEEDS}


def test_clean_scenes_meet_acceptance(scenes):
    """Acceptance: oracle masks + exact point maps, objects at least 90% visible: centers within 5% of the camera
    distance, sizes within 10%, gravity within 2 degrees."""
    scored = 0
    for seed, scene in scenes.items():
        result = measure_scene(scene, seed, min_visible=0.9)
        assert result.failures == []
        assert result.gravity_error_deg is not None and result.gravity_error_deg < 2.0
        for obj in result.objects:
            assert obj.center_error_pct < 5.0, obj
            assert obj.height_error_pct < 10.0, obj
            assert obj.footprint_error_pct < 10.0, obj
        scored += len(result.objects)
    assert scored >= 6  # the acceptance is not met vacuously


def test_moge_like_noise_keeps_centers_and_gravity(scenes):
    """Under a 3% scale error, 1% depth noise, 2% distortion and focal error and flying pixels, centers stay
    within a scale-error-sized band and gravity within 2 degrees (sizes degrade more: see the benchmark)."""
    centers = []
    for seed, scene in scenes.items():
        result = measure_scene(scene, seed, noise=NoiseConfig(), min_visible=0.9)
        assert result.gravity_error_deg is not None and result.gravity_error_deg < 2.0
        centers += [o.center_error_pct for o in result.objects]
    assert len(centers) >= 6
    assert np.median(centers) < 5.0 and max(centers) < 8.0


def test_dbscan_keeps_the_object_when_the_mask_leaks_onto_the_wall(scenes):
    scene = scenes[0]
    points = depth_to_points(scene.depth, scene.intrinsics)
    valid = np.isfinite(points).all(axis=-1)
    index = int(np.argmax(scene.visible_fraction))
    mask = scene.instance_ids == index + 1
    leaked = mask.copy()
    background_rows = np.flatnonzero((scene.instance_ids == 0).all(axis=1))
    leaked[background_rows[:8]] = True  # a band of far wall / floor pixels, far behind the object
    cloud_clean = object_cloud(points, valid, mask)
    cloud_leaked = object_cloud(points, valid, leaked)
    box = box_from_cloud(cloud_leaked, scene.gravity_cam)
    truth = scene.center_cam(index)
    assert np.linalg.norm(np.asarray(box.center_cam) - truth) / np.linalg.norm(truth) < 0.05
    # no wall or floor point survives: nothing deeper than the object itself
    assert cloud_leaked[:, 2].max() <= cloud_clean[:, 2].max() * 1.01


def test_flying_pixels_are_found_at_depth_edges_only():
    depth = np.full((40, 40), 2.0)
    depth[:, 20:] = 6.0
    selected = np.zeros_like(depth, dtype=bool)
    selected[5:35, 5:21] = True  # the mask takes one column of the far side, as a sloppy edge would
    depth[:, 20] = 4.0  # smeared edge
    flying = flying_pixels(depth, selected)
    assert flying[5:35, 20].all()
    assert not flying[:, :20].any()


def test_gravity_recovered_from_a_floor_and_absent_without_one():
    for pitch, roll in [(10, 0), (25, -4), (35, 5)]:
        gravity = gravity_from_pitch_roll(pitch, roll)
        frame = GravityFrame.from_gravity(gravity)
        K = Intrinsics(fx=150, fy=150, cx=80, cy=60, width=160, height=120)
        from assets.geometry import pixel_rays

        rays = frame.to_grav(pixel_rays(K))
        with np.errstate(divide="ignore"):
            depth = np.where(rays[..., 2] < 0, -1.5 / rays[..., 2], np.nan)
        depth[depth > 30] = np.nan
        points = depth_to_points(depth, K)
        estimate = estimate_gravity(points, np.isfinite(points).all(axis=-1))
        assert estimate is not None
        assert angle_between_deg(estimate.gravity_cam, gravity) < 0.5
        assert estimate.camera_height == pytest.approx(1.5, rel=0.02)
    # a wall facing the camera: no horizontal support plane, so no gravity (never a guess)
    K = Intrinsics(fx=150, fy=150, cx=80, cy=60, width=160, height=120)
    wall = depth_to_points(np.full((120, 160), 3.0), K)
    assert estimate_gravity(wall, np.ones((120, 160), dtype=bool)) is None


def test_min_area_rectangle_is_exact_on_a_rotated_rectangle():
    rng = np.random.default_rng(0)
    local = rng.uniform([-1.5, -0.4], [1.5, 0.4], size=(500, 2))
    local = np.vstack([local, [[-1.5, -0.4], [1.5, -0.4], [1.5, 0.4], [-1.5, 0.4]]])
    angle = 0.6
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = local @ rot.T + [2.0, 5.0]
    found, center, extents = min_area_rectangle(xy)
    assert np.allclose(center, [2.0, 5.0], atol=1e-9)
    if extents[0] < extents[1]:
        extents, found = extents[::-1], found + np.pi / 2
    assert np.allclose(extents, [3.0, 0.8], atol=1e-9)
    assert abs(np.sin(found - angle)) < 1e-9  # same axis up to sign


def _box_cloud(frame, center_grav, axis_angle, extents, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    local = rng.uniform(-0.5, 0.5, size=(n, 3)) * extents
    c, s = np.cos(axis_angle), np.sin(axis_angle)
    axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return frame.to_cam(center_grav + local @ axes)


def test_frontless_box_width_is_the_extent_parallel_to_the_image_plane():
    gravity = gravity_from_pitch_roll(15, 0)
    frame = GravityFrame.from_gravity(gravity)
    # a long bench seen broadside: 2 m along `right`, 0.5 m deep
    cloud = _box_cloud(frame, np.array([0.0, 4.0, -1.0]), 0.1, np.array([2.0, 0.5, 0.45]))
    box = box_from_cloud(cloud, gravity)
    assert box.width == pytest.approx(2.0, rel=0.02)
    assert box.length == pytest.approx(0.5, rel=0.05)
    assert box.height == pytest.approx(0.45, rel=0.05)
    # length axis is the one less parallel to the image plane, pointing away from the camera
    assert np.sin(box.yaw) > 0 and abs(np.cos(box.yaw)) < abs(np.sin(box.yaw))
    assert abs(np.sin(box.yaw - (0.1 + np.pi / 2))) < 0.02  # same axis up to sign
    # the same bench seen end-on: now the 2 m extent is the length
    cloud = _box_cloud(frame, np.array([0.0, 4.0, -1.0]), np.pi / 2 + 0.1, np.array([2.0, 0.5, 0.45]))
    box = box_from_cloud(cloud, gravity)
    assert box.length == pytest.approx(2.0, rel=0.02) and box.width == pytest.approx(0.5, rel=0.05)


def test_box_with_a_front_takes_its_yaw_from_the_front():
    gravity = gravity_from_pitch_roll(15, 0)
    frame = GravityFrame.from_gravity(gravity)
    cloud = _box_cloud(frame, np.array([1.0, 3.0, -1.0]), 0.3, np.array([0.6, 0.9, 0.8]))
    front = (-np.sin(0.3), np.cos(0.3), 0.0)  # facing along the 0.9 m axis
    box = box_from_cloud(cloud, gravity, front_grav=front)
    assert np.isclose(box.yaw, np.arctan2(front[1], front[0]), atol=0.02)
    assert box.length == pytest.approx(0.9, rel=0.03) and box.width == pytest.approx(0.6, rel=0.03)


def test_too_few_points_is_a_data_error():
    points = np.ones((10, 10, 3))
    mask = np.zeros((10, 10), dtype=bool)
    mask[0, :3] = True
    with pytest.raises(DataError, match="valid points"):
        object_cloud(points, np.ones((10, 10), dtype=bool), mask)
    with pytest.raises(DataError, match="disagree"):
        object_cloud(points, np.ones((10, 10), dtype=bool), np.ones((5, 5), dtype=bool))


def test_rendered_scene_is_self_consistent(scenes):
    """The yardstick itself: every pixel of box i back-projects onto box i's true surface, floor pixels lie on the
    floor, and the noise model moves depth by the configured global scale."""
    from assets.geometry import points_in_box
    from assets.records import Box3D
    from assets.wild.box_scenes import degrade_depth

    scene = scenes[3]
    points = depth_to_points(scene.depth, scene.intrinsics)
    for index, spec in enumerate(scene.boxes):
        box = Box3D(
            center_cam=tuple(scene.center_cam(index)),
            width=spec.extent_b,
            height=spec.height,
            length=spec.extent_a,
            yaw=spec.yaw,
        )
        pixels = points[scene.instance_ids == index + 1]
        assert len(pixels) > 0 and points_in_box(pixels, box, scene.frame, tol=1e-6).all()
        assert not points_in_box(points[scene.instance_ids == 0], box, scene.frame, tol=-1e-3).any()
    background = scene.frame.to_grav(points[scene.instance_ids == 0])
    on_floor = np.isclose(background[:, 2], -scene.camera_height, atol=1e-6)
    on_wall = np.isclose(background[:, 1], 9.0, atol=1e-6)
    assert (on_floor | on_wall).all() and on_floor.mean() > 0.1
    degraded, _ = degrade_depth(
        scene.depth,
        scene.intrinsics,
        NoiseConfig(relative_noise=0, distortion=0, flying_pixels=False),
        seed=1,
    )
    assert np.allclose(degraded / scene.depth, degraded.flat[0] / scene.depth.flat[0])
    assert abs(degraded.flat[0] / scene.depth.flat[0] - 1) == pytest.approx(0.03)


def _synthetic_scene_errors(noise: NoiseConfig | None) -> tuple[list, list]:
    """(per-scene results, all scored objects) of the chain with oracle masks on 12 assets.synthetic scenes,
    objects >= 90% visible, the point maps exact (`noise=None`) or degraded."""
    from assets.synthetic import SyntheticConfig, render_scene
    from assets.wild.box_scenes import KnownBox, measure_objects

    config = SyntheticConfig(num_scenes=12)
    results = []
    for index in range(12):
        rendered = render_scene(config, "synthetic-000", index)
        truth = [KnownBox(o.instance_id, o.box3d, o.visible_fraction) for o in rendered.scene.objects]
        results.append(
            measure_objects(
                rendered.depth,
                rendered.scene.intrinsics,
                rendered.instance_mask,
                rendered.scene.gravity_cam,
                truth,
                index,
                noise,
                min_visible=0.9,
            )
        )
    return results, [o for r in results for o in r.objects]


def test_on_the_project_synthetic_scenes_with_oracle_masks():
    """assets.synthetic's indoor/tabletop scenes (furniture of several parts, round objects, things on tables)
    with oracle masks and exact depth, objects >= 90% visible: gravity within 2 degrees everywhere, and the
    chain's completion of what one view hides (round footprints, stacked parts, hidden bottoms) holds the
    acceptance for nearly every object. Measured over 40 scenes: 167 of 179 objects within all three bounds; the
    rest is what no single view shows (a mug's handle behind the mug, a cabinet's depth when neither its top nor a
    side is in view) and plants of two crowns. Before the completion: 63 of 179 failed (vases, bottles, bowls,
    pedestal tables)."""
    results, objects = _synthetic_scene_errors(None)
    for result in results:
        assert result.failures == []
        assert result.gravity_error_deg is not None and result.gravity_error_deg < 2.0
    centers = np.array([o.center_error_pct for o in objects])
    heights = np.array([o.height_error_pct for o in objects])
    footprints = np.array([o.footprint_error_pct for o in objects])
    assert len(objects) >= 45
    assert np.mean(centers < 5.0) >= 0.95
    assert np.mean(heights < 10.0) >= 0.97
    assert np.mean(footprints < 10.0) >= 0.88
    assert np.median(footprints) < 1.0


def test_on_the_project_synthetic_scenes_under_moge_like_noise():
    """The same 12 scenes with point maps degraded like a monocular estimator's (3% scale, 2% focal, 2% smooth
    distortion, 1% correlated depth noise, flying pixels): centres stay within about the scale error and gravity
    within 2 degrees. Measured: centre median 3.0% / p90 4.3%, gravity median 0.48 deg / max 1.04 deg, height
    median 5.2%; footprints degrade more (README, perf/bench_geometry_chain.py)."""
    results, objects = _synthetic_scene_errors(NoiseConfig())
    assert all(r.gravity_error_deg is not None for r in results)
    gravity = [r.gravity_error_deg for r in results]
    centers = [o.center_error_pct for o in objects]
    assert len(objects) >= 45
    assert np.median(centers) < 4.0 and np.percentile(centers, 90) < 6.0
    assert np.median(gravity) < 1.0 and max(gravity) < 2.0
    assert np.median([o.height_error_pct for o in objects]) < 10.0
