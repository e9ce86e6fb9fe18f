"""Hand-built scenes for the QA tests: random gravity-aligned boxes seen by a pitched/rolled camera, with a mix of
textual and box-fallback references, plus a smooth point map. Built from the shared geometry, not from the QA code.
"""

from __future__ import annotations

import numpy as np

from assets.geometry import GravityFrame, box_corners_cam, depth_to_points, project
from assets.records import Box2D, Box3D, Intrinsics, Scene, SceneObject

CATEGORIES = ("chair", "table", "lamp", "sofa", "cup", "monitor", "plant", "bottle", "cabinet", "bed")
FRONTED = {"chair", "sofa", "monitor", "cabinet", "bed"}
INTRINSICS = Intrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)


def rotation(pitch_deg: float, roll_deg: float) -> np.ndarray:
    p, r = np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx


def make_scene(
    seed: int,
    n_objects: int = 6,
    pitch_deg: float | None = None,
    roll_deg: float | None = None,
    gravity: bool = True,
    scene_id: str | None = None,
    box_fallback_share: float = 0.4,
) -> Scene:
    rng = np.random.default_rng(seed)
    pitch = rng.uniform(-25, 10) if pitch_deg is None else pitch_deg
    roll = rng.uniform(-8, 8) if roll_deg is None else roll_deg
    gravity_cam = rotation(pitch, roll) @ np.array([0.0, 1.0, 0.0])
    frame = GravityFrame.from_gravity(gravity_cam)
    objects = []
    for i in range(n_objects):
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        center_grav = np.array([rng.uniform(-2.5, 2.5), rng.uniform(1.5, 7.0), rng.uniform(-1.4, 0.6)])
        yaw = float(rng.uniform(-np.pi, np.pi))
        box = Box3D(
            center_cam=tuple(float(c) for c in frame.to_cam(center_grav)),
            width=float(rng.uniform(0.15, 1.6)),
            height=float(rng.uniform(0.15, 1.6)),
            length=float(rng.uniform(0.15, 1.6)),
            yaw=yaw,
        )
        corners = box_corners_cam(box, frame)
        uv = project(corners, INTRINSICS)
        x0, y0 = np.clip(uv.min(axis=0), 0, [639, 479])
        x1, y1 = np.clip(uv.max(axis=0), [x0 + 1, y0 + 1], [640, 480])
        front = (float(np.cos(yaw)), float(np.sin(yaw)), 0.0) if category in FRONTED else None
        if rng.random() < box_fallback_share:
            reference, kind = None, None
        else:
            reference, kind = f"the {category} number {i + 1}", "category"
        objects.append(
            SceneObject(
                instance_id=i + 1,
                category=category,
                box2d=Box2D(x0=float(x0), y0=float(y0), x1=float(x1), y1=float(y1)),
                box3d=box,
                front_grav=front,
                reference=reference,
                reference_kind=kind,
                num_pixels=100,
            )
        )
    return Scene(
        scene_id=scene_id or f"scene-{seed:04d}",
        source="handmade",
        shard="test-000",
        intrinsics=INTRINSICS,
        gravity_cam=tuple(float(g) for g in gravity_cam) if gravity else None,
        objects=objects,
        image_file=f"images/scene-{seed:04d}.jpg",
        has_ground_truth_3d=True,
    )


def make_point_map(seed: int, invalid_share: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A smooth depth field (a floor-like ramp plus bumps) with some invalid pixels, as a point map."""
    rng = np.random.default_rng(seed + 1000)
    h, w = INTRINSICS.height, INTRINSICS.width
    v, u = np.mgrid[0:h, 0:w]
    depth = 1.0 + 6.0 * (1.0 - v / h) + 0.8 * np.sin(u / 40.0) * np.cos(v / 30.0) + rng.uniform(0, 0.5)
    depth[rng.random((h, w)) < invalid_share] = np.nan
    points = depth_to_points(depth, INTRINSICS).astype(np.float32)
    return points, np.isfinite(points).all(axis=-1)
