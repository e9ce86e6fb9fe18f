"""Boxes on a floor with exact answers, a MoGe-like noise model, and the error measurement of the geometry chain.

The geometry chain (assets/wild/geometry.py) claims to recover 3D boxes and gravity from a mask and a point map.
This module makes that claim checkable: it ray-casts gravity-aligned boxes standing on a floor in front of a wall,
seen by a pitched and rolled camera, so every box, mask and the gravity vector are known exactly; degrades the
depth the way a monocular estimator errs (a global scale error, depth-proportional noise, flying pixels at depth
edges, a smooth low-frequency distortion, a focal-length error); and measures box-center error (% of camera
distance), size error (%) and gravity error (degrees). Used by tests/assets/wild/test_geometry.py and
perf/bench_geometry_chain.py.

Only what the camera can see can be recovered: objects are reported with their visible fraction (pixels seen /
pixels they would cover alone on an unbounded sensor), and accuracy is judged on objects with visible_fraction >=
0.9. Boxes are lower than the camera so their top face is in view (a box taller than the camera shows no top and
its depth extent is invisible from any single view).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from assets.geometry import GravityFrame, depth_to_points, pixel_rays
from assets.records import Box3D, Intrinsics
from assets.stage import DataError
from assets.wild.geometry import (
    CloudConfig,
    GravityConfig,
    angle_between_deg,
    box_from_mask,
    estimate_gravity,
)


@dataclass(frozen=True)
class BoxSpec:
    """A box standing on the floor, in the gravity frame: footprint center (x right, y forward), yaw of its
    first footprint axis, extents along (first axis, second axis, up)."""

    x: float
    y: float
    yaw: float
    extent_a: float
    extent_b: float
    height: float


@dataclass
class BoxScene:
    intrinsics: Intrinsics
    gravity_cam: np.ndarray  # (3,) unit, down
    depth: np.ndarray  # (H, W) z-depth, meters
    instance_ids: np.ndarray  # (H, W) uint8, 0 = floor/wall
    boxes: list[BoxSpec]
    visible_fraction: list[float]
    camera_height: float
    frame: GravityFrame = field(init=False)

    def __post_init__(self) -> None:
        self.frame = GravityFrame.from_gravity(self.gravity_cam)

    def center_cam(self, index: int) -> np.ndarray:
        b = self.boxes[index]
        return self.frame.to_cam(np.array([b.x, b.y, -self.camera_height + b.height / 2]))


def gravity_from_pitch_roll(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Gravity in the camera frame for a camera pitched down by `pitch_deg` and rolled by `roll_deg`."""
    p, r = np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
    level = np.array([0.0, np.cos(p), np.sin(p)])  # pitched down: gravity gains a +z (forward) component
    roll = np.array([[np.cos(r), -np.sin(r), 0.0], [np.sin(r), np.cos(r), 0.0], [0.0, 0.0, 1.0]])
    return roll @ level


def _raycast(
    rays_grav: np.ndarray, specs: list[BoxSpec], camera_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit parameter t (rays scaled so t = z-depth) and hit box index (-1: none) for each ray."""
    flat = rays_grav.reshape(-1, 3)
    best_t = np.full(len(flat), np.inf)
    best_id = np.full(len(flat), -1, dtype=np.int64)
    for index, b in enumerate(specs):
        c, s = np.cos(b.yaw), np.sin(b.yaw)
        axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
        origin_local = -np.array([b.x, b.y, -camera_height + b.height / 2]) @ axes.T
        dirs_local = flat @ axes.T
        half = np.array([b.extent_a, b.extent_b, b.height]) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - origin_local) / dirs_local
            t2 = (half - origin_local) / dirs_local
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < best_t)
        best_t[hit] = t_near[hit]
        best_id[hit] = index
    return best_t.reshape(rays_grav.shape[:2]), best_id.reshape(rays_grav.shape[:2])


def render_box_scene(
    seed: int,
    width: int = 320,
    height: int = 240,
    num_boxes: int = 5,
    wall_distance: float = 9.0,
) -> BoxScene:
    """A random scene: 2-5 m camera-to-box distances, pitch 5-30 degrees down, roll +-5 degrees, boxes 0.25-1.2 m
    wide and 0.2-1.0 m tall on a floor 1.3-1.7 m below the camera, a wall behind; 60 degree horizontal FOV."""
    rng = np.random.default_rng(seed)
    fx = width / (2 * np.tan(np.deg2rad(30)))
    intrinsics = Intrinsics(fx=fx, fy=fx, cx=width / 2, cy=height / 2, width=width, height=height)
    gravity = gravity_from_pitch_roll(rng.uniform(5, 30), rng.uniform(-5, 5))
    frame = GravityFrame.from_gravity(gravity)
    camera_height = float(rng.uniform(1.3, 1.7))
    specs: list[BoxSpec] = []
    while len(specs) < num_boxes:
        forward = rng.uniform(2.0, 5.0)
        spec = BoxSpec(
            x=float(rng.uniform(-0.45, 0.45) * forward),
            y=float(forward),
            yaw=float(rng.uniform(0, np.pi)),
            extent_a=float(rng.uniform(0.25, 1.2)),
            extent_b=float(rng.uniform(0.25, 1.2)),
            height=float(rng.uniform(0.2, 1.0)),
        )
        radius = np.hypot(spec.extent_a, spec.extent_b) / 2
        if all(
            np.hypot(spec.x - o.x, spec.y - o.y) > radius + np.hypot(o.extent_a, o.extent_b) / 2
            for o in specs
        ):
            specs.append(spec)

    rays_grav = frame.to_grav(pixel_rays(intrinsics))
    t_box, box_index = _raycast(rays_grav, specs, camera_height)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays_grav[..., 2] < 0, -camera_height / rays_grav[..., 2], np.inf)
        t_wall = np.where(rays_grav[..., 1] > 0, wall_distance / rays_grav[..., 1], np.inf)
    t_background = np.minimum(t_floor, t_wall)
    depth = np.where(t_box < t_background, t_box, t_background)
    ids = np.where(t_box < t_background, box_index + 1, 0).astype(np.uint8)

    # visible fraction: pixels seen here / pixels the box would cover alone on a sensor twice as wide
    pad = max(width, height) // 2
    big = Intrinsics(
        fx=fx, fy=fx, cx=width / 2 + pad, cy=height / 2 + pad, width=width + 2 * pad, height=height + 2 * pad
    )
    big_rays = frame.to_grav(pixel_rays(big))
    visible = []
    for index, spec in enumerate(specs):
        _, alone = _raycast(big_rays, [spec], camera_height)
        total = int((alone == 0).sum())
        visible.append(float((ids == index + 1).sum() / total) if total else 0.0)
    return BoxScene(intrinsics, gravity, depth, ids, specs, visible, camera_height)


@dataclass(frozen=True)
class NoiseConfig:
    """MoGe-like point-map errors. Defaults are of the size MoGe-2 reports for in-the-wild metric geometry:
    a few % global scale error, ~1% depth-proportional noise, smooth distortion, flying pixels at depth edges."""

    scale_error: float = 0.03  # global multiplicative error; sign drawn at random
    relative_noise: float = 0.01  # per-pixel std as a fraction of depth
    noise_correlation_px: float = 3.0  # Gaussian correlation length of that noise (0: independent pixels)
    distortion: float = 0.02  # amplitude of a smooth multiplicative field over the image
    focal_error: float = 0.02  # estimated focal length off by this fraction (sign at random)
    flying_pixels: bool = True  # pixels at depth edges take a depth between foreground and background


def degrade_depth(
    depth: np.ndarray, intrinsics: Intrinsics, noise: NoiseConfig, seed: int
) -> tuple[np.ndarray, Intrinsics]:
    """Depth and intrinsics as an estimator might return them; returns the degraded (depth, intrinsics)."""
    rng = np.random.default_rng(seed)
    h, w = depth.shape
    out = depth.astype(np.float64).copy()
    if noise.flying_pixels:
        low = ndimage.minimum_filter(out, size=3)
        high = ndimage.maximum_filter(out, size=3)
        edge = high > low * 1.2  # occlusion edges, not the steady depth ramp of a slanted surface
        out[edge] = low[edge] + rng.uniform(0, 1, edge.sum()) * (high[edge] - low[edge])
    vv, uu = np.mgrid[0:h, 0:w] / max(h, w)
    field = np.zeros_like(out)
    for _ in range(3):  # a few random low-frequency waves, normalized to +-1
        fu, fv, phase = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), rng.uniform(0, 2 * np.pi)
        field += np.sin(2 * np.pi * (fu * uu + fv * vv) + phase)
    field /= max(np.abs(field).max(), 1e-9)
    scale = 1 + noise.scale_error * rng.choice([-1.0, 1.0])
    white = rng.standard_normal(out.shape)
    if (
        noise.noise_correlation_px > 0
    ):  # estimator errors are spatially smooth; keep the std at relative_noise
        white = ndimage.gaussian_filter(white, noise.noise_correlation_px)
        white /= max(white.std(), 1e-12)
    out = out * scale * (1 + noise.distortion * field) * (1 + noise.relative_noise * white)
    focal = 1 + noise.focal_error * rng.choice([-1.0, 1.0])
    estimated = intrinsics.model_copy(update={"fx": intrinsics.fx * focal, "fy": intrinsics.fy * focal})
    return out, estimated


@dataclass(frozen=True)
class ObjectError:
    scene_seed: int
    box_index: int
    visible_fraction: float
    distance: float  # true camera-to-center distance, meters
    center_error_pct: float  # |estimated - true center| / true distance x 100
    height_error_pct: float
    footprint_error_pct: float  # max over the two horizontal extents (sorted, so a swap of two near-equal
    # extents is not counted as an error)
    footprint_error_of_distance_pct: (
        float  # the same absolute error as % of the camera distance: comparable to
    )
    # the depth error of the point map itself (a 1% depth error moves a face by 1% of the distance)
    box: Box3D


@dataclass(frozen=True)
class SceneErrors:
    seed: int
    gravity_error_deg: float | None  # None: no support plane found
    objects: list[ObjectError]
    failures: list[str]


def measure_scene(
    scene: BoxScene,
    seed: int,
    noise: NoiseConfig | None = None,
    cloud_config: CloudConfig | None = None,
    gravity_config: GravityConfig | None = None,
    min_visible: float = 0.0,
) -> SceneErrors:
    """Run the chain (oracle masks; exact or degraded point map; RANSAC gravity) and compare with the truth."""
    truth = [
        KnownBox(
            index + 1,
            Box3D(
                center_cam=tuple(float(c) for c in scene.center_cam(index)),
                width=spec.extent_b,
                height=spec.height,
                length=spec.extent_a,
                yaw=spec.yaw,
            ),
            scene.visible_fraction[index],
        )
        for index, spec in enumerate(scene.boxes)
    ]
    return measure_objects(
        scene.depth,
        scene.intrinsics,
        scene.instance_ids,
        scene.gravity_cam,
        truth,
        seed,
        noise,
        cloud_config,
        gravity_config,
        min_visible,
    )


@dataclass(frozen=True)
class KnownBox:
    instance_id: int
    box: Box3D
    visible_fraction: float


def measure_objects(
    depth: np.ndarray,
    intrinsics: Intrinsics,
    instance_ids: np.ndarray,
    gravity_cam: np.ndarray | tuple[float, float, float],
    truth: list[KnownBox],
    seed: int,
    noise: NoiseConfig | None = None,
    cloud_config: CloudConfig | None = None,
    gravity_config: GravityConfig | None = None,
    min_visible: float = 0.0,
) -> SceneErrors:
    """The measurement for any scene with known boxes (ours, or assets.synthetic's richer indoor scenes)."""
    if noise is not None:
        depth, intrinsics = degrade_depth(depth, intrinsics, noise, seed=seed + 10_000)
    points = depth_to_points(depth, intrinsics)
    valid = np.isfinite(points).all(axis=-1)
    estimate = estimate_gravity(points, valid, gravity_config)
    if estimate is None:
        return SceneErrors(seed, None, [], ["no support plane"])
    errors, failures = [], []
    for known in truth:
        if known.visible_fraction < min_visible:
            continue
        try:
            mask = instance_ids == known.instance_id
            box, _ = box_from_mask(points, valid, mask, estimate.gravity_cam, cloud_config)
        except DataError as err:
            failures.append(f"object {known.instance_id}: {err}")
            continue
        true_center = np.asarray(known.box.center_cam)
        distance = float(np.linalg.norm(true_center))
        true_footprint = np.sort([known.box.length, known.box.width])
        footprint = np.sort([box.length, box.width])
        errors.append(
            ObjectError(
                scene_seed=seed,
                box_index=known.instance_id,
                visible_fraction=known.visible_fraction,
                distance=distance,
                center_error_pct=float(
                    100 * np.linalg.norm(np.asarray(box.center_cam) - true_center) / distance
                ),
                height_error_pct=float(100 * abs(box.height - known.box.height) / known.box.height),
                footprint_error_pct=float(100 * np.max(np.abs(footprint - true_footprint) / true_footprint)),
                footprint_error_of_distance_pct=float(
                    100 * np.max(np.abs(footprint - true_footprint)) / distance
                ),
                box=box,
            )
        )
    return SceneErrors(seed, angle_between_deg(estimate.gravity_cam, gravity_cam), errors, failures)
