"""Procedural indoor rooms and tabletop scenes with exact 3D ground truth (the `source_images` synthetic source).

Why it exists: every later stage (point maps, object clouds, references, QA) needs scenes whose depth, instance
masks, gravity and 3D boxes are known *exactly*, so that the stages can be tested against the truth and a model can
be trained end to end without downloading any dataset.

How it works, in three steps per scene, all driven by one random generator derived from (seed, shard, index):

1. **Layout** (world frame: x, y on the floor, z up, floor at z = 0). A rectangular room; furniture on the floor
   (some backed against walls, some repeated in rows so that "the leftmost chair" is needed); small objects on
   support surfaces (table tops, desk tops, shelves, sofa seats, beds). Objects are built from a few primitives
   (oriented boxes, vertical cylinders, spheres) in an object-local frame whose +x axis is the facing direction.
2. **Camera**: a pinhole camera at a realistic height, yawed, pitched down and rolled by a few degrees, so gravity
   is never exactly the image's down axis; `gravity_cam` is the world's -z expressed in the camera frame.
3. **Rendering**: analytic ray casting, vectorised with numpy. Each ray is `C + t * R @ (x, y, 1)`, so the ray
   parameter `t` *is* the camera-frame z-depth. The room is one inside-out slab test; each primitive is tested only
   on the pixels inside its projected bounding rectangle, and a z-buffer keeps the nearest hit. Lambertian shading
   with a fixed light, per-instance colours and mild procedural texture make objects distinguishable.

Ground truth follows docs/CONVENTIONS.md: `Box3D` is the tight gravity-aligned box of each object's primitives,
its center in the camera frame and its yaw that of the *length* axis in the gravity frame (the facing direction for
objects with a front, otherwise the horizontal axis less parallel to the image plane). What "front" means per
category: chair, sofa - where a seated person faces; bed - towards the foot end; desk - the side one sits at;
cabinet, nightstand, microwave - the doors; bookshelf - the open side; tv, monitor, laptop - the screen; keyboard -
the typist's side. `visible_fraction` is the share of the object's own silhouette (as if nothing occluded it, and
including what falls outside the frame) that is visible; `num_pixels` its visible pixel count. Objects with fewer
than `min_visible_pixels` are left out of the record and their pixels set to 0 in the mask, so every non-zero mask
value has a record and vice versa.

Entry points: `render_scene(config, shard, index)` (in memory) and `write_synthetic_shard(root, shard, config)`
(the `source_images` asset).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from assets.geometry import GravityFrame, box2d_from_mask
from assets.records import Box3D, Intrinsics, Scene, SceneObject
from assets.stage import DataError, StageReport, process_items
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    directory_digest,
    encode_depth_png,
    encode_jpeg,
    encode_mask_png,
    shard_dir,
    write_jsonl,
    write_scenes,
)

STAGE = "source_images"
SOURCE = "synthetic"
GENERATOR_VERSION = "synthetic-v1"
_SHARD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SyntheticConfig(BaseModel):
    """Everything that decides a synthetic shard's content; two equal configs give byte-identical shards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(default=448, ge=448, le=2048, description="Square image side in pixels.")
    num_scenes: int = Field(default=64, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0)
    tabletop_fraction: float = Field(default=0.35, ge=0.0, le=1.0, description="Share of tabletop close-ups.")
    objects_per_scene: tuple[int, int] = Field(
        default=(5, 12), description="Objects placed (before visibility)."
    )
    repeat_probability: float = Field(
        default=0.45, ge=0.0, le=1.0, description="Chance that a chosen category comes as 2-4 instances."
    )
    min_visible_pixels: int = Field(
        default=150, ge=1, description="Objects with fewer visible pixels are dropped."
    )
    min_visible_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    hfov_deg: tuple[float, float] = Field(default=(50.0, 75.0), description="Horizontal field of view range.")
    roll_deg: tuple[float, float] = Field(default=(0.5, 6.0), description="Absolute camera roll range.")
    jpeg_quality: int = Field(default=90, ge=50, le=100)
    depth_png_level: int = Field(
        default=6,
        ge=1,
        le=9,
        description="zlib level of the depth PNG: 6 is ~5x faster than 9 for ~7% more bytes.",
    )
    sensor_noise: float = Field(
        default=1.5, ge=0.0, le=20.0, description="Gaussian pixel noise, 0-255 scale."
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="Layouts tried before a scene is rejected."
    )

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticConfig:
        lo, hi = self.objects_per_scene
        if not 1 <= lo <= hi <= 60:
            raise ValueError(
                f"objects_per_scene must satisfy 1 <= lo <= hi <= 60, got {self.objects_per_scene}"
            )
        f0, f1 = self.hfov_deg
        if not 20.0 <= f0 <= f1 <= 110.0:
            raise ValueError(f"hfov_deg must lie within 20-110 and be ordered, got {self.hfov_deg}")
        r0, r1 = self.roll_deg
        if not 0.0 <= r0 <= r1 <= 30.0:
            raise ValueError(f"roll_deg must lie within 0-30 and be ordered, got {self.roll_deg}")
        return self


@dataclass
class RenderedScene:
    """One rendered scene in memory: pixels, exact depth, instance ids, the record, and the camera pose.

    `depth` is camera-frame z in meters (every pixel hits the closed room, so all are valid); `instance_mask` holds
    `SceneObject.instance_id` per pixel (0 = room or an object too hidden to be recorded). `cam_to_world` (4x4) maps
    camera-frame points to the world frame (z up, floor at z = 0); tests use it to check the geometry.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance_mask: np.ndarray
    scene: Scene
    cam_to_world: np.ndarray
    room_size: tuple[float, float, float]


def scene_id_for(shard: str, index: int) -> str:
    return f"{shard}-{index:04d}"


def scene_rng(seed: int, shard: str, index: int) -> np.random.Generator:
    """Per-scene generator from a stable hash of (seed, shard, index): never Python's salted `hash()`."""
    digest = hashlib.sha256(f"{GENERATOR_VERSION}\0{seed}\0{shard}\0{index}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest[:16], "little")))


# ------------------------------------------------------------------------------------------------ colours

COLORS: dict[str, tuple[int, int, int]] = {
    "white": (232, 232, 226),
    "black": (38, 38, 42),
    "gray": (125, 127, 130),
    "silver": (186, 189, 194),
    "brown": (118, 78, 48),
    "beige": (206, 182, 146),
    "red": (178, 42, 38),
    "blue": (46, 82, 166),
    "green": (58, 132, 68),
    "yellow": (224, 190, 52),
    "orange": (224, 118, 38),
    "pink": (222, 138, 162),
    "purple": (118, 66, 142),
    "teal": (36, 132, 134),
    "cream": (238, 226, 198),
    "terracotta": (176, 92, 58),
    "navy": (34, 46, 96),
}


def _rgb(name: str) -> np.ndarray:
    return np.asarray(COLORS[name], dtype=np.float32) / 255.0


def _shade_of(color: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(color * factor, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------- primitives

BOX, CYLINDER, SPHERE = 0, 1, 2
# Face slots: axis * 2 + (outward normal points to +axis). Slot 1 is the local +x ("front") face of a box;
# slot 5 the top. Cylinders and spheres use slot 0 for their curved surface (normal computed per pixel).


@dataclass
class _Part:
    """A primitive in an object's local frame (x = facing direction, z up, base on z = 0)."""

    kind: int
    center: np.ndarray  # (3,)
    half: np.ndarray  # (3,) box half extents; (r, r, h/2) for cylinders; (r, r, r) for spheres
    colors: np.ndarray  # (6, 3) per face slot, 0..1
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))  # local rotation (boxes only)

    def local_corners(self) -> np.ndarray:
        signs = np.array(
            [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
        )
        return self.center + (signs * self.half) @ self.rot.T


def _faces(color: np.ndarray, front: np.ndarray | None = None, top: np.ndarray | None = None) -> np.ndarray:
    colors = np.tile(np.asarray(color, dtype=np.float32), (6, 1))
    if front is not None:
        colors[1] = front
    if top is not None:
        colors[5] = top
    return colors


def _box(
    x: float,
    y: float,
    z0: float,
    length: float,
    width: float,
    height: float,
    color: np.ndarray,
    front: np.ndarray | None = None,
    top: np.ndarray | None = None,
) -> _Part:
    """Axis-aligned box spanning z0..z0+height, centred on (x, y)."""
    center = np.array([x, y, z0 + height / 2.0])
    return _Part(BOX, center, np.array([length, width, height]) / 2.0, _faces(color, front, top))


def _cylinder(
    x: float, y: float, z0: float, z1: float, radius: float, color: np.ndarray, top: np.ndarray | None = None
) -> _Part:
    center = np.array([x, y, (z0 + z1) / 2.0])
    return _Part(CYLINDER, center, np.array([radius, radius, (z1 - z0) / 2.0]), _faces(color, None, top))


def _sphere(x: float, y: float, z: float, radius: float, color: np.ndarray) -> _Part:
    return _Part(SPHERE, np.array([x, y, z]), np.full(3, radius), _faces(color))


@dataclass(frozen=True)
class _Support:
    """A horizontal surface in an object's local frame that other objects may stand on."""

    tag: str
    z: float
    cx: float
    cy: float
    hx: float
    hy: float
    max_height: float
    aligned: bool = False  # items take the supporting object's yaw (books on a shelf)


Built = tuple[list[_Part], list[_Support]]


# ------------------------------------------------------------------------------------------- categories
# Each builder samples plausible metric dimensions and returns parts (+x = front for fronted categories).


def _chair(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width = rng.uniform(0.45, 0.55), rng.uniform(0.42, 0.52)
    seat_h, back_h, t, leg = rng.uniform(0.42, 0.48), rng.uniform(0.35, 0.5), 0.05, 0.04
    legs_c = _shade_of(c, 0.6)
    parts = [_box(0, 0, seat_h - t, length, width, t, c, top=_shade_of(c, 1.12))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                _box(sx * (length - leg) / 2, sy * (width - leg) / 2, 0, leg, leg, seat_h - t, legs_c)
            )
    parts.append(_box(-length / 2 + 0.03, 0, seat_h, 0.06, width, back_h, c))
    return parts, []


def _stool(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    radius, height = rng.uniform(0.16, 0.2), rng.uniform(0.45, 0.75)
    legs_c = _shade_of(c, 0.55)
    parts = [_cylinder(0, 0, height - 0.04, height, radius, c)]
    for k in range(4):
        angle = k * math.pi / 2 + math.pi / 4
        parts.append(
            _cylinder(
                0.7 * radius * math.cos(angle),
                0.7 * radius * math.sin(angle),
                0,
                height - 0.04,
                0.016,
                legs_c,
            )
        )
    return parts, []


def _sofa(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width, height = rng.uniform(0.85, 1.0), rng.uniform(1.6, 2.3), rng.uniform(0.75, 0.9)
    seat_h, arm, arm_h, back_t = (
        rng.uniform(0.4, 0.46),
        rng.uniform(0.14, 0.22),
        rng.uniform(0.55, 0.65),
        0.22,
    )
    cushion = _shade_of(c, 1.1)
    parts = [
        _box(back_t / 2, 0, 0, length - back_t, width - 2 * arm, seat_h, c, top=cushion),
        _box(-length / 2 + back_t / 2, 0, 0, back_t, width, height, c),
    ]
    for sy in (-1, 1):
        parts.append(_box(0, sy * (width - arm) / 2, 0, length, arm, arm_h, _shade_of(c, 0.93)))
    seat = _Support(
        "sofa", seat_h, back_t / 2, 0, (length - back_t) / 2 - 0.05, (width - 2 * arm) / 2 - 0.05, 0.5
    )
    return parts, [seat]


def _bed(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length = rng.uniform(1.95, 2.1)
    width = float(rng.choice([0.95, 1.4, 1.6, 1.8])) + rng.uniform(-0.03, 0.03)
    frame_h, mattress_h = rng.uniform(0.25, 0.35), rng.uniform(0.18, 0.25)
    head_h = rng.uniform(0.9, 1.15)
    sheet = _rgb(str(rng.choice(["white", "cream", "beige", "blue", "gray"]))) * rng.uniform(0.92, 1.05)
    parts = [
        _box(0.02, 0, 0, length - 0.04, width, frame_h, c),
        _box(0.04, 0, frame_h, length - 0.12, width - 0.04, mattress_h, np.clip(sheet, 0, 1)),
        _box(-length / 2 + 0.03, 0, 0, 0.06, width + 0.04, head_h, _shade_of(c, 0.9)),
    ]
    top = frame_h + mattress_h
    return parts, [_Support("bed", top, 0.05, 0, length / 2 - 0.15, width / 2 - 0.1, 0.4)]


def _table(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    height, t = rng.uniform(0.72, 0.78), 0.04
    legs_c = _shade_of(c, 0.7)
    if rng.random() < 0.25:  # round table on a pedestal
        radius = rng.uniform(0.4, 0.6)
        parts = [
            _cylinder(0, 0, height - t, height, radius, c, top=_shade_of(c, 1.08)),
            _cylinder(0, 0, 0.03, height - t, 0.05, legs_c),
            _cylinder(0, 0, 0, 0.03, radius * 0.5, legs_c),
        ]
        h = radius * 0.68
        return parts, [_Support("table", height, 0, 0, h, h, 0.8)]
    length, width, leg = rng.uniform(0.9, 1.6), rng.uniform(0.7, 0.95), 0.05
    parts = [_box(0, 0, height - t, length, width, t, c, top=_shade_of(c, 1.08))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                _box(sx * (length / 2 - leg), sy * (width / 2 - leg), 0, leg, leg, height - t, legs_c)
            )
    return parts, [_Support("table", height, 0, 0, length / 2 - 0.03, width / 2 - 0.03, 0.8)]


def _desk(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width, height, t = rng.uniform(0.55, 0.75), rng.uniform(1.0, 1.6), rng.uniform(0.72, 0.76), 0.035
    drawer = _shade_of(c, 1.15)
    parts = [
        _box(0, 0, height - t, length, width, t, c, top=_shade_of(c, 1.06)),
        _box(0, -width / 2 + 0.015, 0, length, 0.03, height - t, _shade_of(c, 0.85)),
        _box(-length / 2 + 0.02, 0, 0.25, 0.02, width - 0.06, height - t - 0.25, _shade_of(c, 0.8)),
        _box(0, width / 2 - 0.21, 0, length - 0.02, 0.4, height - t, _shade_of(c, 0.9), front=drawer),
    ]
    return parts, [_Support("desk", height, 0, 0, length / 2 - 0.03, width / 2 - 0.03, 0.8)]


def _cabinet(rng: np.random.Generator, c: np.ndarray, ctx: str, nightstand: bool = False) -> Built:
    if nightstand:
        length, width, height = rng.uniform(0.35, 0.45), rng.uniform(0.4, 0.5), rng.uniform(0.45, 0.6)
    elif rng.random() < 0.35:  # a low, wide media cabinet (where tvs stand)
        length, width, height = rng.uniform(0.4, 0.5), rng.uniform(1.3, 1.8), rng.uniform(0.45, 0.6)
    else:
        length, width, height = rng.uniform(0.4, 0.55), rng.uniform(0.6, 1.2), rng.uniform(0.6, 1.15)
    door = _shade_of(c, 1.12)
    parts = [
        _box(0, 0, 0, length, width, height, c, front=door),
        _box(length / 2 + 0.01, 0, height * 0.7, 0.02, min(0.12, width * 0.3), 0.02, _rgb("silver")),
    ]
    tag = "nightstand" if nightstand else "cabinet"
    return parts, [_Support(tag, height, 0, 0, length / 2 - 0.02, width / 2 - 0.02, 0.9)]


def _nightstand(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    return _cabinet(rng, c, ctx, nightstand=True)


def _bookshelf(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width, height, t = rng.uniform(0.28, 0.38), rng.uniform(0.7, 1.2), rng.uniform(1.2, 2.0), 0.02
    inner = _shade_of(c, 0.8)
    parts = [
        _box(-length / 2 + 0.008, 0, 0, 0.016, width, height, inner),
        _box(0, -width / 2 + t / 2, 0, length, t, height, c),
        _box(0, width / 2 - t / 2, 0, length, t, height, c),
        _box(0, 0, height - t, length, width, t, c),
        _box(0, 0, 0, length, width, 0.06, c),
    ]
    n_shelves = int(rng.integers(2, 5))
    levels = np.linspace(0.06, height - t, n_shelves + 2)[1:-1]
    supports = [
        _Support(
            "shelf",
            0.06,
            0.008,
            0,
            length / 2 - 0.02,
            width / 2 - t - 0.01,
            levels[0] - 0.06 - 0.02,
            aligned=True,
        )
    ]
    for k, z in enumerate(levels):
        parts.append(_box(0, 0, z - t, length, width, t, c))
        ceiling = levels[k + 1] - t if k + 1 < len(levels) else height - t
        supports.append(
            _Support(
                "shelf",
                z,
                0.008,
                0,
                length / 2 - 0.02,
                width / 2 - t - 0.01,
                ceiling - z - 0.02,
                aligned=True,
            )
        )
    return parts, supports


def _tv(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    width = rng.uniform(0.8, 1.3)
    screen_h, depth, lift = width * 9 / 16, rng.uniform(0.05, 0.07), rng.uniform(0.08, 0.12)
    screen = np.array([0.05, 0.06, 0.09], dtype=np.float32) * rng.uniform(0.8, 1.6)
    return [
        _box(0, 0, 0, 0.22, min(0.5, width * 0.4), 0.02, c),
        _box(-0.02, 0, 0.02, 0.04, 0.08, lift, c),
        _box(0, 0, lift, depth, width, screen_h, c, front=screen),
    ], []


def _monitor(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    width = rng.uniform(0.5, 0.7)
    screen_h, lift = width * rng.uniform(0.56, 0.63), rng.uniform(0.08, 0.14)
    screen = np.array([0.08, 0.1, 0.16], dtype=np.float32) * rng.uniform(0.8, 1.5)
    return [
        _box(0, 0, 0, 0.18, 0.22, 0.015, c),
        _box(-0.03, 0, 0.015, 0.03, 0.06, lift, c),
        _box(0, 0, lift, 0.04, width, screen_h, c, front=screen),
    ], []


def _laptop(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    depth, width, base_t, screen_t = rng.uniform(0.21, 0.25), rng.uniform(0.3, 0.36), 0.018, 0.008
    screen_h, tilt = depth * 0.95, math.radians(rng.uniform(8.0, 25.0))
    base = _box(0, 0, 0, depth, width, base_t, c, top=_shade_of(c, 0.75))
    rot = np.array([[math.cos(-tilt), 0, math.sin(-tilt)], [0, 1, 0], [-math.sin(-tilt), 0, math.cos(-tilt)]])
    hinge = np.array([-depth / 2 + screen_t / 2, 0, base_t])
    display = np.array([0.1, 0.12, 0.2], dtype=np.float32) * rng.uniform(0.8, 1.8)
    screen = _Part(
        BOX,
        hinge + rot @ np.array([0, 0, screen_h / 2]),
        np.array([screen_t, width, screen_h]) / 2,
        _faces(c, front=display),
        rot,
    )
    return [base, screen], []


def _lamp(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    metal = _rgb(str(rng.choice(["black", "silver", "gray"])))
    if ctx == "floor":
        height, base_r, shade_r, shade_h = rng.uniform(1.35, 1.7), rng.uniform(0.12, 0.15), 0.0, 0.0
        shade_r, shade_h, pole_r = rng.uniform(0.15, 0.22), rng.uniform(0.22, 0.3), 0.013
    else:
        height, base_r = rng.uniform(0.35, 0.5), rng.uniform(0.06, 0.08)
        shade_r, shade_h, pole_r = rng.uniform(0.07, 0.1), rng.uniform(0.1, 0.14), 0.008
    return [
        _cylinder(0, 0, 0, 0.025, base_r, metal),
        _cylinder(0, 0, 0.025, height - shade_h * 0.6, pole_r, metal),
        _cylinder(0, 0, height - shade_h, height, shade_r, c),
    ], []


def _plant(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    scale = rng.uniform(1.6, 2.6) if ctx == "floor" else rng.uniform(0.7, 1.1)
    pot_r, pot_h = 0.08 * scale, 0.13 * scale
    leaves = _rgb(str(rng.choice(["green", "green", "teal"]))) * rng.uniform(0.75, 1.05)
    parts = [_cylinder(0, 0, 0, pot_h, pot_r, c, top=_rgb("brown") * 0.6)]
    crown = rng.uniform(1.2, 1.6) * pot_r
    parts.append(_sphere(0, 0, pot_h + crown * 0.85, crown, np.clip(leaves, 0, 1)))
    if rng.random() < 0.6:
        off = crown * 0.5
        parts.append(_sphere(off * 0.4, off, pot_h + crown * 1.6, crown * 0.7, np.clip(leaves * 1.15, 0, 1)))
    return parts, []


def _cardboard(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    if ctx == "floor":
        dims = rng.uniform(0.25, 0.6), rng.uniform(0.25, 0.55), rng.uniform(0.15, 0.5)
    else:
        dims = rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.25), rng.uniform(0.06, 0.2)
    return [_box(0, 0, 0, *dims, c, top=_shade_of(c, 1.08))], []


def _cup(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    radius, height = rng.uniform(0.035, 0.045), rng.uniform(0.08, 0.11)
    return [
        _cylinder(0, 0, 0, height, radius, c, top=_shade_of(c, 0.5)),
        _box(radius + 0.012, 0, height * 0.25, 0.024, 0.012, height * 0.55, c),
    ], []


def _bottle(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    radius, body = rng.uniform(0.03, 0.045), rng.uniform(0.15, 0.24)
    neck = rng.uniform(0.05, 0.08)
    cap = _rgb(str(rng.choice(["white", "black", "red", "blue"])))
    return [
        _cylinder(0, 0, 0, body, radius, c),
        _cylinder(0, 0, body, body + neck, radius * 0.4, c),
        _cylinder(0, 0, body + neck, body + neck + 0.02, radius * 0.45, cap),
    ], []


def _book(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    pages = _rgb("cream")
    if ctx == "shelf":  # upright, spine facing the shelf's front
        depth, thick, height = rng.uniform(0.14, 0.2), rng.uniform(0.02, 0.05), rng.uniform(0.18, 0.26)
        return [_box(0, 0, 0, depth, thick, height, pages, front=c)], []
    length, width, thick = rng.uniform(0.15, 0.24), rng.uniform(0.2, 0.3), rng.uniform(0.02, 0.05)
    book = _box(0, 0, 0, length, width, thick, pages, top=c)
    book.colors[4] = c
    return [book], []


def _bowl(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    radius, height = rng.uniform(0.07, 0.12), rng.uniform(0.05, 0.08)
    return [
        _cylinder(0, 0, 0, 0.015, radius * 0.55, c),
        _cylinder(0, 0, 0.015, height, radius, c, top=_shade_of(c, 0.7)),
    ], []


def _vase(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    radius, body, neck = rng.uniform(0.05, 0.08), rng.uniform(0.14, 0.28), rng.uniform(0.04, 0.08)
    return [_cylinder(0, 0, 0, body, radius, c), _cylinder(0, 0, body, body + neck, radius * 0.55, c)], []


def _pillow(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    dims = rng.uniform(0.38, 0.55), rng.uniform(0.35, 0.5), rng.uniform(0.1, 0.16)
    return [_box(0, 0, 0, *dims, c, top=_shade_of(c, 1.08))], []


def _trash_can(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    height = rng.uniform(0.3, 0.48)
    if rng.random() < 0.6:
        radius = rng.uniform(0.12, 0.18)
        return [
            _cylinder(0, 0, 0, height - 0.02, radius, c, top=_shade_of(c, 0.35)),
            _cylinder(0, 0, height - 0.02, height, radius + 0.008, _shade_of(c, 0.8), top=_shade_of(c, 0.35)),
        ], []
    return [
        _box(0, 0, 0, rng.uniform(0.22, 0.32), rng.uniform(0.2, 0.3), height, c, top=_shade_of(c, 0.35))
    ], []


def _microwave(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width, height = rng.uniform(0.33, 0.4), rng.uniform(0.45, 0.55), rng.uniform(0.26, 0.32)
    window = np.array([0.1, 0.1, 0.1], dtype=np.float32)
    return [
        _box(0, 0, 0, length, width, height, c),
        _box(
            length / 2 + 0.004,
            -width * 0.12,
            height * 0.12,
            0.008,
            width * 0.66,
            height * 0.76,
            c,
            front=window,
        ),
    ], []


def _keyboard(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width, height = rng.uniform(0.13, 0.16), rng.uniform(0.42, 0.46), rng.uniform(0.02, 0.03)
    return [_box(0, 0, 0, length, width, height, c, top=_shade_of(c, 0.8))], []


@dataclass(frozen=True)
class Category:
    """What the generator knows about a category: geometry, whether it has a front, and where it may stand."""

    name: str
    plural: str
    has_front: bool
    builder: Callable[[np.random.Generator, np.ndarray, str], Built]
    palette: tuple[str, ...]
    floor_weight: float = 0.0  # relative frequency as floor furniture (0 = never on the floor)
    surface_weight: float = 0.0  # relative frequency as a small object on a support
    on: frozenset[str] = frozenset()  # support tags it may stand on
    against_wall: bool = False
    repeatable: bool = True


_TOPS = frozenset({"table", "desk", "cabinet", "nightstand", "shelf"})
CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in [
        Category("chair", "chairs", True, _chair, ("brown", "black", "white", "red", "blue", "beige"), 3.0),
        Category("stool", "stools", False, _stool, ("brown", "black", "white", "red", "silver"), 0.8),
        Category(
            "sofa",
            "sofas",
            True,
            _sofa,
            ("gray", "blue", "beige", "green", "navy", "red"),
            1.2,
            against_wall=True,
            repeatable=False,
        ),
        Category(
            "bed",
            "beds",
            True,
            _bed,
            ("brown", "white", "gray", "black"),
            0.6,
            against_wall=True,
            repeatable=False,
        ),
        Category("table", "tables", False, _table, ("brown", "white", "beige", "black"), 1.6),
        Category(
            "desk", "desks", True, _desk, ("white", "brown", "beige", "black", "gray"), 1.0, against_wall=True
        ),
        Category(
            "cabinet",
            "cabinets",
            True,
            _cabinet,
            ("white", "brown", "gray", "beige", "navy"),
            1.2,
            against_wall=True,
        ),
        Category(
            "nightstand",
            "nightstands",
            True,
            _nightstand,
            ("white", "brown", "beige", "black"),
            0.6,
            against_wall=True,
        ),
        Category(
            "bookshelf",
            "bookshelves",
            True,
            _bookshelf,
            ("brown", "white", "black", "beige"),
            0.9,
            against_wall=True,
        ),
        Category(
            "trash can", "trash cans", False, _trash_can, ("gray", "black", "silver", "blue", "green"), 0.6
        ),
        Category(
            "lamp",
            "lamps",
            False,
            _lamp,
            ("white", "cream", "beige", "black", "orange"),
            0.7,
            0.6,
            on=frozenset({"table", "desk", "nightstand", "cabinet"}),
        ),
        Category(
            "plant", "plants", False, _plant, ("terracotta", "white", "gray", "black"), 0.7, 0.6, on=_TOPS
        ),
        Category(
            "box", "boxes", False, _cardboard, ("beige", "brown", "white", "blue", "red"), 0.6, 0.7, on=_TOPS
        ),
        Category(
            "tv",
            "tvs",
            True,
            _tv,
            ("black", "gray", "silver"),
            0.0,
            1.0,
            on=frozenset({"cabinet", "desk", "table"}),
            repeatable=False,
        ),
        Category(
            "monitor",
            "monitors",
            True,
            _monitor,
            ("black", "gray", "silver", "white"),
            0.0,
            0.7,
            on=frozenset({"desk", "table"}),
        ),
        Category(
            "laptop",
            "laptops",
            True,
            _laptop,
            ("silver", "gray", "black"),
            0.0,
            0.8,
            on=frozenset({"desk", "table"}),
        ),
        Category(
            "keyboard",
            "keyboards",
            True,
            _keyboard,
            ("black", "white", "gray"),
            0.0,
            0.4,
            on=frozenset({"desk", "table"}),
        ),
        Category(
            "microwave",
            "microwaves",
            True,
            _microwave,
            ("white", "black", "silver"),
            0.0,
            0.4,
            on=frozenset({"cabinet", "table", "desk"}),
            repeatable=False,
        ),
        Category(
            "cup",
            "cups",
            False,
            _cup,
            ("white", "red", "blue", "yellow", "black", "green", "pink"),
            0.0,
            1.4,
            on=_TOPS,
        ),
        Category(
            "bottle",
            "bottles",
            False,
            _bottle,
            ("green", "blue", "white", "orange", "teal", "brown"),
            0.0,
            1.1,
            on=_TOPS,
        ),
        Category(
            "book",
            "books",
            False,
            _book,
            ("red", "blue", "green", "yellow", "black", "purple", "orange"),
            0.0,
            1.3,
            on=_TOPS,
        ),
        Category(
            "bowl",
            "bowls",
            False,
            _bowl,
            ("white", "blue", "red", "yellow", "green", "cream"),
            0.0,
            0.9,
            on=frozenset({"table", "desk", "cabinet", "nightstand"}),
        ),
        Category(
            "vase",
            "vases",
            False,
            _vase,
            ("blue", "white", "terracotta", "teal", "purple"),
            0.0,
            0.6,
            on=_TOPS,
        ),
        Category(
            "pillow",
            "pillows",
            False,
            _pillow,
            ("white", "red", "blue", "yellow", "green", "pink", "gray"),
            0.0,
            1.0,
            on=frozenset({"sofa", "bed"}),
        ),
    ]
}
SUPPORT_CATEGORIES = frozenset({"table", "desk", "cabinet", "nightstand", "bookshelf", "sofa", "bed"})
# A tabletop close-up shows hand-sized things; a tv there would fill the frame.
TABLETOP_ITEMS = frozenset(c.name for c in CATEGORIES.values() if c.surface_weight > 0) - {"tv"}


# ---------------------------------------------------------------------------------------------- layout


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class _Object:
    category: Category
    color_name: str
    parts: list[_Part]
    supports: list[_Support]
    lo: np.ndarray  # local tight box (3,)
    hi: np.ndarray
    pos: np.ndarray = field(default_factory=lambda: np.zeros(3))  # world position of the local origin
    yaw: float = 0.0
    on_object: int | None = None  # index of the object it stands on

    @classmethod
    def build(cls, rng: np.random.Generator, category: Category, ctx: str) -> _Object:
        color_name = str(rng.choice(category.palette))
        jitter = rng.uniform(0.9, 1.08) * (1.0 + rng.uniform(-0.04, 0.04, size=3))
        color = np.clip(_rgb(color_name) * jitter, 0.02, 1.0).astype(np.float32)
        parts, supports = category.builder(rng, color, ctx)
        corners = np.concatenate([p.local_corners() for p in parts])
        return cls(category, color_name, parts, supports, corners.min(0), corners.max(0))

    @property
    def rot(self) -> np.ndarray:
        return _rot_z(self.yaw)

    def footprint(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(world xy center, half extents, yaw) of the object's footprint rectangle."""
        center_local = (self.lo + self.hi) / 2.0
        center = self.pos + self.rot @ center_local
        return center[:2], (self.hi - self.lo)[:2] / 2.0, self.yaw

    def corners_world(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (0, 1) for sy in (0, 1) for sz in (0, 1)], dtype=np.float64)
        local = self.lo + signs * (self.hi - self.lo)
        return self.pos + local @ self.rot.T


def _rect_corners(center: np.ndarray, half: np.ndarray, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    axes = np.array([[c, s], [-s, c]])
    signs = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]], dtype=np.float64)
    return center + (signs * half) @ axes


def _rects_overlap(
    a: tuple[np.ndarray, np.ndarray, float], b: tuple[np.ndarray, np.ndarray, float], margin: float
) -> bool:
    """Separating-axis test for two oriented rectangles grown by `margin`."""
    (ca, ha, ya), (cb, hb, yb) = a, b
    axes_a = np.array([[math.cos(ya), math.sin(ya)], [-math.sin(ya), math.cos(ya)]])
    axes_b = np.array([[math.cos(yb), math.sin(yb)], [-math.sin(yb), math.cos(yb)]])
    delta = cb - ca
    for axis in np.concatenate([axes_a, axes_b]):
        ra = np.abs(axes_a @ axis) @ ha
        rb = np.abs(axes_b @ axis) @ hb
        if abs(delta @ axis) > ra + rb + margin:
            return False
    return True


@dataclass
class _Camera:
    position: np.ndarray  # (3,) world
    rotation: (
        np.ndarray
    )  # (3, 3) world_from_cam: columns are the camera x (right), y (down), z (forward) axes
    intrinsics: Intrinsics
    yaw: float
    pitch: float
    roll: float
    hfov: float

    @classmethod
    def looking(
        cls, position: np.ndarray, yaw: float, pitch: float, roll: float, hfov: float, size: int
    ) -> _Camera:
        """Camera at `position` whose optical axis has heading `yaw`, is pitched down by `pitch` and rolled by
        `roll` (radians) about itself."""
        heading = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        right_h = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
        up = np.array([0.0, 0.0, 1.0])
        forward = math.cos(pitch) * heading - math.sin(pitch) * up
        down = -(math.cos(pitch) * up + math.sin(pitch) * heading)
        x_axis = math.cos(roll) * right_h + math.sin(roll) * down
        y_axis = -math.sin(roll) * right_h + math.cos(roll) * down
        rotation = np.stack([x_axis, y_axis, forward], axis=1)
        focal = size / 2.0 / math.tan(hfov / 2.0)
        intrinsics = Intrinsics(fx=focal, fy=focal, cx=size / 2.0, cy=size / 2.0, width=size, height=size)
        return cls(np.asarray(position, dtype=np.float64), rotation, intrinsics, yaw, pitch, roll, hfov)

    def to_cam(self, points_world: np.ndarray) -> np.ndarray:
        return (np.asarray(points_world) - self.position) @ self.rotation

    def to_world(self, points_cam: np.ndarray) -> np.ndarray:
        return np.asarray(points_cam) @ self.rotation.T + self.position

    @property
    def gravity_cam(self) -> np.ndarray:
        return self.rotation.T @ np.array([0.0, 0.0, -1.0])

    def sees(self, obj: _Object, min_z: float = 0.2, margin: float = 0.03) -> bool:
        """All box corners in front of the camera and the box center inside the image."""
        corners = self.to_cam(obj.corners_world())
        if corners[:, 2].min() < min_z:
            return False
        center = self.to_cam(obj.pos + obj.rot @ ((obj.lo + obj.hi) / 2.0))
        k = self.intrinsics
        u = k.fx * center[0] / center[2] + k.cx
        v = k.fy * center[1] / center[2] + k.cy
        lo, hi = margin * k.width, (1 - margin) * k.width
        return lo <= u <= hi and margin * k.height <= v <= (1 - margin) * k.height


@dataclass
class _Room:
    size: np.ndarray  # (3,) x, y extents and ceiling height
    floor_style: str
    floor_colors: tuple[np.ndarray, np.ndarray]
    plank: float
    wall_color: np.ndarray
    trim_color: np.ndarray
    decals: list[tuple[int, float, float, float, float, np.ndarray]]  # (face slot, s0, s1, z0, z1, colour)
    rug: tuple[float, float, float, float, np.ndarray] | None  # (x0, x1, y0, y1, colour)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Room:
        size = np.array([rng.uniform(3.8, 7.0), rng.uniform(4.5, 8.0), rng.uniform(2.5, 3.0)])
        style = str(rng.choice(["wood", "wood", "tile", "carpet"]))
        if style == "wood":
            base = _rgb(str(rng.choice(["brown", "beige"]))) * rng.uniform(0.85, 1.1)
            floor_colors = (base, base * 0.88)
        elif style == "tile":
            base = _rgb(str(rng.choice(["white", "gray", "cream", "beige"])))
            floor_colors = (base, base * rng.uniform(0.7, 0.85))
        else:
            base = _rgb(str(rng.choice(["gray", "beige", "navy", "green"]))) * rng.uniform(0.8, 1.0)
            floor_colors = (base, base)
        wall = _rgb(str(rng.choice(["white", "cream", "beige", "gray", "blue", "green", "pink"])))
        wall = np.clip(0.6 * wall + 0.4 * _rgb("white"), 0, 1)
        trim = _rgb(str(rng.choice(["white", "brown", "gray"])))
        decals: list[tuple[int, float, float, float, float, np.ndarray]] = []
        # A door on a side or far wall, a window, and a picture: colour-only, so they add texture but no geometry.
        door_wall = int(rng.choice([1, 0, 2]))
        along = size[1] if door_wall in (0, 1) else size[0]
        s0 = rng.uniform(0.3, along - 1.3)
        decals.append(
            (door_wall, s0, s0 + 0.9, 0.0, 2.05, _rgb(str(rng.choice(["brown", "white", "beige"]))))
        )
        window_wall = int(rng.choice([w for w in (0, 1, 2) if w != door_wall]))
        along = size[1] if window_wall in (0, 1) else size[0]
        s0 = rng.uniform(0.3, along - 1.6)
        decals.append((window_wall, s0, s0 + rng.uniform(0.9, 1.3), 0.9, 2.1, np.array([0.86, 0.93, 1.0])))
        picture_wall = int(rng.choice([0, 1, 2]))
        along = size[1] if picture_wall in (0, 1) else size[0]
        s0 = rng.uniform(0.3, along - 1.0)
        decals.append(
            (
                picture_wall,
                s0,
                s0 + rng.uniform(0.4, 0.8),
                1.35,
                rng.uniform(1.7, 2.0),
                _rgb(str(rng.choice(["red", "blue", "yellow", "teal", "purple", "orange"]))),
            )
        )
        rug = None
        if rng.random() < 0.5:
            w, d = rng.uniform(1.4, 2.6), rng.uniform(1.0, 2.0)
            x0, y0 = rng.uniform(0.5, size[0] - w - 0.5), rng.uniform(1.0, size[1] - d - 0.5)
            rug = (
                x0,
                x0 + w,
                y0,
                y0 + d,
                _rgb(str(rng.choice(["red", "blue", "beige", "gray", "green", "navy"]))),
            )
        plank = rng.uniform(0.12, 0.22) if style == "wood" else rng.uniform(0.35, 0.6)
        return cls(size, style, floor_colors, plank, wall, trim, decals, rug)

    def contains(self, corners_xy: np.ndarray, margin: float) -> bool:
        return bool(np.all(corners_xy >= margin) and np.all(corners_xy <= self.size[:2] - margin))


def _pick_category(rng: np.random.Generator, kind: str, allowed: set[str] | None = None) -> Category | None:
    names, weights = [], []
    for cat in CATEGORIES.values():
        w = cat.floor_weight if kind == "floor" else cat.surface_weight
        if w > 0 and (allowed is None or cat.name in allowed):
            names.append(cat.name)
            weights.append(w)
    if not names:
        return None
    p = np.asarray(weights) / np.sum(weights)
    return CATEGORIES[str(rng.choice(names, p=p))]


def _group_size(rng: np.random.Generator, category: Category, config: SyntheticConfig) -> int:
    if category.repeatable and rng.random() < config.repeat_probability:
        return int(rng.integers(2, 5))
    return 1


class _Layout:
    """Places objects in a room for a given camera, rejecting collisions and objects the camera cannot see."""

    def __init__(self, rng: np.random.Generator, room: _Room, camera: _Camera):
        self.rng, self.room, self.camera = rng, room, camera
        self.objects: list[_Object] = []

    def _clear_of_camera(self, obj: _Object, clearance: float) -> bool:
        local = np.linalg.solve(obj.rot, self.camera.position - obj.pos)
        nearest = np.clip(local[:2], obj.lo[:2], obj.hi[:2])
        return bool(np.linalg.norm(local[:2] - nearest) > clearance)

    def _floor_ok(self, obj: _Object) -> bool:
        fp = obj.footprint()
        if not self.room.contains(_rect_corners(*fp), 0.02):
            return False
        # Keep tall furniture away from the lens so that it does not fill the frame.
        clearance = max(1.0, 0.6 + 0.8 * float(obj.hi[2] - obj.lo[2]))
        if not self._clear_of_camera(obj, clearance) or not self.camera.sees(obj):
            return False
        return not any(o.on_object is None and _rects_overlap(fp, o.footprint(), 0.06) for o in self.objects)

    def place_floor(self, obj: _Object, row_after: _Object | None = None, tries: int = 40) -> bool:
        rng, cam = self.rng, self.camera
        for attempt in range(tries):
            if row_after is not None and attempt < 3:
                # Next in a row: same heading, shifted sideways by its width plus a gap.
                side = row_after.rot @ np.array([0.0, 1.0, 0.0])
                step = (
                    (obj.hi[1] - obj.lo[1]) / 2
                    + (row_after.hi[1] - row_after.lo[1]) / 2
                    + rng.uniform(0.08, 0.3)
                )
                obj.yaw = row_after.yaw
                obj.pos = row_after.pos + side * step * (1 if attempt % 2 == 0 else -1)
            elif obj.category.against_wall and rng.random() < 0.7:
                wall = int(rng.choice([0, 1, 2], p=[0.6, 0.2, 0.2]))  # far, left (x = 0), right (x = L)
                depth_back = -obj.lo[0] + 0.01
                if wall == 0:
                    obj.yaw = -math.pi / 2
                    obj.pos = np.array(
                        [rng.uniform(0.3, self.room.size[0] - 0.3), self.room.size[1] - depth_back, 0]
                    )
                elif wall == 1:
                    obj.yaw = 0.0
                    obj.pos = np.array([depth_back, rng.uniform(1.0, self.room.size[1] - 0.3), 0])
                else:
                    obj.yaw = math.pi
                    obj.pos = np.array(
                        [self.room.size[0] - depth_back, rng.uniform(1.0, self.room.size[1] - 0.3), 0]
                    )
            else:
                heading = cam.yaw + rng.uniform(-0.45, 0.45) * cam.hfov
                dist = rng.uniform(1.3, 6.0)
                obj.pos = np.array(
                    [
                        cam.position[0] + dist * math.cos(heading),
                        cam.position[1] + dist * math.sin(heading),
                        0.0,
                    ]
                )
                to_cam = math.atan2(cam.position[1] - obj.pos[1], cam.position[0] - obj.pos[0])
                if obj.category.has_front and rng.random() < 0.7:
                    obj.yaw = to_cam + rng.uniform(-1.7, 1.7)
                else:
                    obj.yaw = rng.uniform(-math.pi, math.pi)
            if self._floor_ok(obj):
                self.objects.append(obj)
                return True
        return False

    def place_on(self, obj: _Object, support_index: int, support: _Support, tries: int = 25) -> bool:
        rng, cam = self.rng, self.camera
        base = self.objects[support_index]
        height = obj.hi[2] - obj.lo[2]
        if height > support.max_height:
            return False
        for _ in range(tries):
            if support.aligned:
                obj.yaw = base.yaw + (0.0 if obj.category.has_front or rng.random() < 0.5 else math.pi)
            elif obj.category.has_front and base.category.has_front and rng.random() < 0.75:
                # A monitor faces where one sits at the desk, a tv where the cabinet opens.
                obj.yaw = base.yaw + rng.uniform(-0.35, 0.35)
            elif obj.category.has_front:
                to_cam = math.atan2(cam.position[1] - base.pos[1], cam.position[0] - base.pos[0])
                obj.yaw = to_cam + rng.uniform(-1.2, 1.2)
            else:
                obj.yaw = rng.uniform(-math.pi, math.pi)
            # Sample only where the (rotated) footprint fits on the surface, so large items still find a place.
            rel = obj.yaw - base.yaw
            c, s = abs(math.cos(rel)), abs(math.sin(rel))
            half = (obj.hi - obj.lo)[:2] / 2.0
            free = np.array(
                [support.hx - (c * half[0] + s * half[1]), support.hy - (s * half[0] + c * half[1])]
            )
            if (free < 0).any():
                continue
            offset = (_rot_z(rel) @ ((obj.lo + obj.hi) / 2.0))[:2]
            local = np.array(
                [
                    support.cx - offset[0] + rng.uniform(-free[0], free[0]),
                    support.cy - offset[1] + rng.uniform(-free[1], free[1]),
                    support.z,
                ]
            )
            obj.pos = base.pos + base.rot @ local
            fp = obj.footprint()
            inside = (_rect_corners(*fp) - base.pos[:2]) @ base.rot[:2, :2]
            within = (np.abs(inside[:, 0] - support.cx) <= support.hx) & (
                np.abs(inside[:, 1] - support.cy) <= support.hy
            )
            if not within.all() or not cam.sees(obj):
                continue
            neighbours = [
                o for o in self.objects if o.on_object == support_index and abs(o.pos[2] - obj.pos[2]) < 1e-6
            ]
            if any(_rects_overlap(fp, o.footprint(), 0.015) for o in neighbours):
                continue
            obj.on_object = support_index
            self.objects.append(obj)
            return True
        return False

    def supports_for(self, category: Category) -> list[tuple[int, _Support]]:
        return [(i, s) for i, o in enumerate(self.objects) for s in o.supports if s.tag in category.on]


def _random_camera(
    rng: np.random.Generator,
    room: _Room,
    config: SyntheticConfig,
    position: np.ndarray,
    yaw: float,
    pitch_deg: float,
) -> _Camera:
    roll = math.radians(rng.uniform(*config.roll_deg)) * (1 if rng.random() < 0.5 else -1)
    hfov = math.radians(rng.uniform(*config.hfov_deg))
    return _Camera.looking(position, yaw, math.radians(pitch_deg), roll, hfov, config.image_size)


def _fill_surfaces(
    layout: _Layout,
    rng: np.random.Generator,
    config: SyntheticConfig,
    count: int,
    allowed: set[str] | None = None,
) -> None:
    placed = 0
    for _ in range(count * 3):
        if placed >= count:
            break
        category = _pick_category(rng, "surface", allowed)
        if category is None:
            return
        candidates = layout.supports_for(category)
        if not candidates:
            continue
        group = min(_group_size(rng, category, config), count - placed)
        for _ in range(group):
            index, support = candidates[int(rng.integers(len(candidates)))]
            obj = _Object.build(rng, category, "shelf" if support.tag == "shelf" else "surface")
            if layout.place_on(obj, index, support):
                placed += 1


def _indoor_layout(rng: np.random.Generator, config: SyntheticConfig) -> _Layout:
    room = _Room.sample(rng)
    position = np.array(
        [rng.uniform(0.3, 0.7) * room.size[0], rng.uniform(0.15, 0.6), rng.uniform(1.15, 1.7)]
    )
    camera = _random_camera(
        rng, room, config, position, math.pi / 2 + rng.uniform(-0.4, 0.4), rng.uniform(8, 26)
    )
    layout = _Layout(rng, room, camera)
    total = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    n_floor = max(1, round(total * rng.uniform(0.4, 0.65)))
    # Start with a support surface most of the time so that small objects have somewhere to stand.
    first = rng.random() < 0.85
    while len(layout.objects) < n_floor:
        category = (
            _pick_category(rng, "floor", set(SUPPORT_CATEGORIES)) if first else _pick_category(rng, "floor")
        )
        first = False
        assert category is not None
        group = min(_group_size(rng, category, config), n_floor - len(layout.objects))
        previous: _Object | None = None
        row = rng.random() < 0.6
        for _ in range(group):
            obj = _Object.build(rng, category, "floor")
            if layout.place_floor(obj, previous if row else None):
                previous = obj
        n_floor -= 0 if previous is not None else 1  # give up on a category that does not fit
    _fill_surfaces(layout, rng, config, total - len(layout.objects))
    return layout


def _tabletop_layout(rng: np.random.Generator, config: SyntheticConfig) -> _Layout:
    room = _Room.sample(rng)
    category = CATEGORIES["desk"] if rng.random() < 0.35 else CATEGORIES["table"]
    table = _Object.build(rng, category, "floor")
    table.yaw = rng.uniform(-math.pi, math.pi)
    table.pos = np.array([rng.uniform(1.5, room.size[0] - 1.5), rng.uniform(1.8, room.size[1] - 1.5), 0.0])
    top = table.supports[0]
    # Approach from the front for a desk (where one sits), from any side for a table.
    side = 0.0 if category.name == "desk" else float(rng.choice([0.0, math.pi / 2, math.pi, -math.pi / 2]))
    approach = table.yaw + side + rng.uniform(-0.5, 0.5)
    reach = abs(math.cos(approach - table.yaw)) * top.hx + abs(math.sin(approach - table.yaw)) * top.hy
    dist = reach + rng.uniform(0.25, 0.6)
    position = table.pos + np.array([math.cos(approach) * dist, math.sin(approach) * dist, 0.0])
    position[2] = top.z + rng.uniform(0.35, 0.75)
    target = (
        table.pos + table.rot @ np.array([top.cx, top.cy, top.z]) + np.append(rng.uniform(-0.1, 0.1, 2), 0)
    )
    delta = target - position
    yaw = math.atan2(delta[1], delta[0]) + rng.uniform(-0.12, 0.12)
    pitch = math.degrees(math.atan2(-delta[2], math.hypot(delta[0], delta[1]))) + rng.uniform(-6, 6)
    camera = _random_camera(rng, room, config, position, yaw, float(np.clip(pitch, 22.0, 60.0)))
    layout = _Layout(rng, room, camera)
    if not room.contains(position[None, :2], 0.3) or camera.to_cam(table.corners_world())[:, 2].min() < 0.2:
        return layout  # the caller retries with a new layout
    layout.objects.append(table)
    total = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    _fill_surfaces(layout, rng, config, max(1, total - 1), set(TABLETOP_ITEMS))
    # A chair or two behind the table now and then, for context and occlusion.
    for _ in range(int(rng.integers(0, 3))):
        extra = _pick_category(rng, "floor", {"chair", "plant", "lamp", "cabinet", "bookshelf", "trash can"})
        assert extra is not None
        layout.place_floor(_Object.build(rng, extra, "floor"), tries=10)
    return layout


# ------------------------------------------------------------------------------------------- rendering


@dataclass
class _Prim:
    kind: int
    obj: int  # index into layout.objects
    center: np.ndarray  # world (3,)
    rot: np.ndarray  # world_from_local (boxes)
    half: np.ndarray
    colors: np.ndarray  # (6, 3)

    def corners(self) -> np.ndarray:
        signs = np.array(
            [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64
        )
        return self.center + (signs * self.half) @ self.rot.T

    def hit_t(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Nearest hit parameter t (inf where none) for (3, N) float32 ray directions from `origin`.

        Planar (3, N) layout: every step is an elementwise op on contiguous rows, much faster in numpy than
        reductions over a length-3 last axis."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            offset = origin - self.center
            if self.kind == BOX:  # slab test in the box's own frame, one axis at a time
                t_near = t_far = None
                for axis in range(3):
                    r = self.rot[:, axis]
                    if abs(r[2]) > 1.0 - 1e-12:  # the vertical axis: its direction component is the ray's z
                        d = dirs[2] if r[2] > 0 else -dirs[2]
                    elif abs(r[2]) < 1e-12:  # horizontal
                        d = dirs[0] * np.float32(r[0]) + dirs[1] * np.float32(r[1])
                    else:
                        d = (
                            dirs[0] * np.float32(r[0])
                            + dirs[1] * np.float32(r[1])
                            + dirs[2] * np.float32(r[2])
                        )
                    o, h = np.float32(offset @ r), np.float32(self.half[axis])
                    inv = np.float32(1.0) / d
                    ta = (-h - o) * inv
                    tb = (h - o) * inv
                    lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
                    t_near = lo if t_near is None else np.maximum(t_near, lo)
                    t_far = hi if t_far is None else np.minimum(t_far, hi)
                return np.where((t_near <= t_far) & (t_near > 1e-4), t_near, np.float32(np.inf))
            ox, oy, oz = (np.float32(v) for v in offset)
            dx, dy, dz = dirs[0], dirs[1], dirs[2]
            if self.kind == CYLINDER:  # vertical: quadratic in x, y for the side, a plane for the visible cap
                radius, half_h = np.float32(self.half[0]), np.float32(self.half[2])
                a = dx * dx + dy * dy
                b = ox * dx + oy * dy
                disc = b * b - a * (ox * ox + oy * oy - radius * radius)
                t_side = (-b - np.sqrt(disc)) / a
                side = (disc >= 0) & (t_side > 1e-4) & (np.abs(oz + t_side * dz) <= half_h)
                t = np.where(side, t_side, np.float32(np.inf))
                if abs(oz) > half_h:  # the camera sees one cap at most: the one on its side
                    t_cap = ((half_h if oz > 0 else -half_h) - oz) / dz
                    px, py = ox + t_cap * dx, oy + t_cap * dy
                    cap = (t_cap > 1e-4) & (px * px + py * py <= radius * radius) & (t_cap < t)
                    t = np.where(cap, t_cap, t)
                return t
            radius = np.float32(self.half[0])
            a = dx * dx + dy * dy + dz * dz
            b = ox * dx + oy * dy + oz * dz
            disc = b * b - a * (ox * ox + oy * oy + oz * oz - radius * radius)
            t_hit = (-b - np.sqrt(disc)) / a
            return np.where((disc >= 0) & (t_hit > 1e-4), t_hit, np.float32(np.inf))

    def face_of(self, points: np.ndarray) -> np.ndarray:
        """Face slot of (N, 3) world points on the primitive's surface (0 = curved surface, 4/5 = bottom/top)."""
        local = (points - self.center.astype(np.float32)) @ self.rot.astype(np.float32)
        if self.kind == BOX:
            axis = np.abs(local / self.half.astype(np.float32)).argmax(axis=1)
            positive = np.take_along_axis(local, axis[:, None], 1)[:, 0] > 0
            return (axis * 2 + positive).astype(np.int8)
        if self.kind == CYLINDER:
            off_cap = np.abs(np.abs(local[:, 2]) - self.half[2])
            off_side = np.abs(np.hypot(local[:, 0], local[:, 1]) - self.half[0])
            return np.where(off_cap < off_side, np.where(local[:, 2] > 0, 5, 4), 0).astype(np.int8)
        return np.zeros(len(points), dtype=np.int8)

    def face_normals(self) -> np.ndarray:
        """(6, 3) world normals per face slot (curved surfaces are computed per pixel instead)."""
        normals = np.zeros((6, 3))
        for axis in range(3):
            normals[2 * axis] = -self.rot[:, axis]
            normals[2 * axis + 1] = self.rot[:, axis]
        return normals


def _prims(objects: list[_Object]) -> list[_Prim]:
    prims = []
    for index, obj in enumerate(objects):
        rot = obj.rot
        for part in obj.parts:
            prims.append(
                _Prim(part.kind, index, obj.pos + rot @ part.center, rot @ part.rot, part.half, part.colors)
            )
    return prims


def _pixel_rect(prim_corners_cam: np.ndarray, k: Intrinsics) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols whose centers may see the primitive: (v0, v1, u0, u1), or None when off-screen."""
    z = prim_corners_cam[:, 2]
    if z.max() <= 1e-3:
        return None
    if z.min() <= 1e-3:
        return 0, k.height, 0, k.width
    u = k.fx * prim_corners_cam[:, 0] / z + k.cx
    v = k.fy * prim_corners_cam[:, 1] / z + k.cy
    u0, u1 = max(0, math.floor(u.min() - 1)), min(k.width, math.ceil(u.max() + 1))
    v0, v1 = max(0, math.floor(v.min() - 1)), min(k.height, math.ceil(v.max() + 1))
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


def _hash01(*ints: np.ndarray) -> np.ndarray:
    """Cheap deterministic hash of integer lattice coordinates to [0, 1)."""
    h = np.zeros(np.broadcast_shapes(*(np.shape(i) for i in ints)), dtype=np.int64)
    for value, prime in zip(ints, (73856093, 19349663, 83492791), strict=False):
        h ^= np.asarray(value).astype(np.int64) * prime
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 8) & 0xFFFF).astype(np.float32) / 65536.0


def _floor_albedo(room: _Room, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if room.floor_style == "wood":  # planks with per-board tone, staggered joints and dark seams
        along_rows = y / room.plank
        rows = np.maximum(along_rows, 0).astype(np.int32)
        row_ids = np.arange(int(rows.max(initial=0)) + 1)
        shifted = (x + (_hash01(row_ids) * 1.5)[rows]) / 1.3  # each row's joints start elsewhere
        segments = np.maximum(shifted, 0).astype(np.int32)
        seg_ids = np.arange(int(segments.max(initial=0)) + 1)
        tones = 0.86 + 0.22 * _hash01(row_ids[:, None], seg_ids[None, :])  # one tone per board
        tone = tones[rows, segments]
        seam = (along_rows % 1.0 < 0.05) | (shifted % 1.0 < 0.008)
        albedo = room.floor_colors[0][None] * np.where(seam, np.float32(0.62), tone)[:, None]
    elif room.floor_style == "tile":
        checker = ((np.floor(x / room.plank) + np.floor(y / room.plank)) % 2 == 0)[:, None]
        albedo = np.where(checker, room.floor_colors[0], room.floor_colors[1])
        grout = ((x / room.plank) % 1.0 < 0.02) | ((y / room.plank) % 1.0 < 0.02)
        albedo[grout] = 0.55 * room.floor_colors[0]
    else:
        albedo = room.floor_colors[0][None] * (0.93 + 0.07 * np.sin(x * 9.0) * np.sin(y * 7.0))[:, None]
    if room.rug is not None:
        x0, x1, y0, y1, colour = room.rug
        rug = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        border = rug & ((x - x0 < 0.08) | (x1 - x < 0.08) | (y - y0 < 0.08) | (y1 - y < 0.08))
        albedo[rug] = colour
        albedo[border] = colour * 0.6
    return albedo.astype(np.float32)


def _wall_albedo(room: _Room, x: np.ndarray, y: np.ndarray, z: np.ndarray, face: np.ndarray) -> np.ndarray:
    albedo = np.tile(room.wall_color.astype(np.float32), (len(z), 1))
    along = np.where(face <= 1, y, x)  # coordinate along the wall
    for slot, s0, s1, z0, z1, colour in room.decals:  # door, window, picture
        albedo[(face == slot) & (along >= s0) & (along <= s1) & (z >= z0) & (z <= z1)] = colour
    albedo[z < 0.09] = room.trim_color
    return albedo


def _room_albedo(room: _Room, points: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) of room pixels from their (3, N) world points (face slots: 0-3 walls, 4 ceiling, 5 floor)."""
    albedo = np.empty((len(face), 3), dtype=np.float32)
    albedo[face == 4] = (0.93, 0.93, 0.91)
    floor = np.flatnonzero(face == 5)
    albedo[floor] = _floor_albedo(room, points[0, floor], points[1, floor])
    walls = np.flatnonzero(face <= 3)
    albedo[walls] = _wall_albedo(room, points[0, walls], points[1, walls], points[2, walls], face[walls])
    return albedo


LIGHT_DIR = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])


def _render(
    layout: _Layout, rng: np.random.Generator, config: SyntheticConfig, rays: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, tuple[int, float]]]:
    """Ray-cast the layout. Returns rgb (H, W, 3) uint8, depth (H, W) float32, object index + 1 per pixel
    (H, W) int16 (0 = room), and per object {index: (visible pixels, visible fraction)}."""
    cam, room = layout.camera, layout.room
    k = cam.intrinsics
    height, width = k.height, k.width
    origin = cam.position

    # Room: the camera is inside the box [0, size]; per axis, the distance to the wall the ray leaves through.
    o = origin.astype(np.float32)
    size = room.size.astype(np.float32)
    with np.errstate(divide="ignore"):
        exits = [np.where(rays[..., a] > 0, size[a] - o[a], o[a]) / np.abs(rays[..., a]) for a in range(3)]
    depth = exits[2]
    face = np.where(rays[..., 2] < 0, 5, 4).astype(np.int8)  # floor (normal +z) or ceiling
    for a in (0, 1):
        nearer = exits[a] < depth
        depth = np.where(nearer, exits[a], depth)
        face[nearer] = np.where(rays[..., a][nearer] < 0, 2 * a + 1, 2 * a)
    prim_of = np.zeros((height, width), dtype=np.int16)  # 0 = room, p + 1 = primitive p

    prims = _prims(layout.objects)
    planar = np.ascontiguousarray(rays.transpose(2, 0, 1))  # (3, H, W) for the per-primitive tests
    silhouettes: dict[int, np.ndarray] = {}
    for p, prim in enumerate(prims):
        rect = _pixel_rect(cam.to_cam(prim.corners()), k)
        if rect is None:
            continue
        v0, v1, u0, u1 = rect
        sub = planar[:, v0:v1, u0:u1].reshape(3, -1)
        t = prim.hit_t(origin, sub)
        hit = np.isfinite(t)
        if not hit.any():
            continue
        sil = silhouettes.setdefault(prim.obj, np.zeros((height, width), dtype=bool))
        sil[v0:v1, u0:u1] |= hit.reshape(v1 - v0, u1 - u0)
        depth_view = depth[v0:v1, u0:u1].reshape(-1)  # a copy; written back below
        closer = np.flatnonzero(t < depth_view)
        if closer.size == 0:
            continue
        rows, cols = np.divmod(closer, u1 - u0)
        rows += v0
        cols += u0
        depth[rows, cols] = t[closer]
        prim_of[rows, cols] = p + 1
        face[rows, cols] = prim.face_of(o + sub[:, closer].T * t[closer, None])

    # Shading: albedo x texture x (ambient + Lambert + a little camera-facing light), plus sensor noise.
    points = o[:, None] + planar.reshape(3, -1) * depth.reshape(1, -1)  # (3, N) world points
    flat_prim = prim_of.reshape(-1)
    flat_face = face.reshape(-1)
    n_prims = len(prims) + 1
    colors = np.zeros((n_prims * 6, 3), dtype=np.float32)
    normals = np.zeros((n_prims, 6, 3), dtype=np.float32)
    centers = np.zeros((n_prims, 3), dtype=np.float32)
    kinds = np.full(n_prims, BOX, dtype=np.int8)
    phases = rng.uniform(0, 2 * math.pi, size=(n_prims, 3)).astype(np.float32).T.copy()
    for axis_index in range(3):  # room faces: inward normals
        normals[0, 2 * axis_index, axis_index] = -1.0
        normals[0, 2 * axis_index + 1, axis_index] = 1.0
    for p, prim in enumerate(prims, start=1):
        colors[6 * p : 6 * p + 6], normals[p], centers[p], kinds[p] = (
            prim.colors,
            prim.face_normals(),
            prim.center,
            prim.kind,
        )
    slot = flat_prim.astype(np.int32) * 6 + flat_face
    albedo = colors.take(slot, axis=0)
    normal = normals.reshape(-1, 3).take(slot, axis=0)
    is_room = flat_prim == 0
    room_px = np.flatnonzero(is_room)
    albedo[room_px] = _room_albedo(room, points[:, room_px], flat_face[room_px])
    object_px = np.flatnonzero(~is_room)
    if object_px.size:
        owner = flat_prim[object_px]
        curved = np.flatnonzero((kinds[owner] != BOX) & (flat_face[object_px] == 0))
        if curved.size:
            px = object_px[curved]
            radial = points[:, px].T - centers[owner[curved]]
            radial[kinds[owner[curved]] == CYLINDER, 2] = 0.0
            normal[px] = radial / np.linalg.norm(radial, axis=1, keepdims=True)
        q = points[:, object_px] * np.float32(23.0)
        ph = phases[:, owner]
        grain = np.sin(q[0] + ph[0]) * np.sin(q[1] * np.float32(0.7) + ph[1]) + np.float32(0.5) * np.sin(
            q[2] * np.float32(1.3) + ph[2]
        )
        albedo[object_px] *= (1.0 + 0.045 * grain)[:, None]
    lambert = np.maximum(normal @ LIGHT_DIR.astype(np.float32), 0.0)
    facing = np.abs(normal @ cam.rotation[:, 2].astype(np.float32))
    light = 0.38 + 0.5 * lambert + 0.17 * facing
    if config.sensor_noise > 0:  # luminance noise, the same on the three channels
        light += rng.standard_normal(light.shape, dtype=np.float32) * (config.sensor_noise / 255.0)
    rgb = albedo * (light * 255.0)[:, None]
    rgb = np.clip(rgb + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3)

    owner_of_prim = np.array([0] + [pr.obj + 1 for pr in prims], dtype=np.int16)
    object_of = owner_of_prim[prim_of]
    visible_counts = np.bincount(object_of.reshape(-1), minlength=len(layout.objects) + 1)
    visibility: dict[int, tuple[int, float]] = {}
    for index, sil in silhouettes.items():
        visible = int(visible_counts[index + 1])
        if visible == 0:
            continue
        unoccluded = visible / max(1, int(np.count_nonzero(sil)))
        visibility[index] = (visible, unoccluded * _in_frame_fraction(layout, prims, index))
    return rgb, depth.astype(np.float32), object_of, visibility


def _in_frame_fraction(layout: _Layout, prims: list[_Prim], index: int, samples: int = 48) -> float:
    """Share of the object's (unoccluded) silhouette that falls inside the image, from a coarse ray grid over its
    whole projected box; 1.0 when the box projects inside the image."""
    cam = layout.camera
    k = cam.intrinsics
    corners = cam.to_cam(layout.objects[index].corners_world())
    u = k.fx * corners[:, 0] / corners[:, 2] + k.cx
    v = k.fy * corners[:, 1] / corners[:, 2] + k.cy
    if u.min() >= 0 and v.min() >= 0 and u.max() <= k.width and v.max() <= k.height:
        return 1.0
    uu, vv = np.meshgrid(np.linspace(u.min(), u.max(), samples), np.linspace(v.min(), v.max(), samples))
    dirs_cam = np.stack([(uu - k.cx) / k.fx, (vv - k.cy) / k.fy, np.ones_like(uu)], -1).reshape(-1, 3)
    dirs = np.ascontiguousarray((dirs_cam @ cam.rotation.T).T, dtype=np.float32)
    hit = np.zeros(dirs.shape[1], dtype=bool)
    for prim in prims:
        if prim.obj == index:
            hit |= np.isfinite(prim.hit_t(cam.position, dirs))
    inside = hit & (uu.ravel() >= 0) & (uu.ravel() < k.width) & (vv.ravel() >= 0) & (vv.ravel() < k.height)
    total = int(hit.sum())
    return float(inside.sum()) / total if total else 1.0


# --------------------------------------------------------------------------------------- ground truth


def _box3d(
    obj: _Object, camera: _Camera, frame: GravityFrame
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


def _world_rays(camera: _Camera) -> np.ndarray:
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
    if not _SHARD_RE.match(shard):
        raise ValueError(f"shard name {shard!r} must be a plain path component (letters, digits, . _ -)")
    rng = scene_rng(config.seed, shard, index)
    scene_id = scene_id_for(shard, index)
    for _attempt in range(config.max_attempts):
        kind = "tabletop" if rng.random() < config.tabletop_fraction else "indoor"
        layout = _tabletop_layout(rng, config) if kind == "tabletop" else _indoor_layout(rng, config)
        if not layout.objects:
            continue
        camera = layout.camera
        rgb, depth, object_of, visibility = _render(layout, rng, config, _world_rays(camera))
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


# ------------------------------------------------------------------------------------------ the stage


def write_synthetic_shard(root: Path, shard: str, config: SyntheticConfig) -> StageReport:
    """Render `config.num_scenes` scenes into `<root>/source_images/<shard>/`, atomically.

    Images are JPEG, depth the project's 16-bit log PNG, masks 8-bit instance-id PNGs; `scenes.jsonl` holds one
    `Scene` per line with paths relative to `root`. The whole directory appears at once (assets.storage.atomic_dir):
    a crash leaves only a hidden `.tmp-*` directory that the next write removes. A scene that cannot be laid out
    becomes a rejection (in `rejected.jsonl`), not a failed shard.
    """
    if not _SHARD_RE.match(shard):
        raise ValueError(f"shard name {shard!r} must be a plain path component (letters, digits, . _ -)")
    final = shard_dir(Path(root), STAGE, shard)
    report = StageReport(stage=STAGE, shard=shard, output_dir=final)
    sizes: dict[str, list[int]] = {"image": [], "depth": [], "mask": []}
    timings = {"render": 0.0, "encode": 0.0}
    with atomic_dir(final) as tmp:
        for sub in ("images", "depth", "masks"):
            (tmp / sub).mkdir()

        def one(index: int) -> Scene:
            start = time.perf_counter()
            rendered = render_scene(config, shard, index)
            mid = time.perf_counter()
            sid = rendered.scene.scene_id
            blobs = {
                "image": (
                    tmp / "images" / f"{sid}.jpg",
                    encode_jpeg(rendered.rgb, quality=config.jpeg_quality),
                ),
                "depth": (
                    tmp / "depth" / f"{sid}.png",
                    encode_depth_png(rendered.depth, compress_level=config.depth_png_level),
                ),
                "mask": (tmp / "masks" / f"{sid}.png", encode_mask_png(rendered.instance_mask)),
            }
            for key, (path, data) in blobs.items():
                path.write_bytes(data)
                sizes[key].append(len(data))
            timings["render"] += mid - start
            timings["encode"] += time.perf_counter() - mid
            return rendered.scene

        scenes = process_items(range(config.num_scenes), one, report, lambda i: scene_id_for(shard, i))
        write_scenes(tmp / "scenes.jsonl", scenes)
        if report.rejections:
            write_jsonl(tmp / "rejected.jsonl", [r.as_dict() for r in report.rejections])
        categories = Counter(obj.category for scene in scenes for obj in scene.objects)
        n = max(1, len(scenes))
        report.metadata = {
            "scenes": len(scenes),
            "objects": sum(categories.values()),
            "categories": dict(sorted(categories.items())),
            "num_categories": len(categories),
            "tabletop_scenes": sum(1 for s in scenes if s.metadata.get("kind") == "tabletop"),
            "mean_image_bytes": round(sum(sizes["image"]) / n),
            "mean_depth_bytes": round(sum(sizes["depth"]) / n),
            "mean_mask_bytes": round(sum(sizes["mask"]) / n),
            "render_seconds": round(timings["render"], 3),
            "encode_seconds": round(timings["encode"], 3),
            "scenes_per_second": round(len(scenes) / max(1e-9, timings["render"] + timings["encode"]), 2),
        }
        report.metadata["digest"] = directory_digest(tmp)
        report.preview = [
            {"scene_id": s.scene_id, "objects": len(s.objects), "caption": s.caption} for s in scenes[:5]
        ]
        manifest = report.manifest()
        manifest["digest"] = report.metadata["digest"]
        manifest["config"] = config.model_dump(mode="json")
        atomic_write_json(tmp / "_manifest.json", manifest)
    if scenes:
        report.thumbnail = final / "images" / f"{scenes[0].scene_id}.jpg"
    return report
