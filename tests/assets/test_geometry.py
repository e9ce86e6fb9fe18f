import numpy as np
import pytest

from assets.geometry import (
    GravityFrame,
    box2d_from_mask,
    box2d_iou,
    box_corners_cam,
    depth_to_points,
    extents_overlap,
    pixel_rays,
    points_in_box,
    project,
)
from assets.records import Box2D, Box3D, Intrinsics


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def test_level_camera_gravity_frame_matches_conventions():
    frame = GravityFrame.from_gravity((0.0, 1.0, 0.0))  # camera level: gravity = image down (+y)
    np.testing.assert_allclose(frame.up, [0, -1, 0])
    np.testing.assert_allclose(frame.forward, [0, 0, 1])
    np.testing.assert_allclose(frame.right, [1, 0, 0])  # right = forward x up = camera x
    # a point 1 m to the camera's right, 2 m ahead, 0.5 m above the optical axis
    np.testing.assert_allclose(frame.to_grav([1.0, -0.5, 2.0]), [1.0, 2.0, 0.5])


def test_pitched_camera_forward_is_horizontal_and_frame_right_handed():
    gravity = rot_x(-20) @ np.array([0.0, 1.0, 0.0])  # camera pitched down by 20 degrees
    frame = GravityFrame.from_gravity(gravity)
    assert abs(frame.forward @ frame.up) < 1e-12
    np.testing.assert_allclose(np.cross(frame.right, frame.forward), frame.up, atol=1e-12)
    np.testing.assert_allclose(frame.to_cam(frame.to_grav([[0.3, 0.1, 2.0]])), [[0.3, 0.1, 2.0]], atol=1e-12)


def test_straight_down_camera_has_no_gravity_frame():
    with pytest.raises(ValueError, match="straight up or down"):
        GravityFrame.from_gravity((0.0, 0.05, 1.0))


def test_box_corners_respect_yaw_and_extents():
    frame = GravityFrame.from_gravity((0.0, 1.0, 0.0))
    box = Box3D(center_cam=(0.0, 0.0, 3.0), width=0.4, height=1.0, length=2.0, yaw=np.pi / 2)
    corners = frame.to_grav(box_corners_cam(box, frame))
    span = corners.max(axis=0) - corners.min(axis=0)
    # yaw = 90 deg puts the length axis along forward, width along right
    np.testing.assert_allclose(span, [0.4, 2.0, 1.0], atol=1e-9)
    inside = points_in_box(np.array([[0.19, 0.0, 3.9], [0.21, 0.0, 3.0]]), box, frame)
    assert inside.tolist() == [True, False]


def test_depth_to_points_and_projection_round_trip():
    K = Intrinsics(fx=100, fy=110, cx=32, cy=24, width=64, height=48)
    depth = np.full((48, 64), 2.5)
    depth[0, 0] = 0.0
    points = depth_to_points(depth, K)
    assert np.isnan(points[0, 0]).all()
    uv = project(points[10, 20][None], K)[0]
    np.testing.assert_allclose(uv, [20.5, 10.5])
    np.testing.assert_allclose(pixel_rays(K)[..., 2], 1.0)


def test_mask_box_and_iou():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:9] = True
    box = box2d_from_mask(mask)
    assert box.as_list() == [3, 2, 9, 5]
    assert box2d_from_mask(np.zeros((4, 4), bool)) is None
    assert box2d_iou(box, Box2D(x0=3, y0=2, x1=6, y1=5)) == pytest.approx(0.5)


def test_extent_overlap_decides_ambiguity():
    frame = GravityFrame.from_gravity((0.0, 1.0, 0.0))
    a = Box3D(center_cam=(-0.5, 0, 3), width=0.4, height=0.4, length=0.4, yaw=0)
    b = Box3D(center_cam=(0.5, 0, 3.1), width=0.4, height=0.4, length=0.4, yaw=0)
    assert not extents_overlap(a, b, frame, "right")
    assert extents_overlap(a, b, frame, "forward")
    assert extents_overlap(a, b, frame, "up")


def test_fast_helpers_are_bit_identical_to_the_reference_ones():
    """The QA hot path uses the *_fast variants; QA answers must not depend on which one ran."""
    from assets.geometry import box_corners_grav, box_corners_grav_fast, gravity_frame_fast

    rng = np.random.default_rng(3)
    for _ in range(500):
        gravity = rot_x(rng.uniform(-60, 60)) @ np.array([np.sin(rng.uniform(-0.2, 0.2)), 1.0, 0.0])
        gravity /= np.linalg.norm(gravity)
        slow, fast = GravityFrame.from_gravity(gravity), gravity_frame_fast(gravity)
        assert np.array_equal(slow.cam_to_grav, fast.cam_to_grav)
        box = Box3D(
            center_cam=tuple(rng.uniform(-3, 3, 3) + [0, 0, 4]),
            width=rng.uniform(0.1, 2),
            height=rng.uniform(0.1, 2),
            length=rng.uniform(0.1, 2),
            yaw=rng.uniform(-np.pi, np.pi),
        )
        assert np.array_equal(box_corners_grav(box, slow), box_corners_grav_fast(box, slow))
