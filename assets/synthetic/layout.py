"""Layout: a room (or a tabletop close-up), furniture on the floor, small objects on support surfaces, and the
camera that looks at them (world frame: x, y on the floor, z up, floor at z = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from assets.records import Intrinsics
from assets.synthetic.catalog import (
    CATEGORIES,
    SUPPORT_CATEGORIES,
    TABLETOP_ITEMS,
    Category,
    Part,
    Support,
    color_rgb,
)
from assets.synthetic.config import SyntheticConfig

# ---------------------------------------------------------------------------------------------- layout


def _rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class PlacedObject:
    category: Category
    color_name: str
    parts: list[Part]
    supports: list[Support]
    lo: np.ndarray  # local tight box (3,)
    hi: np.ndarray
    pos: np.ndarray = field(default_factory=lambda: np.zeros(3))  # world position of the local origin
    yaw: float = 0.0
    on_object: int | None = None  # index of the object it stands on

    @classmethod
    def build(cls, rng: np.random.Generator, category: Category, ctx: str) -> PlacedObject:
        color_name = str(rng.choice(category.palette))
        jitter = rng.uniform(0.9, 1.08) * (1.0 + rng.uniform(-0.04, 0.04, size=3))
        color = np.clip(color_rgb(color_name) * jitter, 0.02, 1.0).astype(np.float32)
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
class Camera:
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
    ) -> Camera:
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

    def sees(self, obj: PlacedObject, min_z: float = 0.2, margin: float = 0.03) -> bool:
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
class Room:
    size: np.ndarray  # (3,) x, y extents and ceiling height
    floor_style: str
    floor_colors: tuple[np.ndarray, np.ndarray]
    plank: float
    wall_color: np.ndarray
    trim_color: np.ndarray
    decals: list[tuple[int, float, float, float, float, np.ndarray]]  # (face slot, s0, s1, z0, z1, colour)
    rug: tuple[float, float, float, float, np.ndarray] | None  # (x0, x1, y0, y1, colour)

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Room:
        size = np.array([rng.uniform(3.8, 7.0), rng.uniform(4.5, 8.0), rng.uniform(2.5, 3.0)])
        style = str(rng.choice(["wood", "wood", "tile", "carpet"]))
        if style == "wood":
            base = color_rgb(str(rng.choice(["brown", "beige"]))) * rng.uniform(0.85, 1.1)
            floor_colors = (base, base * 0.88)
        elif style == "tile":
            base = color_rgb(str(rng.choice(["white", "gray", "cream", "beige"])))
            floor_colors = (base, base * rng.uniform(0.7, 0.85))
        else:
            base = color_rgb(str(rng.choice(["gray", "beige", "navy", "green"]))) * rng.uniform(0.8, 1.0)
            floor_colors = (base, base)
        wall = color_rgb(str(rng.choice(["white", "cream", "beige", "gray", "blue", "green", "pink"])))
        wall = np.clip(0.6 * wall + 0.4 * color_rgb("white"), 0, 1)
        trim = color_rgb(str(rng.choice(["white", "brown", "gray"])))
        decals: list[tuple[int, float, float, float, float, np.ndarray]] = []
        # A door on a side or far wall, a window, and a picture: colour-only, so they add texture but no geometry.
        door_wall = int(rng.choice([1, 0, 2]))
        along = size[1] if door_wall in (0, 1) else size[0]
        s0 = rng.uniform(0.3, along - 1.3)
        decals.append(
            (door_wall, s0, s0 + 0.9, 0.0, 2.05, color_rgb(str(rng.choice(["brown", "white", "beige"]))))
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
                color_rgb(str(rng.choice(["red", "blue", "yellow", "teal", "purple", "orange"]))),
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
                color_rgb(str(rng.choice(["red", "blue", "beige", "gray", "green", "navy"]))),
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


class Layout:
    """Places objects in a room for a given camera, rejecting collisions and objects the camera cannot see."""

    def __init__(self, rng: np.random.Generator, room: Room, camera: Camera):
        self.rng, self.room, self.camera = rng, room, camera
        self.objects: list[PlacedObject] = []

    def _clear_of_camera(self, obj: PlacedObject, clearance: float) -> bool:
        local = np.linalg.solve(obj.rot, self.camera.position - obj.pos)
        nearest = np.clip(local[:2], obj.lo[:2], obj.hi[:2])
        return bool(np.linalg.norm(local[:2] - nearest) > clearance)

    def _floor_ok(self, obj: PlacedObject) -> bool:
        fp = obj.footprint()
        if not self.room.contains(_rect_corners(*fp), 0.02):
            return False
        # Keep tall furniture away from the lens so that it does not fill the frame.
        clearance = max(1.0, 0.6 + 0.8 * float(obj.hi[2] - obj.lo[2]))
        if not self._clear_of_camera(obj, clearance) or not self.camera.sees(obj):
            return False
        return not any(o.on_object is None and _rects_overlap(fp, o.footprint(), 0.06) for o in self.objects)

    def place_floor(self, obj: PlacedObject, row_after: PlacedObject | None = None, tries: int = 40) -> bool:
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

    def place_on(self, obj: PlacedObject, support_index: int, support: Support, tries: int = 25) -> bool:
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

    def supports_for(self, category: Category) -> list[tuple[int, Support]]:
        return [(i, s) for i, o in enumerate(self.objects) for s in o.supports if s.tag in category.on]


def _random_camera(
    rng: np.random.Generator,
    room: Room,
    config: SyntheticConfig,
    position: np.ndarray,
    yaw: float,
    pitch_deg: float,
) -> Camera:
    roll = math.radians(rng.uniform(*config.roll_deg)) * (1 if rng.random() < 0.5 else -1)
    hfov = math.radians(rng.uniform(*config.hfov_deg))
    return Camera.looking(position, yaw, math.radians(pitch_deg), roll, hfov, config.image_size)


def _fill_surfaces(
    layout: Layout,
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
            obj = PlacedObject.build(rng, category, "shelf" if support.tag == "shelf" else "surface")
            if layout.place_on(obj, index, support):
                placed += 1


def indoor_layout(rng: np.random.Generator, config: SyntheticConfig) -> Layout:
    room = Room.sample(rng)
    position = np.array(
        [rng.uniform(0.3, 0.7) * room.size[0], rng.uniform(0.15, 0.6), rng.uniform(1.15, 1.7)]
    )
    camera = _random_camera(
        rng, room, config, position, math.pi / 2 + rng.uniform(-0.4, 0.4), rng.uniform(8, 26)
    )
    layout = Layout(rng, room, camera)
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
        previous: PlacedObject | None = None
        row = rng.random() < 0.6
        for _ in range(group):
            obj = PlacedObject.build(rng, category, "floor")
            if layout.place_floor(obj, previous if row else None):
                previous = obj
        n_floor -= 0 if previous is not None else 1  # give up on a category that does not fit
    _fill_surfaces(layout, rng, config, total - len(layout.objects))
    return layout


def tabletop_layout(rng: np.random.Generator, config: SyntheticConfig) -> Layout:
    room = Room.sample(rng)
    category = CATEGORIES["desk"] if rng.random() < 0.35 else CATEGORIES["table"]
    table = PlacedObject.build(rng, category, "floor")
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
    layout = Layout(rng, room, camera)
    if not room.contains(position[None, :2], 0.3) or camera.to_cam(table.corners_world())[:, 2].min() < 0.2:
        return layout  # the caller retries with a new layout
    layout.objects.append(table)
    total = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    _fill_surfaces(layout, rng, config, max(1, total - 1), set(TABLETOP_ITEMS))
    # A chair or two behind the table now and then, for context and occlusion.
    for _ in range(int(rng.integers(0, 3))):
        extra = _pick_category(rng, "floor", {"chair", "plant", "lamp", "cabinet", "bookshelf", "trash can"})
        assert extra is not None
        layout.place_floor(PlacedObject.build(rng, extra, "floor"), tries=10)
    return layout
