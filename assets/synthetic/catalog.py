"""The catalog of parts: colours, primitives (oriented boxes, vertical cylinders, spheres) and the object
categories built from them, each in an object-local frame whose +x axis is the facing direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

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


def color_rgb(name: str) -> np.ndarray:
    return np.asarray(COLORS[name], dtype=np.float32) / 255.0


def _shade_of(color: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(color * factor, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------- primitives

BOX, CYLINDER, SPHERE = 0, 1, 2
# Face slots: axis * 2 + (outward normal points to +axis). Slot 1 is the local +x ("front") face of a box;
# slot 5 the top. Cylinders and spheres use slot 0 for their curved surface (normal computed per pixel).


@dataclass
class Part:
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
) -> Part:
    """Axis-aligned box spanning z0..z0+height, centred on (x, y)."""
    center = np.array([x, y, z0 + height / 2.0])
    return Part(BOX, center, np.array([length, width, height]) / 2.0, _faces(color, front, top))


def _cylinder(
    x: float, y: float, z0: float, z1: float, radius: float, color: np.ndarray, top: np.ndarray | None = None
) -> Part:
    center = np.array([x, y, (z0 + z1) / 2.0])
    return Part(CYLINDER, center, np.array([radius, radius, (z1 - z0) / 2.0]), _faces(color, None, top))


def _sphere(x: float, y: float, z: float, radius: float, color: np.ndarray) -> Part:
    return Part(SPHERE, np.array([x, y, z]), np.full(3, radius), _faces(color))


@dataclass(frozen=True)
class Support:
    """A horizontal surface in an object's local frame that other objects may stand on."""

    tag: str
    z: float
    cx: float
    cy: float
    hx: float
    hy: float
    max_height: float
    aligned: bool = False  # items take the supporting object's yaw (books on a shelf)


Built = tuple[list[Part], list[Support]]


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
    seat = Support(
        "sofa", seat_h, back_t / 2, 0, (length - back_t) / 2 - 0.05, (width - 2 * arm) / 2 - 0.05, 0.5
    )
    return parts, [seat]


def _bed(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length = rng.uniform(1.95, 2.1)
    width = float(rng.choice([0.95, 1.4, 1.6, 1.8])) + rng.uniform(-0.03, 0.03)
    frame_h, mattress_h = rng.uniform(0.25, 0.35), rng.uniform(0.18, 0.25)
    head_h = rng.uniform(0.9, 1.15)
    sheet = color_rgb(str(rng.choice(["white", "cream", "beige", "blue", "gray"]))) * rng.uniform(0.92, 1.05)
    parts = [
        _box(0.02, 0, 0, length - 0.04, width, frame_h, c),
        _box(0.04, 0, frame_h, length - 0.12, width - 0.04, mattress_h, np.clip(sheet, 0, 1)),
        _box(-length / 2 + 0.03, 0, 0, 0.06, width + 0.04, head_h, _shade_of(c, 0.9)),
    ]
    top = frame_h + mattress_h
    return parts, [Support("bed", top, 0.05, 0, length / 2 - 0.15, width / 2 - 0.1, 0.4)]


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
        return parts, [Support("table", height, 0, 0, h, h, 0.8)]
    length, width, leg = rng.uniform(0.9, 1.6), rng.uniform(0.7, 0.95), 0.05
    parts = [_box(0, 0, height - t, length, width, t, c, top=_shade_of(c, 1.08))]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(
                _box(sx * (length / 2 - leg), sy * (width / 2 - leg), 0, leg, leg, height - t, legs_c)
            )
    return parts, [Support("table", height, 0, 0, length / 2 - 0.03, width / 2 - 0.03, 0.8)]


def _desk(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    length, width, height, t = rng.uniform(0.55, 0.75), rng.uniform(1.0, 1.6), rng.uniform(0.72, 0.76), 0.035
    drawer = _shade_of(c, 1.15)
    parts = [
        _box(0, 0, height - t, length, width, t, c, top=_shade_of(c, 1.06)),
        _box(0, -width / 2 + 0.015, 0, length, 0.03, height - t, _shade_of(c, 0.85)),
        _box(-length / 2 + 0.02, 0, 0.25, 0.02, width - 0.06, height - t - 0.25, _shade_of(c, 0.8)),
        _box(0, width / 2 - 0.21, 0, length - 0.02, 0.4, height - t, _shade_of(c, 0.9), front=drawer),
    ]
    return parts, [Support("desk", height, 0, 0, length / 2 - 0.03, width / 2 - 0.03, 0.8)]


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
        _box(length / 2 + 0.01, 0, height * 0.7, 0.02, min(0.12, width * 0.3), 0.02, color_rgb("silver")),
    ]
    tag = "nightstand" if nightstand else "cabinet"
    return parts, [Support(tag, height, 0, 0, length / 2 - 0.02, width / 2 - 0.02, 0.9)]


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
        Support(
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
            Support(
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
    screen = Part(
        BOX,
        hinge + rot @ np.array([0, 0, screen_h / 2]),
        np.array([screen_t, width, screen_h]) / 2,
        _faces(c, front=display),
        rot,
    )
    return [base, screen], []


def _lamp(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    metal = color_rgb(str(rng.choice(["black", "silver", "gray"])))
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
    leaves = color_rgb(str(rng.choice(["green", "green", "teal"]))) * rng.uniform(0.75, 1.05)
    parts = [_cylinder(0, 0, 0, pot_h, pot_r, c, top=color_rgb("brown") * 0.6)]
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
    cap = color_rgb(str(rng.choice(["white", "black", "red", "blue"])))
    return [
        _cylinder(0, 0, 0, body, radius, c),
        _cylinder(0, 0, body, body + neck, radius * 0.4, c),
        _cylinder(0, 0, body + neck, body + neck + 0.02, radius * 0.45, cap),
    ], []


def _book(rng: np.random.Generator, c: np.ndarray, ctx: str) -> Built:
    pages = color_rgb("cream")
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
