"""Scene records: the ground truth of a rendered scene (gravity-aligned 3D boxes, visibility, captions) and
`render_scene`, which lays out, renders and records one scene.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from assets.geometry import GravityFrame, box2d_from_mask
from assets.records import Box3D, Scene, SceneObject
from assets.stage import DataError
from assets.storage import check_shard_name
from assets.synthetic.catalog import CATEGORIES
from assets.synthetic.config import (
    GENERATOR_VERSION,
    SOURCE,
    STAGE,
    RenderedScene,
    SyntheticConfig,
    scene_id_for,
    scene_rng,
)
from assets.synthetic.layout import Camera, PlacedObject, indoor_layout, tabletop_layout
from assets.synthetic.render import render_layout

# --------------------------------------------------------------------------------------- ground truth


def _box3d(
    obj: PlacedObject, camera: Camera, frame: GravityFrame
) -> tuple[Box3D, tuple[float, float, float] | None]:
    """Tight gravity-aligned box per docs/CONVENTIONS.md, and the unit front vector in the gravity frame."""
    extent = obj.hi - obj.lo
    center_world = obj.pos + obj.rot @ ((obj.lo + obj.hi) / 2.0)
    center_cam = camera.to_cam(center_world)
    x_axis = frame.to_grav(camera.rotation.T @ (obj.rot @ np.array([1.0, 0.0, 0.0])))
    y_axis = frame.to_grav(camera.rotation.T @ (obj.rot @ np.array([0.0, 1.0, 0.0])))
    x_axis[2] = y_axis[2] = 0.0  # both are horizontal in the world; remove float round-off
    x_axis /= np.linalg.norm(x_axis)
    y_axis /= np.linalg.norm(y_axis)
    front = None
    if obj.category.has_front:
        length_axis, length, width = x_axis, extent[0], extent[1]
        front = (float(x_axis[0]), float(x_axis[1]), 0.0)
    else:
        # No front: the length axis is the horizontal box axis less parallel to the image plane, i.e. the one
        # with the larger component along `forward`; its sign is fixed to point away from the camera.
        if abs(x_axis[1]) >= abs(y_axis[1]):
            length_axis, length, width = x_axis, extent[0], extent[1]
        else:
            length_axis, length, width = y_axis, extent[1], extent[0]
        if length_axis[1] < 0 or (length_axis[1] == 0 and length_axis[0] < 0):
            length_axis = -length_axis
    yaw = math.atan2(length_axis[1], length_axis[0])
    box = Box3D(
        center_cam=tuple(float(c) for c in center_cam),
        width=float(width),
        height=float(extent[2]),
        length=float(length),
        yaw=float(yaw),
    )
    return box, front


_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def _caption(kind: str, categories: list[str]) -> str:
    counts = Counter(categories)
    if kind == "tabletop":
        place = "A tabletop scene"
    elif "bed" in counts:
        place = "A bedroom"
    elif counts.keys() & {"desk", "monitor", "keyboard"}:
        place = "An office"
    elif counts.keys() & {"sofa", "tv"}:
        place = "A living room"
    elif "microwave" in counts:
        place = "A kitchen"
    else:
        place = "A room"
    phrases = []
    for name, n in counts.most_common():
        if n == 1:
            phrases.append(("an " if name[0] in "aeiou" else "a ") + name)
        else:
            phrases.append(f"{_NUMBERS.get(n, str(n))} {CATEGORIES[name].plural}")
    listing = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"{place} with {listing}."


def _world_rays(camera: Camera) -> np.ndarray:
    """(H, W, 3) float32 world directions R @ (x, y, 1) through pixel centers (u + 0.5, v + 0.5): the ray
    parameter is then the camera-frame z-depth (same pixel convention as assets.geometry.pixel_rays)."""
    k = camera.intrinsics
    x = (np.arange(k.width, dtype=np.float64) + 0.5 - k.cx) / k.fx
    y = (np.arange(k.height, dtype=np.float64) + 0.5 - k.cy) / k.fy
    rot = camera.rotation
    rays = np.empty((k.height, k.width, 3), dtype=np.float32)
    for i in range(3):
        rays[..., i] = (y[:, None] * rot[i, 1] + rot[i, 2]).astype(np.float32) + (x * rot[i, 0]).astype(
            np.float32
        )
    return rays


def render_scene(config: SyntheticConfig, shard: str, index: int) -> RenderedScene:
    """Render scene `index` of `shard`: same (config, shard, index) -> same bytes, run after run (with the same
    numpy and Pillow builds; the layout itself depends only on the seed stream).

    Raises DataError when no layout with a visible object was found in `config.max_attempts` tries.
    """
    check_shard_name(shard)
    rng = scene_rng(config.seed, shard, index)
    scene_id = scene_id_for(shard, index)
    for _attempt in range(config.max_attempts):
        kind = "tabletop" if rng.random() < config.tabletop_fraction else "indoor"
        layout = tabletop_layout(rng, config) if kind == "tabletop" else indoor_layout(rng, config)
        if not layout.objects:
            continue
        camera = layout.camera
        rgb, depth, object_of, visibility = render_layout(layout, rng, config, _world_rays(camera))
        kept = [
            i
            for i in sorted(visibility)
            if visibility[i][0] >= config.min_visible_pixels
            and visibility[i][1] >= config.min_visible_fraction
        ]
        if kept:
            break
    else:
        raise DataError(f"{scene_id}: no layout with a visible object in {config.max_attempts} attempts")

    frame = GravityFrame.from_gravity(camera.gravity_cam)
    lookup = np.zeros(len(layout.objects) + 1, dtype=np.uint8)
    records: list[SceneObject] = []
    for instance_id, i in enumerate(kept, start=1):
        obj = layout.objects[i]
        lookup[i + 1] = instance_id
        mask = object_of == i + 1
        box, front = _box3d(obj, camera, frame)
        records.append(
            SceneObject(
                instance_id=instance_id,
                category=obj.category.name,
                box2d=box2d_from_mask(mask),
                box3d=box,
                front_grav=front,
                visible_fraction=float(min(1.0, visibility[i][1])),
                num_pixels=visibility[i][0],
                attributes={"color": obj.color_name},
            )
        )
    instance_mask = lookup[object_of]
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3], cam_to_world[:3, 3] = camera.rotation, camera.position
    gravity = camera.gravity_cam
    scene = Scene(
        scene_id=scene_id,
        source=SOURCE,
        shard=shard,
        intrinsics=camera.intrinsics,
        gravity_cam=(float(gravity[0]), float(gravity[1]), float(gravity[2])),
        objects=records,
        caption=_caption(kind, [r.category for r in records]),
        has_ground_truth_3d=True,
        image_file=f"{STAGE}/{shard}/images/{scene_id}.jpg",
        depth_file=f"{STAGE}/{shard}/depth/{scene_id}.png",
        mask_file=f"{STAGE}/{shard}/masks/{scene_id}.png",
        metadata={
            "kind": kind,
            "generator": GENERATOR_VERSION,
            "seed": config.seed,
            "index": index,
            "camera_height_m": float(camera.position[2]),
            "pitch_deg": math.degrees(camera.pitch),
            "roll_deg": math.degrees(camera.roll),
            "hfov_deg": math.degrees(camera.hfov),
            "room_x_m": float(layout.room.size[0]),
            "room_y_m": float(layout.room.size[1]),
            "room_height_m": float(layout.room.size[2]),
            "objects_placed": len(layout.objects),
        },
    )
    return RenderedScene(
        rgb=rgb,
        depth=depth,
        instance_mask=instance_mask,
        scene=scene,
        cam_to_world=cam_to_world,
        room_size=tuple(float(s) for s in layout.room.size),
    )
