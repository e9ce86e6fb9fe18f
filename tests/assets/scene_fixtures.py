"""Small hand-made ground-truth scenes for the middle-stage tests: boxes with known geometry, ray-cast exactly.

A scene is a list of `BoxSpec`s in front of a camera (level unless a pitch is given) above a floor plane, inside a
back wall; `render` ray-casts them into depth, an instance mask and an RGB image, and `write_source_shard` stores
them in the `source_images/<shard>/` layout of assets/storage.py. Nothing here replaces a component under test: it
only produces the inputs, the way a real source would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.geometry import GravityFrame, box2d_from_mask, box_axes_grav, box_corners_cam, pixel_rays, project
from assets.records import Box2D, Box3D, Intrinsics, Scene, SceneObject
from assets.storage import (
    atomic_write_bytes,
    encode_depth_png,
    encode_jpeg,
    encode_mask_png,
    write_scenes,
)

LEVEL_GRAVITY = (0.0, 1.0, 0.0)  # camera level: gravity points down the image
FLOOR_Y = 1.2  # floor 1.2 m below the camera (camera y points down)
BACK_WALL_Z = 8.0


@dataclass
class BoxSpec:
    category: str
    center_cam: tuple[float, float, float]
    size: tuple[float, float, float]  # width, height, length (meters)
    # length axis along `forward`, so width lies along the image plane as docs/CONVENTIONS.md prescribes
    yaw: float = float(np.pi / 2)
    color: tuple[int, int, int] = (180, 60, 60)


def intrinsics(width: int = 96, height: int = 72, focal: float = 70.0) -> Intrinsics:
    return Intrinsics(fx=focal, fy=focal, cx=width / 2, cy=height / 2, width=width, height=height)


def gravity_for_pitch(pitch_down_deg: float) -> tuple[float, float, float]:
    """Gravity in the camera frame for a camera pitched down by the given angle (no roll)."""
    a = np.deg2rad(pitch_down_deg)
    return (0.0, float(np.cos(a)), float(np.sin(a)))


def box3d(spec: BoxSpec) -> Box3D:
    w, h, length = spec.size
    return Box3D(center_cam=spec.center_cam, width=w, height=h, length=length, yaw=spec.yaw)


def render(
    specs: list[BoxSpec], intr: Intrinsics, gravity: tuple[float, float, float] = LEVEL_GRAVITY
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ray casting: (rgb uint8 HxWx3, z-depth float HxW, instance mask uint8 HxW with ids 1..n)."""
    frame = GravityFrame.from_gravity(gravity)
    rays = pixel_rays(intr)  # z = 1, so the ray parameter is the z-depth
    down = -frame.up
    # floor: points p with p . down = FLOOR_Y; back wall at z = BACK_WALL_Z
    along_down = rays @ down
    floor_t = np.where(along_down > 1e-6, FLOOR_Y / np.maximum(along_down, 1e-6), np.inf)
    depth = np.minimum(floor_t, BACK_WALL_Z)
    mask = np.zeros(depth.shape, dtype=np.uint8)
    shade = np.where(floor_t < BACK_WALL_Z, 0.55, 0.8)
    rgb = np.empty(depth.shape + (3,), dtype=np.float64)
    rgb[...] = np.array([150.0, 140.0, 120.0])[None, None, :] * shade[..., None]
    for instance_id, spec in enumerate(specs, start=1):
        box = box3d(spec)
        rot = box_axes_grav(box.yaw) @ frame.cam_to_grav  # camera -> box-local
        origin = -(rot @ np.asarray(box.center_cam))  # camera origin in box-local coordinates
        direction = rays @ rot.T
        half = np.array([box.length, box.width, box.height]) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - origin) / direction
            t2 = (half - origin) / direction
        t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < depth)  # the camera is never inside a box
        depth = np.where(hit, t_near, depth)
        mask[hit] = instance_id
        rgb[hit] = np.asarray(spec.color, dtype=np.float64)
    rgb = np.clip(rgb + np.linspace(-12, 12, depth.shape[1])[None, :, None], 0, 255).astype(np.uint8)
    return rgb, depth, mask


def scene_from_specs(
    scene_id: str,
    specs: list[BoxSpec],
    intr: Intrinsics | None = None,
    gravity: tuple[float, float, float] = LEVEL_GRAVITY,
    shard: str = "test-000",
    with_files: bool = True,
) -> tuple[Scene, np.ndarray, np.ndarray, np.ndarray]:
    """A ground-truth Scene (2D boxes from the rendered masks, file paths in the source layout) and its render."""
    intr = intr or intrinsics()
    rgb, depth, mask = render(specs, intr, gravity)
    frame = GravityFrame.from_gravity(gravity)
    objects = []
    for instance_id, spec in enumerate(specs, start=1):
        box2d = box2d_from_mask(mask == instance_id)
        if box2d is None:  # hidden: fall back to the projected box, clipped to the image
            uv = project(box_corners_cam(box3d(spec), frame), intr)
            x0, y0 = np.clip(uv.min(axis=0), 0, [intr.width - 1, intr.height - 1])
            box2d = Box2D(x0=float(x0), y0=float(y0), x1=float(x0) + 1, y1=float(y0) + 1)
        objects.append(
            SceneObject(instance_id=instance_id, category=spec.category, box2d=box2d, box3d=box3d(spec))
        )
    base = f"source_images/{shard}"
    scene = Scene(
        scene_id=scene_id,
        source="fixture",
        shard=shard,
        intrinsics=intr,
        gravity_cam=gravity,
        objects=objects,
        has_ground_truth_3d=with_files,  # without depth and masks it stands for an in-the-wild photo
        image_file=f"{base}/images/{scene_id}.jpg",
        depth_file=f"{base}/depth/{scene_id}.png" if with_files else None,
        mask_file=f"{base}/masks/{scene_id}.png" if with_files else None,
    )
    return scene, rgb, depth, mask


def write_source_shard(
    root: Path, shard: str, rendered: list[tuple[Scene, np.ndarray, np.ndarray, np.ndarray]]
) -> Path:
    """Store scenes and their renders as `source_images/<shard>/` (images, depth, masks, scenes.jsonl)."""
    out = Path(root) / "source_images" / shard
    for scene, rgb, depth, mask in rendered:
        atomic_write_bytes(Path(root) / scene.image_file, encode_jpeg(rgb, quality=95))
        if scene.depth_file:
            atomic_write_bytes(Path(root) / scene.depth_file, encode_depth_png(depth))
        if scene.mask_file:
            atomic_write_bytes(Path(root) / scene.mask_file, encode_mask_png(mask))
    write_scenes(out / "scenes.jsonl", [r[0] for r in rendered])
    return out


def living_room(
    scene_id: str = "room-0",
    shard: str = "test-000",
    gravity: tuple[float, float, float] = LEVEL_GRAVITY,
    **kwargs,
) -> tuple[Scene, np.ndarray, np.ndarray, np.ndarray]:
    """A sofa, three chairs in a row on the floor, and a table: every object visible. Positions are fixed in the
    gravity frame (so a pitched camera sees the same room from the same spot)."""
    frame = GravityFrame.from_gravity(gravity)

    def at(right: float, forward: float, height: float) -> tuple[float, float, float]:
        """Camera-frame center of a box whose center is `height` m above the floor."""
        return tuple(float(v) for v in frame.to_cam(np.array([right, forward, height - FLOOR_Y])))

    specs = [
        BoxSpec("sofa", at(-1.4, 4.5, 0.4), (1.8, 0.8, 0.9), color=(60, 90, 200)),
        BoxSpec("chair", at(-0.2, 3.5, 0.45), (0.45, 0.9, 0.45), color=(200, 60, 60)),
        BoxSpec("chair", at(0.5, 3.5, 0.45), (0.45, 0.9, 0.45), color=(200, 80, 60)),
        BoxSpec("chair", at(1.2, 3.5, 0.45), (0.45, 0.9, 0.45), color=(200, 100, 60)),
        BoxSpec("table", at(0.6, 5.5, 0.375), (1.2, 0.75, 0.8), color=(90, 160, 70)),
    ]
    return scene_from_specs(scene_id, specs, shard=shard, gravity=gravity, **kwargs)
