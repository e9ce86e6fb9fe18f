"""Frames, boxes and projections: the one place where "left", "up" and "width" get their meaning.

Every other module asks this one; see docs/CONVENTIONS.md for the definitions these functions implement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from assets.records import Box2D, Box3D, Intrinsics

# Cameras looking within this angle of straight up/down get no gravity-dependent questions.
MAX_VERTICAL_VIEW_DEG = 80.0


@dataclass(frozen=True)
class GravityFrame:
    """Rotation between the camera frame and the gravity-aligned frame (x right, y forward, z up).

    `cam_to_grav` has the gravity frame's axes as rows expressed in camera coordinates, so
    p_grav = cam_to_grav @ p_cam and p_cam = cam_to_grav.T @ p_grav (both frames share the camera origin).
    """

    cam_to_grav: np.ndarray  # (3, 3)

    @classmethod
    def from_gravity(cls, gravity_cam: np.ndarray | tuple[float, float, float]) -> GravityFrame:
        down = np.asarray(gravity_cam, dtype=np.float64)
        down = down / np.linalg.norm(down)
        up = -down
        optical = np.array([0.0, 0.0, 1.0])
        forward = optical - optical.dot(up) * up
        norm = np.linalg.norm(forward)
        if norm < np.sin(np.deg2rad(90.0 - MAX_VERTICAL_VIEW_DEG)):
            raise ValueError("camera looks (almost) straight up or down: gravity frame undefined")
        forward /= norm
        right = np.cross(forward, up)
        return cls(np.stack([right, forward, up]))

    @property
    def right(self) -> np.ndarray:
        return self.cam_to_grav[0]

    @property
    def forward(self) -> np.ndarray:
        return self.cam_to_grav[1]

    @property
    def up(self) -> np.ndarray:
        return self.cam_to_grav[2]

    def to_grav(self, points_cam: np.ndarray) -> np.ndarray:
        """Map (..., 3) camera-frame points to the gravity frame."""
        return np.asarray(points_cam, dtype=np.float64) @ self.cam_to_grav.T

    def to_cam(self, points_grav: np.ndarray) -> np.ndarray:
        return np.asarray(points_grav, dtype=np.float64) @ self.cam_to_grav


_MIN_FORWARD_NORM = np.sin(np.deg2rad(90.0 - MAX_VERTICAL_VIEW_DEG))


def gravity_frame_fast(gravity_cam: np.ndarray | tuple[float, float, float]) -> GravityFrame:
    """`GravityFrame.from_gravity`, bit for bit, for per-scene hot paths: the same float operations in the same
    order (vector norms as sqrt(v . v), which is np.linalg.norm's own formula; the cross product written out term
    by term as np.cross evaluates it), without numpy's per-call overhead on 3-vectors."""
    down = np.asarray(gravity_cam, dtype=np.float64)
    down = down / math.sqrt(down.dot(down))
    up = -down
    optical = np.array([0.0, 0.0, 1.0])
    forward = optical - optical.dot(up) * up
    norm = math.sqrt(forward.dot(forward))
    if norm < _MIN_FORWARD_NORM:
        raise ValueError("camera looks (almost) straight up or down: gravity frame undefined")
    forward /= norm
    f0, f1, f2 = forward.tolist()
    u0, u1, u2 = up.tolist()
    right = [f1 * u2 - f2 * u1, f2 * u0 - f0 * u2, f0 * u1 - f1 * u0]
    return GravityFrame(np.array([right, [f0, f1, f2], [u0, u1, u2]]))


def box_axes_grav(yaw: float) -> np.ndarray:
    """Rows: length axis, width axis, up axis of a gravity-aligned box, in the gravity frame."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def box_corners_grav(box: Box3D, frame: GravityFrame) -> np.ndarray:
    """The 8 corners (8, 3) of a box in the gravity frame."""
    center = frame.to_grav(np.asarray(box.center_cam))
    half = np.array([box.length, box.width, box.height]) / 2.0
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return center + (signs * half) @ box_axes_grav(box.yaw)


_CORNER_SIGNS = np.array(
    [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
)
_CORNER_SIGNS.flags.writeable = False


def box_corners_grav_fast(box: Box3D, frame: GravityFrame) -> np.ndarray:
    """`box_corners_grav`, bit for bit (the same numpy operations on the same operands), for hot loops: the corner
    sign table is built once instead of per call, which is most of the cost for a single box."""
    center = frame.to_grav(np.asarray(box.center_cam))
    half = np.array([box.length, box.width, box.height]) / 2.0
    c, s = float(np.cos(box.yaw)), float(np.sin(box.yaw))  # box_axes_grav's values, as Python floats
    axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return center + (_CORNER_SIGNS * half) @ axes


def box_corners_cam(box: Box3D, frame: GravityFrame) -> np.ndarray:
    return frame.to_cam(box_corners_grav(box, frame))


def points_in_box(points_cam: np.ndarray, box: Box3D, frame: GravityFrame, tol: float = 0.0) -> np.ndarray:
    """Boolean mask of (N, 3) camera-frame points inside the box grown by `tol` meters on every side."""
    local = (frame.to_grav(points_cam) - frame.to_grav(np.asarray(box.center_cam))) @ box_axes_grav(box.yaw).T
    half = np.array([box.length, box.width, box.height]) / 2.0 + tol
    return np.all(np.abs(local) <= half, axis=-1)


def project(points_cam: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Pinhole projection of (N, 3) camera-frame points to (N, 2) pixel (u, v); points must have z > 0."""
    pts = np.asarray(points_cam, dtype=np.float64)
    u = intrinsics.fx * pts[..., 0] / pts[..., 2] + intrinsics.cx
    v = intrinsics.fy * pts[..., 1] / pts[..., 2] + intrinsics.cy
    return np.stack([u, v], axis=-1)


def pixel_rays(intrinsics: Intrinsics) -> np.ndarray:
    """(H, W, 3) camera-frame rays with z = 1 through each pixel center (u + 0.5, v + 0.5)."""
    u = np.arange(intrinsics.width, dtype=np.float64) + 0.5
    v = np.arange(intrinsics.height, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(u, v)
    x = (uu - intrinsics.cx) / intrinsics.fx
    y = (vv - intrinsics.cy) / intrinsics.fy
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def depth_to_points(depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Z-depth map (H, W) to an (H, W, 3) camera-frame point map; invalid depth (<= 0 or non-finite) gives NaN."""
    depth = np.asarray(depth, dtype=np.float64)
    points = pixel_rays(intrinsics) * depth[..., None]
    points[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return points


def box2d_from_mask(mask: np.ndarray) -> Box2D | None:
    """Tight pixel box of a boolean mask, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return Box2D(x0=float(cols[0]), y0=float(rows[0]), x1=float(cols[-1] + 1), y1=float(rows[-1] + 1))


def box2d_iou(a: Box2D, b: Box2D) -> float:
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def extent_along(box: Box3D, frame: GravityFrame, axis_grav: np.ndarray) -> tuple[float, float]:
    """(min, max) of the box's projection on a gravity-frame axis: used for the ambiguity rule."""
    proj = box_corners_grav(box, frame) @ np.asarray(axis_grav, dtype=np.float64)
    return float(proj.min()), float(proj.max())


AXES_GRAV = {
    "right": np.array([1.0, 0.0, 0.0]),
    "forward": np.array([0.0, 1.0, 0.0]),
    "up": np.array([0.0, 0.0, 1.0]),
}


def extents_overlap(a: Box3D, b: Box3D, frame: GravityFrame, axis: str) -> bool:
    """True when the two boxes' extents overlap along a gravity axis: a qualitative relation is then ambiguous."""
    a_min, a_max = extent_along(a, frame, AXES_GRAV[axis])
    b_min, b_max = extent_along(b, frame, AXES_GRAV[axis])
    return a_min < b_max and b_min < a_max
