"""What a level generator needs to know about one scene, and how it names an object in text.

`QAContext` bundles the scene, its gravity frame (None when undefined), the random generator, the config and the
optional point map, and caches per-object geometry so the L1/L2/L3 generators do not recompute box corners per
question. `refer` is the one place that turns an object into words (and, for objects with no verified textual
reference, into a coloured box drawn on the image, as in paper Sec. 3.2). `qa_id` is the one question-id scheme.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from assets.geometry import GravityFrame, box_corners_grav_fast, gravity_frame_fast
from assets.qa.config import QAConfig
from assets.records import Box3D, DrawBox, QAFormat, Scene, SceneObject, Task
from assets.references import BOX_COLORS as REFERENCE_BOX_COLORS
from assets.references import alternative_references, reference_quantities

# Colours for box-fallback references, in assignment order: the palette the references stage draws with.
BOX_COLORS: tuple[str, ...] = tuple(REFERENCE_BOX_COLORS)
# reference_kind values that mean "no verified text: draw the box".
BOX_REFERENCE_KINDS = frozenset(
    {"box", "box_fallback", "box_mark", "bbox", "visual", "fallback", "unreferenced"}
)
_COLOR_IN_TEXT = re.compile(r"highlighted by (?:the |a )?([a-z]+) box", re.IGNORECASE)
# Past the palette, a box is told apart by a number on its tag: "the car (marked 3)" (assets/references.py).
_MARK_IN_TEXT = re.compile(r"\(marked (\d+)\)")
MARK_COLOR = "lime"  # outline of numbered boxes; never named in text, so it may repeat

AXIS_NAMES = ("right", "forward", "up")
# `_unusable` reasons that still leave a valid box in the scene: counted (`QAContext.known`), never asked about.
_STILL_KNOWN = ("box center not in front of the camera", "front direction is not a unit vector")


def qa_id(
    scene_id: str,
    task: Task | str,
    template_id: str,
    object_ids: list[int] | tuple[int, ...],
    fmt: QAFormat | str,
    extra: str = "",
) -> str:
    """Stable question id: the same scene, task, template, objects, format (and `extra`, e.g. the pixel pair of an
    L0 question or the subtask) always give the same id, across runs and machines."""
    key = f"{scene_id}|{task}|{template_id}|{','.join(map(str, object_ids))}|{fmt}|{extra}"
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class FastRandom(random.Random):
    """The subset of `numpy.random.Generator` the template generators use, on Python's Mersenne Twister.

    Why: question synthesis draws a dozen scalars per question, and a numpy Generator scalar call costs ~1-3 us
    against ~0.1 us here; at tens of thousands of pairs per second that is most of the budget. Seeded from the
    context's numpy generator, so runs stay deterministic per (seed, scene).
    """

    def integers(self, low: int, high: int | None = None, size: int | None = None) -> int | np.ndarray:
        if high is None:
            low, high = 0, low
        if high <= low:
            raise ValueError(f"integers: empty range [{low}, {high})")
        span = high - low
        if size is not None:
            return np.array([low + int(self.random() * span) for _ in range(size)], dtype=np.int64)
        return low + int(
            self.random() * span
        )  # floor(U * n): bias below 2^-53 * n, far below anything we draw

    def permutation(self, n: int) -> list[int]:
        """Fisher-Yates on random() (random.shuffle's exact-integer draws cost ~3x more per swap)."""
        order = list(range(n))
        rnd = self.random
        for i in range(n - 1, 0, -1):
            j = int(rnd() * (i + 1))
            order[i], order[j] = order[j], order[i]
        return order

    def normal(self, size: int = 3) -> np.ndarray:
        return np.array([self.gauss(0.0, 1.0) for _ in range(size)])

    def choice(self, n: int, size: int, replace: bool = False) -> list[int]:
        if replace:
            return [int(self.random() * n) for _ in range(size)]
        if size > n:
            raise ValueError(f"cannot choose {size} of {n} without replacement")
        return self.permutation(n)[:size]


RandomSource = np.random.Generator | FastRandom


@dataclass
class ObjectGeom:
    """Cached geometry of one object: camera-frame center, gravity-frame center and per-axis extents."""

    obj: SceneObject
    center_cam: np.ndarray  # (3,) meters, camera frame
    center_grav: (
        np.ndarray | None
    )  # (3,) meters, gravity frame (x right, y forward, z up); None without gravity
    extents: dict[str, tuple[float, float]] = field(
        default_factory=dict
    )  # axis -> (min, max) in gravity frame
    corners: np.ndarray | None = (
        None  # (8, 3) gravity-frame box corners (`box_corners_grav`); None without gravity
    )

    @property
    def box(self) -> Box3D:
        return self.obj.box3d

    @cached_property
    def distance(self) -> float:
        """Object-to-camera distance = |center| (docs/CONVENTIONS.md)."""
        return math.sqrt(float(self.center_cam @ self.center_cam))

    @property
    def volume(self) -> float:
        b = self.obj.box3d
        return b.width * b.height * b.length


@dataclass
class QAContext:
    """Everything a generator reads for one scene.

    `frame` is None when the scene has no gravity or the camera looks (almost) straight up/down: gravity-dependent
    questions must then be skipped. `known` holds every object whose box is usable (finite, in front of the
    camera, not degenerate): counts are taken over it. `objects` is its askable part, the objects a question may
    be about (a labelled object with no pixel in the image, `SceneObject.askable` False, is known only); `skips`
    collects human-readable reasons for what was left out.
    """

    scene: Scene
    frame: GravityFrame | None
    rng: np.random.Generator
    config: QAConfig
    point_map: np.ndarray | None = None  # (H, W, 3) camera-frame meters
    valid: np.ndarray | None = None  # (H, W) bool
    shard: str = ""
    objects: list[SceneObject] = field(default_factory=list)
    known: list[SceneObject] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    fast: FastRandom = field(default_factory=FastRandom)  # scalar draws in the hot loop (seeded from rng)
    _geom: dict[int, ObjectGeom] = field(default_factory=dict, repr=False)
    _colors: dict[int, str] = field(default_factory=dict, repr=False)
    _marks: dict[int, str] = field(default_factory=dict, repr=False)
    _coins: dict[str, bool] = field(default_factory=dict, repr=False)
    _refs: dict[int, tuple[str, list[DrawBox]]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        scene: Scene,
        config: QAConfig | None = None,
        rng: np.random.Generator | None = None,
        point_map: np.ndarray | None = None,
        valid: np.ndarray | None = None,
    ) -> QAContext:
        """Make a context: derive the gravity frame, drop unusable objects (with reasons), assign box colours."""
        config = config or QAConfig()
        if rng is None:
            rng = np.random.default_rng(
                int.from_bytes(
                    hashlib.blake2b(f"{config.seed}|{scene.scene_id}".encode(), digest_size=8).digest(),
                    "little",
                )
            )
        skips: list[str] = []
        frame: GravityFrame | None = None
        if scene.gravity_cam is None:
            skips.append("no gravity: gravity-dependent questions skipped")
        else:
            try:
                frame = gravity_frame_fast(scene.gravity_cam)  # GravityFrame.from_gravity, bit for bit
            except ValueError as err:
                skips.append(f"gravity frame undefined ({err}): gravity-dependent questions skipped")
        if point_map is not None and valid is None:
            valid = np.isfinite(point_map).all(axis=-1)
        ctx = cls(
            scene=scene,
            frame=frame,
            rng=rng,
            config=config,
            point_map=point_map,
            valid=valid,
            shard=scene.shard,
            skips=skips,
            fast=FastRandom(int(rng.integers(2**63))),
        )
        for obj in scene.objects:
            reason = ctx._unusable(obj)
            if reason:
                skips.append(f"object {obj.instance_id} ({obj.category}): {reason}")
                if not reason.startswith(_STILL_KNOWN):  # a box partly behind the camera still occupies space
                    continue
                ctx.known.append(obj)
                continue
            ctx.known.append(obj)
            if obj.askable:
                ctx.objects.append(obj)
            else:
                why = obj.attributes.get("not_askable", "")
                skips.append(f"object {obj.instance_id} ({obj.category}): known, not askable ({why})")
        ctx._assign_colors()
        return ctx

    def _unusable(self, obj: SceneObject) -> str | None:
        # Plain floats (numpy per-call overhead dominated context building); same tests, same messages.
        box = obj.box3d
        sizes = (float(box.width), float(box.height), float(box.length))
        center = box.center_cam
        isfinite = math.isfinite
        if not (
            all(isfinite(v) for v in sizes)
            and all(isfinite(float(v)) for v in center)
            and isfinite(float(box.yaw))
        ):
            return "non-finite 3D box"
        smallest, largest = min(sizes), max(sizes)
        if smallest < self.config.min_object_size_m:
            return f"degenerate 3D box (smallest extent {smallest:.4f} m)"
        if largest > 200.0:
            return f"implausible 3D box (largest extent {largest:.1f} m)"
        if float(center[2]) < self.config.min_object_depth_m:
            return f"box center not in front of the camera (z = {float(center[2]):.3f} m)"
        if obj.front_grav is not None:
            front = np.asarray(obj.front_grav, dtype=np.float64)
            if not 0.9 < math.sqrt(front.dot(front)) < 1.1:  # == np.linalg.norm, bit for bit
                return "front direction is not a unit vector"
        return None

    def _assign_colors(self) -> None:
        """Colours for box-fallback objects: the references stage's `attributes["box_color"]` or the colour named
        in the reference text when present, else the first palette colour not yet used in this scene. Two
        highlighted objects never share a colour; past the palette an object gets a numbered mark instead
        (`attributes["box_mark"]`, or the next free number), so no object is left without a name."""
        used: set[str] = set()
        used_marks: set[str] = set()
        pending: list[SceneObject] = []
        for obj in self.objects:
            if not is_box_reference(obj):
                continue
            mark_match = _MARK_IN_TEXT.search(obj.reference or "")
            mark = obj.attributes.get("box_mark") or (mark_match.group(1) if mark_match else None)
            if mark and mark not in used_marks:
                self._marks[obj.instance_id] = mark
                used_marks.add(mark)
                continue
            match = _COLOR_IN_TEXT.search(obj.reference or "")
            color = obj.attributes.get("box_color") or (match.group(1).lower() if match else None)
            if color and color not in used:
                self._colors[obj.instance_id] = color
                used.add(color)
            else:
                pending.append(obj)
        free = iter(c for c in BOX_COLORS if c not in used)
        numbers = (str(n) for n in range(1, 10**6) if str(n) not in used_marks)
        for obj in pending:
            color = next(free, None)
            if color is None:
                self._marks[obj.instance_id] = next(numbers)
            else:
                self._colors[obj.instance_id] = color

    @property
    def has_gravity(self) -> bool:
        return self.frame is not None

    def geom(self, obj: SceneObject) -> ObjectGeom:
        """Cached geometry of `obj` (extents are filled for all three gravity axes when gravity is known)."""
        cached = self._geom.get(obj.instance_id)
        if cached is not None:
            return cached
        center_cam = np.asarray(obj.box3d.center_cam, dtype=np.float64)
        center_grav = None
        extents: dict[str, tuple[float, float]] = {}
        corners = None
        if self.frame is not None:
            center_grav = self.frame.to_grav(center_cam)
            # (8, 3): the same corners extent_along projects (box_corners_grav, bit for bit)
            corners = box_corners_grav_fast(obj.box3d, self.frame)
            xs, ys, zs = corners.T.tolist()
            extents = {"right": (min(xs), max(xs)), "forward": (min(ys), max(ys)), "up": (min(zs), max(zs))}
        geom = ObjectGeom(
            obj=obj, center_cam=center_cam, center_grav=center_grav, extents=extents, corners=corners
        )
        self._geom[obj.instance_id] = geom
        return geom

    def flip(self, key: str) -> bool:
        """Alternating coin per `key` from a random start: exact True/False balance within a scene."""
        if key not in self._coins:
            self._coins[key] = self.fast.random() < 0.5
        self._coins[key] = not self._coins[key]
        return self._coins[key]

    def overlaps(self, a: SceneObject, b: SceneObject, axis: str) -> bool:
        """`assets.geometry.extents_overlap` on cached extents (same corners, same strict comparison): a
        qualitative relation along `axis` is ambiguous when this is True. Needs a gravity frame."""
        a_min, a_max = self.geom(a).extents[axis]
        b_min, b_max = self.geom(b).extents[axis]
        return a_min < b_max and b_min < a_max

    def boxes_named_in(self, text: str, drawn: list[DrawBox]) -> list[DrawBox]:
        """Exactly the boxes `text` names by colour ("(highlighted by the <color> box)") or by number ("(marked
        <n>)"): `drawn` filtered to the mentioned ones, plus any mentioned one `drawn` lacks.

        A safety net for every generator: whatever objects a question or its options mention by box colour or
        mark, the image it is asked on shows exactly those boxes (no unexplained extra box either).
        """
        colors = {m.lower() for m in _COLOR_IN_TEXT.findall(text)}
        marks = set(_MARK_IN_TEXT.findall(text))
        kept = [b for b in drawn if (b.label in marks if b.label else b.color in colors)]
        missing = colors - {b.color for b in kept if not b.label}
        missing_marks = marks - {b.label for b in kept if b.label}
        for instance_id, color in self._colors.items():
            if color in missing:
                obj = self.scene.object_by_id(instance_id)
                kept.append(
                    DrawBox.model_construct(instance_id=instance_id, color=color, box2d=obj.box2d, label="")
                )
        for instance_id, mark in self._marks.items():
            if mark in missing_marks:
                obj = self.scene.object_by_id(instance_id)
                kept.append(
                    DrawBox.model_construct(
                        instance_id=instance_id, color=MARK_COLOR, box2d=obj.box2d, label=mark
                    )
                )
        return kept

    def color_of(self, obj: SceneObject) -> str | None:
        return self._colors.get(obj.instance_id)

    def qa_id(
        self,
        task: Task | str,
        template_id: str,
        objects: list[SceneObject] | list[int],
        fmt: QAFormat | str,
        extra: str = "",
    ) -> str:
        ids = [o if isinstance(o, int) else o.instance_id for o in objects]
        return qa_id(self.scene.scene_id, task, template_id, ids, fmt, extra)


def is_box_reference(obj: SceneObject) -> bool:
    """True when the object has no verified textual reference and must be shown as a coloured box."""
    if not obj.reference:
        return True
    if obj.reference_kind and obj.reference_kind.lower() in BOX_REFERENCE_KINDS:
        return True
    return "highlighted by" in obj.reference.lower()


def refer(obj: SceneObject, ctx: QAContext) -> tuple[str, list[DrawBox]]:
    """Text naming `obj` in a question, and the boxes to draw for it (empty for a textual reference).

    A verified reference is used as written ("the red mug on the left"). Otherwise the object is named by category
    with a visual cue, "the chair (highlighted by the red box)", and its 2D box must be drawn in that colour.
    """
    cached = ctx._refs.get(obj.instance_id)  # instance ids are unique within a scene
    if cached is not None:
        return cached[0], list(cached[1])
    if not is_box_reference(obj):
        ctx._refs[obj.instance_id] = (obj.reference, [])  # type: ignore[assignment]
        return obj.reference, []  # type: ignore[return-value]
    category = obj.category.strip()
    if not category.lower().startswith(("the ", "a ", "an ")):
        category = f"the {category}"
    mark = ctx._marks.get(obj.instance_id)
    if mark is not None:
        result = (
            f"{category} (marked {mark})",
            [
                DrawBox.model_construct(
                    instance_id=obj.instance_id, color=MARK_COLOR, box2d=obj.box2d, label=mark
                )
            ],
        )
        ctx._refs[obj.instance_id] = result
        return result[0], list(result[1])
    color = ctx.color_of(obj)
    if color is None:  # object not in ctx.objects (e.g. a caller built its own list): still deterministic
        match = _COLOR_IN_TEXT.search(obj.reference or "")
        color = match.group(1).lower() if match else BOX_COLORS[(obj.instance_id - 1) % len(BOX_COLORS)]
    result = (
        f"{category} (highlighted by the {color} box)",
        [DrawBox.model_construct(instance_id=obj.instance_id, color=color, box2d=obj.box2d, label="")],
    )
    ctx._refs[obj.instance_id] = result
    return result[0], list(result[1])


def refer_neutral(
    obj: SceneObject, ctx: QAContext, avoid: frozenset[str] | set[str]
) -> tuple[str, list[DrawBox]] | None:
    """`refer`, but never by a form that names a quantity in `avoid` (see `assets.references.QUANTITY_WORDS`):
    the object's reference when it is neutral, else its first neutral alternative, else None (the caller skips
    the question rather than give its answer away by a name, e.g. "which is the largest?" over "the largest
    sofa", or "is the rightmost cabinet right of ...?")."""
    text, boxes = refer(obj, ctx)
    if not avoid or not (reference_quantities(text) & avoid):
        return text, boxes
    for alternative in alternative_references(obj):
        if not (reference_quantities(alternative) & avoid):
            return alternative, []
    return None
