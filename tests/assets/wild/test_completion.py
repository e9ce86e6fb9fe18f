"""What one view hides, completed where the view says how: round footprints, stacked parts, hidden bottoms.

Clouds here are the surfaces a camera at the origin actually sees (back faces culled), in the gravity frame of
a camera pitched 20 degrees down, so the numbers are what the chain meets on a real point map.
"""

import numpy as np
import pytest

from assets.geometry import GravityFrame
from assets.wild.box_scenes import gravity_from_pitch_roll
from assets.wild.geometry import (
    box_from_cloud,
    near_silhouette,
    round_footprint,
    stacked_clusters,
    support_height,
)

GRAVITY = gravity_from_pitch_roll(20, 0)
FRAME = GravityFrame.from_gravity(GRAVITY)


def _visible_cylinder(center_xy, radius, z0, z1, step=0.004, top=True):
    """Points of a vertical cylinder's side and top that face the camera at the origin (gravity frame)."""
    center_xy = np.asarray(center_xy, dtype=np.float64)
    theta = np.arange(0, 2 * np.pi, step / radius)
    heights = np.arange(z0, z1, step)
    t, z = np.meshgrid(theta, heights)
    normal = np.stack([np.cos(t), np.sin(t)], axis=-1)
    side = np.concatenate([center_xy + radius * normal, z[..., None]], axis=-1).reshape(-1, 3)
    facing = (normal.reshape(-1, 2) * -side[:, :2]).sum(axis=1) > 0
    parts = [side[facing]]
    if top and z1 < 0:  # the camera is above the top face
        grid = np.arange(-radius, radius, step)
        gx, gy = np.meshgrid(grid, grid)
        disk = np.stack([gx.ravel(), gy.ravel()], axis=1)
        disk = disk[np.linalg.norm(disk, axis=1) < radius] + center_xy
        parts.append(np.column_stack([disk, np.full(len(disk), z1)]))
    return np.vstack(parts)


def _visible_box(center_xy, yaw, length, width, z0, z1, step=0.01):
    """Points of an upright box's faces that face the camera at the origin (gravity frame)."""
    c, s = np.cos(yaw), np.sin(yaw)
    axes = np.array([[c, s], [-s, c]])  # rows: length axis, width axis
    center = np.asarray(center_xy, dtype=np.float64)
    points = []
    for axis, half, other, other_half in ((0, length / 2, 1, width / 2), (1, width / 2, 0, length / 2)):
        for sign in (-1, 1):
            normal = sign * axes[axis]
            face_center = center + normal * half
            if normal @ -face_center <= 0:
                continue
            u, z = np.meshgrid(np.arange(-other_half, other_half, step), np.arange(z0, z1, step))
            xy = face_center + u.reshape(-1, 1) * axes[other]
            points.append(np.column_stack([xy, z.ravel()]))
    u, v = np.meshgrid(np.arange(-length / 2, length / 2, step), np.arange(-width / 2, width / 2, step))
    top = center + u.reshape(-1, 1) * axes[0] + v.reshape(-1, 1) * axes[1]
    points.append(np.column_stack([top, np.full(len(top), z1)]))
    return np.vstack(points)


@pytest.mark.parametrize("center, radius", [((0.3, 2.0), 0.04), ((-0.8, 3.5), 0.2), ((0.0, 1.2), 0.11)])
def test_a_cylinder_seen_from_the_front_gets_its_whole_footprint(center, radius):
    """Its side only (a vase under a narrower neck): the front half of the circle is all there is to see."""
    grav = _visible_cylinder(center, radius, -1.2, -0.9, top=False)
    circle = round_footprint(grav[:, :2])
    assert circle is not None
    assert np.allclose(circle.center, center, atol=0.01 * radius)
    assert circle.radius == pytest.approx(radius, rel=0.01)
    box = box_from_cloud(FRAME.to_cam(grav), GRAVITY)
    assert box.width == pytest.approx(2 * radius, rel=0.02) and box.length == pytest.approx(
        2 * radius, rel=0.02
    )
    # without completion the box is the visible half: the measured failure this fixes
    half = box_from_cloud(FRAME.to_cam(grav), GRAVITY, round_config=None)
    assert min(half.width, half.length) < 1.2 * radius


@pytest.mark.parametrize("yaw", [0.0, np.pi / 4, 0.3, 1.2])
def test_boxes_are_never_taken_for_cylinders(yaw):
    """A face seen face-on is a line and a box seen corner-on a wedge; their four corners also lie on a circle,
    which is why the silhouette is sampled along its edges, not just at the hull's vertices."""
    grav = _visible_box((0.4, 3.0), yaw, 0.6, 0.4, -1.3, -0.8)
    assert round_footprint(grav[:, :2]) is None
    box = box_from_cloud(FRAME.to_cam(grav), GRAVITY)
    assert sorted([box.length, box.width]) == pytest.approx([0.4, 0.6], rel=0.04)


def test_a_far_box_with_a_sparse_top_is_boxed_along_the_faces_the_camera_saw():
    """At 5 m a top face seen at a grazing angle keeps only a few far points; the smallest rectangle around that
    triangle was 45 degrees off the box (measured on the synthetic scenes)."""
    grav = _visible_box((1.5, 4.9), 1.4, 0.24, 0.235, -0.42, -0.25, step=0.012)
    top = np.isclose(grav[:, 2], -0.25)
    far_top = grav[top][np.argsort(-grav[top][:, 1])[:1]]  # one far point of the top survives
    grav = np.vstack([grav[~top], far_top])
    box = box_from_cloud(FRAME.to_cam(grav), GRAVITY)
    assert np.sin(2 * (box.yaw - 1.4)) == pytest.approx(0.0, abs=0.05)  # an axis of the true box


def test_a_mug_is_boxed_along_its_handle():
    radius = 0.04
    grav = _visible_cylinder((0.2, 1.5), radius, -0.6, -0.5, step=0.002)
    handle_dir = np.array([np.cos(0.9), np.sin(0.9)])  # to the side and a little away: visible
    along = np.linspace(radius, radius + 0.025, 12)
    heights = np.linspace(-0.58, -0.52, 12)
    a, z = np.meshgrid(along, heights)
    handle = np.column_stack([np.array([0.2, 1.5]) + a.reshape(-1, 1) * handle_dir, z.ravel()])
    box = box_from_cloud(FRAME.to_cam(np.vstack([grav, handle])), GRAVITY)
    axis = np.array([np.cos(box.yaw), np.sin(box.yaw)])
    assert abs(axis @ handle_dir) == pytest.approx(1.0, abs=0.01) or abs(axis @ handle_dir) < 0.01
    assert sorted([box.length, box.width]) == pytest.approx([2 * radius, 2 * radius + 0.025], rel=0.05)


def test_near_silhouette_keeps_only_the_camera_side():
    grav = _visible_cylinder((0.0, 2.0), 0.1, -1.0, -0.8)
    silhouette = near_silhouette(grav[:, :2])
    assert len(silhouette) >= 20
    assert (silhouette[:, 1] <= 2.0 + 1e-3).all()  # nothing of the far half of the top disk's rim


def test_parts_stacked_in_plan_rejoin_but_a_leak_beside_does_not():
    top = _visible_cylinder((0.0, 2.5), 0.5, -0.62, -0.58)  # a round table top, camera 0.6 m above it
    pedestal = _visible_cylinder((0.0, 2.5), 0.05, -1.32, -0.75)
    wall = np.column_stack([np.linspace(-1.5, 1.5, 400), np.full(400, 3.05), np.linspace(-1.3, 0.0, 400)])
    grav = np.vstack([top, pedestal, wall])
    labels = np.concatenate([np.zeros(len(top)), np.ones(len(pedestal)), np.full(len(wall), 2)]).astype(int)
    keep = stacked_clusters(FRAME.to_cam(grav), labels, GRAVITY)
    assert keep[labels == 0].all() and keep[labels == 1].all() and not keep[labels == 2].any()


def _floor_map(height=1.4, size=(120, 160), fx=150.0):
    """An (H, W, 3) camera-frame point map of a floor `height` below a camera pitched as GRAVITY says."""
    from assets.geometry import depth_to_points, pixel_rays
    from assets.records import Intrinsics

    k = Intrinsics(fx=fx, fy=fx, cx=size[1] / 2, cy=size[0] / 2, width=size[1], height=size[0])
    rays = FRAME.to_grav(pixel_rays(k))
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(rays[..., 2] < 0, -height / rays[..., 2], np.nan)
    return depth_to_points(depth, k)


def test_a_hidden_bottom_reaches_the_floor_beside_it_and_only_then():
    points = _floor_map()
    valid = np.isfinite(points).all(axis=-1)
    floor = FRAME.to_grav(points[valid])
    center = np.median(floor[:, :2], axis=0)  # somewhere in the middle of the visible floor
    mask = np.zeros(valid.shape, dtype=bool)
    for gap, expected in ((0.015, -1.4), (0.2, None)):
        bowl = _visible_cylinder(center, 0.1, -1.4 + gap, -1.4 + gap + 0.06)
        support = support_height(points, valid, mask, FRAME.to_cam(bowl), GRAVITY)
        if expected is None:
            assert support is None  # 20 cm up: a shelf or a hanging thing, not a hidden foot
        else:
            assert support == pytest.approx(expected, abs=2e-3)
            box = box_from_cloud(FRAME.to_cam(bowl), GRAVITY, support_z=support)
            assert box.height == pytest.approx(0.06 + gap, abs=3e-3)
