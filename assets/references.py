"""object_references: a unique textual reference for every object, from ground-truth geometry (paper section 7.3).

For each object we try, simplest first, and keep the first kind that is unambiguous:

1. ``category``: the only instance of its category -> "the sofa".
2. ``linear_order``: three or more instances whose centers are roughly collinear along a gravity axis -> "the
   second chair from the left". Collinear means: the second singular value of the centered centers is below
   `linear_max_ratio` (0.3; the paper elides its number) times the first, and the first principal direction is
   within ~37 degrees (|cos| >= 0.8) of the left-right, front-back or up-down axis, so the words match the line.
3. ``positional``: extremal or ranked position along right / camera distance / up / forward -> "the leftmost
   bowl", "the second closest table to the camera", "the topmost book", "the rearmost chair".
4. ``size``: extremal volume, height or width -> "the largest box", "the tallest lamp", "the widest sofa".
5. ``box_fallback``: "the chair (highlighted by the red box)", a distinct colour per fallback object of the scene;
   the colour is also stored in `attributes["box_color"]` so the QA engine draws the same box.
6. ``box_mark``: past the 13 colours (crowded street scenes), "the car (marked 3)": the box is drawn with the
   number on a tag (`attributes["box_mark"]`), so references never run out.

A category with a labelled instance that has no 3D box (`unplaced_categories`) gets only box fallbacks. Objects
that are known but not askable (`SceneObject.askable` False: labelled, no pixel in view) take part in
every uniqueness and ranking decision (they are real instances of their category) but are never given a
fallback colour or mark themselves (kind ``not_askable``): no question names them.

Unambiguous with a margin: a positional reference is used only when the object is separated from *every* other
instance of its category along the compared axis, i.e. their centers differ by more than `min_gap_m` (0.15 m; for
camera distance also more than `min_relative_gap` = 10% of the nearer distance) AND their extents along the axis do
not overlap (`assets.geometry.extents_overlap`; for camera distance, the radial interval |center| +- half the box
diagonal). Then the object's rank along the axis is certain. A size reference needs a ratio above
1 + `min_relative_gap` against every other instance. Everything is computed in the gravity-aligned frame of
docs/CONVENTIONS.md; scenes without a usable gravity frame get only category, camera-distance, size and fallback
references.

`resolve_reference` is an independent reader of these phrases: it recomputes the ordering from the boxes with a
plain sort (no margins) and returns the instance id, so tests and the QA engine can check every reference.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assets.geometry import GravityFrame, extents_overlap
from assets.records import Scene, SceneObject
from assets.scene_stage import load_scene_rgb, run_scene_stage
from assets.stage import StageReport, model_errors

STAGE = "object_references"
UPSTREAM = "object_clouds"

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")

# Fallback box colours: names a VLM reads reliably, RGB values far apart (the QA engine draws with these).
BOX_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 75),
    "green": (60, 180, 75),
    "blue": (0, 130, 200),
    "yellow": (255, 225, 25),
    "orange": (245, 130, 48),
    "purple": (145, 30, 180),
    "cyan": (70, 240, 240),
    "magenta": (240, 50, 230),
    "pink": (250, 190, 212),
    "teal": (0, 128, 128),
    "brown": (170, 110, 40),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}

KIND_ORDER = ("written", "category", "linear_order", "positional", "size", "box_fallback", "box_mark")


@dataclass(frozen=True)
class ReferenceConfig:
    min_gap_m: float = 0.15
    min_relative_gap: float = 0.10
    linear_max_ratio: float = 0.3
    linear_axis_min_cos: float = 0.8
    max_rank: int = 3


@runtime_checkable
class ReferenceWriter(Protocol):
    """Model-written references (VLM + grounding check in the paper): instance id -> verified reference text.
    Objects it leaves out, and texts that turn out ambiguous, get geometric references."""

    def write(self, scene: Scene, rgb: np.ndarray) -> dict[int, str]: ...


# ------------------------------------------------------------------------------------------ vocabulary
# axis -> (low-end superlative, high-end superlative, low-end "from the ...", high-end "from the ...")
GRAVITY_AXIS_WORDS: dict[str, tuple[str, str, str, str]] = {
    "right": ("leftmost", "rightmost", "left", "right"),
    "forward": ("frontmost", "rearmost", "front", "back"),
    "up": ("bottommost", "topmost", "bottom", "top"),
}
# size attribute -> (largest word, smallest word)
SIZE_WORDS: dict[str, tuple[str, str]] = {
    "volume": ("largest", "smallest"),
    "height": ("tallest", "shortest"),
    "width": ("widest", "narrowest"),
}


def _size_value(obj: SceneObject, attribute: str) -> float:
    box = obj.box3d
    if attribute == "volume":
        return box.width * box.height * box.length
    return float(getattr(box, attribute))


def _camera_distance(obj: SceneObject) -> float:
    return float(np.linalg.norm(obj.box3d.center_cam))


def _radial_interval(obj: SceneObject) -> tuple[float, float]:
    """Camera-distance interval certainly containing the box: |center| +- half its diagonal."""
    box = obj.box3d
    half_diagonal = 0.5 * float(np.sqrt(box.width**2 + box.height**2 + box.length**2))
    distance = _camera_distance(obj)
    return distance - half_diagonal, distance + half_diagonal


def _gravity_frame(scene: Scene) -> GravityFrame | None:
    if scene.gravity_cam is None:
        return None
    try:
        return GravityFrame.from_gravity(scene.gravity_cam)
    except ValueError:
        return None


def _phrase_ordinal(rank: int) -> str:
    if not 1 <= rank <= len(ORDINALS):
        raise ValueError(f"no ordinal word for rank {rank}")
    return ORDINALS[rank - 1]


# ------------------------------------------------------------------------------------------ generation
class _CategoryGeometry:
    """Per-category values and the margin rule, computed once per scene."""

    def __init__(self, objects: list[SceneObject], frame: GravityFrame | None, config: ReferenceConfig):
        self.objects = objects
        self.frame = frame
        self.config = config
        centers = np.array([o.box3d.center_cam for o in objects], dtype=np.float64)
        self.centers_grav = frame.to_grav(centers) if frame is not None else None
        self.distance = np.array([_camera_distance(o) for o in objects])

    def values(self, axis: str) -> np.ndarray:
        if axis == "near":
            return self.distance
        assert self.centers_grav is not None
        return self.centers_grav[:, ("right", "forward", "up").index(axis)]

    def separated(self, i: int, j: int, axis: str) -> bool:
        """Whether objects i and j are told apart along `axis` with a margin (see module docstring)."""
        vi, vj = self.values(axis)[i], self.values(axis)[j]
        if axis == "near":
            gap_needed = max(self.config.min_gap_m, self.config.min_relative_gap * min(vi, vj))
            (ai, bi), (aj, bj) = _radial_interval(self.objects[i]), _radial_interval(self.objects[j])
            overlap = ai < bj and aj < bi
        else:
            assert self.frame is not None
            gap_needed = self.config.min_gap_m
            overlap = extents_overlap(self.objects[i].box3d, self.objects[j].box3d, self.frame, axis)
            if axis == "right" and not self.image_agrees(i, j):
                return False
        return abs(vi - vj) > gap_needed and not overlap

    def image_agrees(self, i: int, j: int) -> bool:
        """Left/right in 3D (gravity right axis) and in the image (2D box centres) do not disagree for i and j.

        Why: "leftmost" is read off the picture by a model; where perspective makes the 3D order and the pixel
        order disagree (a near object left of a far one in 3D but right of it in pixels), a left/right word
        contradicts the image, so such a reference is not used."""
        bi, bj = self.objects[i].box2d, self.objects[j].box2d
        ui, uj = 0.5 * (bi.x0 + bi.x1), 0.5 * (bj.x0 + bj.x1)
        vi, vj = self.values("right")[i], self.values("right")[j]
        return (ui - uj) * (vi - vj) >= 0  # equal pixel centres (a record without real 2D boxes) say nothing

    def ranks(self, i: int, axis: str) -> tuple[int, int] | None:
        """(rank from the low end, rank from the high end), 1-based, when i is separated from every other
        instance along the axis; else None."""
        others = [j for j in range(len(self.objects)) if j != i]
        if not all(self.separated(i, j, axis) for j in others):
            return None
        values = self.values(axis)
        below = sum(values[j] < values[i] for j in others)
        return 1 + below, len(self.objects) - below

    def linear_axis(self) -> str | None:
        """The gravity axis the instances line up along (PCA of the centers), or None."""
        if self.centers_grav is None or len(self.objects) < 3:
            return None
        centered = self.centers_grav - self.centers_grav.mean(axis=0)
        _, singular, vt = np.linalg.svd(centered, full_matrices=False)
        if singular[0] <= 0 or singular[1] >= self.config.linear_max_ratio * singular[0]:
            return None
        direction = np.abs(vt[0])
        axis_index = int(np.argmax(direction))
        if direction[axis_index] < self.config.linear_axis_min_cos:
            return None
        return ("right", "forward", "up")[axis_index]


def _linear_reference(geo: _CategoryGeometry, i: int, category: str) -> str | None:
    axis = geo.linear_axis()
    if axis is None:
        return None
    ranks = geo.ranks(i, axis)
    if ranks is None:
        return None
    low, high = ranks
    words = GRAVITY_AXIS_WORDS[axis]
    rank, end = (low, words[2]) if low <= high else (high, words[3])
    if rank > len(ORDINALS):
        return None
    return f"the {_phrase_ordinal(rank)} {category} from the {end}"


def _positional_reference(geo: _CategoryGeometry, i: int, category: str) -> str | None:
    found = _positional_references(geo, i, category)
    return found[0] if found else None


def _positional_references(geo: _CategoryGeometry, i: int, category: str) -> list[str]:
    """Positional phrases for object i, best first (lowest rank, then axis order), at most one per axis."""
    axes = ["near"] if geo.frame is None else ["right", "near", "up", "forward"]
    ranks_by_axis = {axis: geo.ranks(i, axis) for axis in axes}
    found: list[str] = []
    done: set[str] = set()
    for rank in range(1, geo.config.max_rank + 1):
        for axis in axes:
            ranks = ranks_by_axis[axis]
            if ranks is None or axis in done:
                continue
            for end, axis_rank in enumerate(ranks):  # end 0 = low end, 1 = high end
                if axis_rank == rank:
                    found.append(_positional_phrase(axis, end, rank, category))
                    done.add(axis)
                    break
    return found


def _positional_phrase(axis: str, end: int, rank: int, category: str) -> str:
    if axis == "near":
        ordinal = "" if rank == 1 else f"{_phrase_ordinal(rank)} "
        return (
            f"the {ordinal}closest {category} to the camera"
            if end == 0
            else f"the {ordinal}farthest {category} from the camera"
        )
    words = GRAVITY_AXIS_WORDS[axis]
    if rank == 1:
        return f"the {words[end]} {category}"
    return f"the {_phrase_ordinal(rank)} {category} from the {words[2 + end]}"


def _size_reference(group: list[SceneObject], i: int, category: str, config: ReferenceConfig) -> str | None:
    found = _size_references(group, i, category, config)
    return found[0] if found else None


def _size_references(group: list[SceneObject], i: int, category: str, config: ReferenceConfig) -> list[str]:
    ratio = 1.0 + config.min_relative_gap
    found: list[str] = []
    for attribute, (largest, smallest) in SIZE_WORDS.items():
        value = _size_value(group[i], attribute)
        others = [_size_value(o, attribute) for j, o in enumerate(group) if j != i]
        if all(value > ratio * other for other in others):
            found.append(f"the {largest} {category}")
        elif all(value * ratio < other for other in others):
            found.append(f"the {smallest} {category}")
    return found


def geometric_reference(
    scene: Scene, obj: SceneObject, config: ReferenceConfig | None = None
) -> tuple[str, str] | None:
    """(reference, kind) for one object from geometry alone, or None when only the box fallback is left."""
    found = geometric_references(scene, obj, config)
    return found[0] if found else None


def geometric_references(
    scene: Scene, obj: SceneObject, config: ReferenceConfig | None = None
) -> list[tuple[str, str]]:
    """Every unambiguous geometric (reference, kind) of one object, preferred form first.

    The first is the object's reference; the others let a question choose a form that does not name the quantity
    it asks about ("which is the largest?" must not call a candidate "the largest sofa"): `reference_quantities`
    says what each form names, `assign_references` stores them in `attributes[ALT_REFERENCES]`.
    """
    config = config or ReferenceConfig()
    if unplaced_categories(scene) & {obj.category}:
        return None  # another labelled instance has no 3D box: no phrase about this category can be verified
    group = [o for o in scene.objects if o.category == obj.category]
    if len(group) == 1:
        return [(f"the {obj.category}", "category")]
    i = next(k for k, o in enumerate(group) if o.instance_id == obj.instance_id)
    geo = _CategoryGeometry(group, _gravity_frame(scene), config)
    found: list[tuple[str, str]] = []
    linear = _linear_reference(geo, i, obj.category)
    if linear is not None:
        found.append((linear, "linear_order"))
    found += [(text, "positional") for text in _positional_references(geo, i, obj.category)]
    found += [(text, "size") for text in _size_references(group, i, obj.category, config)]
    unique: dict[str, tuple[str, str]] = {}
    for text, kind in found:
        unique.setdefault(_normalise(text), (text, kind))
    return list(unique.values())


# Words of a reference that name a quantity or relation, and the quantity they name: the gravity axes ("right",
# "forward", "up"), distance to the camera ("near") and the sizes ("volume", "height", "width", "length").
QUANTITY_WORDS: dict[str, tuple[str, ...]] = {
    "left": ("right",),
    "right": ("right",),
    "leftmost": ("right",),
    "rightmost": ("right",),
    "front": ("forward",),
    "back": ("forward",),
    "frontmost": ("forward",),
    "rearmost": ("forward",),
    "behind": ("forward",),
    "rear": ("forward",),
    "top": ("up",),
    "bottom": ("up",),
    "topmost": ("up",),
    "bottommost": ("up",),
    "above": ("up",),
    "below": ("up",),
    "upper": ("up",),
    "lower": ("up",),
    "highest": ("up",),
    "lowest": ("up",),
    "closest": ("near",),
    "nearest": ("near",),
    "farthest": ("near",),
    "furthest": ("near",),
    "near": ("near",),
    "far": ("near",),
    "largest": ("volume",),
    "smallest": ("volume",),
    "biggest": ("volume",),
    "big": ("volume",),
    "small": ("volume",),
    "large": ("volume",),
    "tallest": ("height",),
    "shortest": ("height", "length"),
    "tall": ("height",),
    "short": ("height", "length"),
    "widest": ("width",),
    "narrowest": ("width",),
    "wide": ("width",),
    "narrow": ("width",),
    "longest": ("length",),
    "long": ("length",),
}
_WORD = re.compile(r"[a-z]+")
ALT_REFERENCES = "alt_references"  # SceneObject.attributes key: JSON list of further unambiguous references


def reference_quantities(text: str) -> frozenset[str]:
    """The quantities a reference names by its words ("the leftmost chair" -> {"right"}, "the second closest table
    to the camera" -> {"near"}, "the red mug" -> {}). Used to keep a question from naming an object by what it
    asks about, and by the QA quality report to count where one still does. Highlight references name none."""
    lowered = text.lower()
    if "highlighted by" in lowered:
        return frozenset()
    return frozenset(q for word in _WORD.findall(lowered) for q in QUANTITY_WORDS.get(word, ()))


def alternative_references(obj: SceneObject) -> list[str]:
    """The object's further unambiguous references (`attributes[ALT_REFERENCES]`), [] when none were stored."""
    raw = obj.attributes.get(ALT_REFERENCES)
    if not raw:
        return []
    try:
        texts = json.loads(raw)
    except ValueError:
        return []
    return [t for t in texts if isinstance(t, str) and t] if isinstance(texts, list) else []


def unplaced_categories(scene: Scene) -> set[str]:
    """Categories with a labelled instance that has no 3D box: a ground-truth scene's `annotations_2d` (e.g. an
    Omni3D annotation with valid3D false). In other scenes annotations_2d are the boxes the objects came from."""
    return {a.category for a in scene.annotations_2d} if scene.has_ground_truth_3d else set()


def _normalise(text: str) -> str:
    return " ".join(text.strip().rstrip(".").lower().split())


def assign_references(
    scene: Scene, config: ReferenceConfig | None = None, written: dict[int, str] | None = None
) -> Scene:
    """A copy of the scene whose every object has `reference` and `reference_kind` set (see module docstring).

    `written` (instance id -> text) comes from a ReferenceWriter and is preferred; a written text that our parser
    reads as a different object, or that is not unique in the scene, is discarded.
    """
    config = config or ReferenceConfig()
    written = written or {}
    geometric: dict[int, tuple[str, str]] = {}
    alternatives: dict[int, list[str]] = {}
    for obj in scene.objects:
        found = geometric_references(scene, obj, config)
        if found:
            geometric[obj.instance_id] = found[0]
            alternatives[obj.instance_id] = [text for text, _ in found]
    chosen = dict(geometric)
    for obj in scene.objects:
        text = (written.get(obj.instance_id) or "").strip()
        if text:
            parsed, resolved = _resolve(scene, text)
            if not parsed or resolved == obj.instance_id:  # free text, or our phrase naming this very object
                chosen[obj.instance_id] = (text, "written")
    # uniqueness: geometric references are unique by construction, written ones may collide with anything; a
    # colliding written text gives way to the object's geometric reference, any other collision to the fallback
    while True:
        counts = Counter(_normalise(text) for text, _ in chosen.values())
        clashing = [i for i, (text, _) in chosen.items() if counts[_normalise(text)] > 1]
        if not clashing:
            break
        for instance_id in clashing:
            if chosen[instance_id][1] == "written" and instance_id in geometric:
                chosen[instance_id] = geometric[instance_id]
            else:
                del chosen[instance_id]

    colors = iter(BOX_COLORS)
    marks = iter(range(1, 1_000_000))
    objects = []
    for obj in scene.objects:
        attributes = {
            k: v for k, v in obj.attributes.items() if k not in ("box_color", "box_mark", ALT_REFERENCES)
        }
        if obj.instance_id in chosen:
            text, kind = chosen[obj.instance_id]
            alternatives_left = [
                t for t in alternatives.get(obj.instance_id, []) if _normalise(t) != _normalise(text)
            ]
            if alternatives_left:
                attributes[ALT_REFERENCES] = json.dumps(alternatives_left)
        elif not obj.askable:
            text, kind = None, "not_askable"
        else:
            color = next(colors, None)
            if color is not None:
                text, kind = f"the {obj.category} (highlighted by the {color} box)", "box_fallback"
                attributes["box_color"] = color
            else:  # more fallback objects than distinguishable colours: a numbered mark
                mark = str(next(marks))
                text, kind = f"the {obj.category} (marked {mark})", "box_mark"
                attributes["box_mark"] = mark
        objects.append(
            obj.model_copy(update={"reference": text, "reference_kind": kind, "attributes": attributes})
        )
    return scene.model_copy(update={"objects": objects})


# ------------------------------------------------------------------------------------------ resolution
_ORD = "|".join(ORDINALS)
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("fallback", re.compile(r"^the (?P<cat>.+) \(highlighted by the (?P<color>[a-z]+) box\)$")),
    ("mark", re.compile(r"^the (?P<cat>.+) \(marked (?P<mark>\d+)\)$")),
    (
        "from",
        re.compile(rf"^the (?P<ord>{_ORD}) (?P<cat>.+) from the (?P<end>left|right|front|back|top|bottom)$"),
    ),
    ("closest", re.compile(rf"^the (?:(?P<ord>{_ORD}) )?closest (?P<cat>.+) to the camera$")),
    ("farthest", re.compile(rf"^the (?:(?P<ord>{_ORD}) )?farthest (?P<cat>.+) from the camera$")),
    (
        "superlative",
        re.compile(
            r"^the (?P<sup>leftmost|rightmost|frontmost|rearmost|bottommost|topmost|"
            r"largest|smallest|tallest|shortest|widest|narrowest) (?P<cat>.+)$"
        ),
    ),
    ("category", re.compile(r"^the (?P<cat>.+)$")),
]
# word -> (value function name, True when the word picks the highest value)
_END_OF_WORD: dict[str, tuple[str, bool]] = {
    "left": ("right", False),
    "right": ("right", True),
    "front": ("forward", False),
    "back": ("forward", True),
    "bottom": ("up", False),
    "top": ("up", True),
    "leftmost": ("right", False),
    "rightmost": ("right", True),
    "frontmost": ("forward", False),
    "rearmost": ("forward", True),
    "bottommost": ("up", False),
    "topmost": ("up", True),
    "largest": ("volume", True),
    "smallest": ("volume", False),
    "tallest": ("height", True),
    "shortest": ("height", False),
    "widest": ("width", True),
    "narrowest": ("width", False),
    "closest": ("near", False),
    "farthest": ("near", True),
}


def _value_fn(scene: Scene, quantity: str) -> Callable[[SceneObject], float] | None:
    if quantity in ("volume", "height", "width"):
        return lambda o: _size_value(o, quantity)
    if quantity == "near":
        return _camera_distance
    gravity = scene.gravity_cam
    if gravity is None:
        return None
    try:
        frame = GravityFrame.from_gravity(gravity)
    except ValueError:
        return None
    row = {"right": frame.right, "forward": frame.forward, "up": frame.up}[quantity]
    return lambda o: float(np.dot(row, o.box3d.center_cam))


def _pick_ranked(
    scene: Scene, group: list[SceneObject], quantity: str, highest: bool, rank: int
) -> int | None:
    value_of = _value_fn(scene, quantity)
    if value_of is None or rank > len(group):
        return None
    ordered = sorted(group, key=value_of, reverse=highest)
    picked = value_of(ordered[rank - 1])
    neighbours = [ordered[k] for k in (rank - 2, rank) if 0 <= k < len(ordered)]
    if any(abs(value_of(o) - picked) < 1e-9 for o in neighbours):  # an exact tie has no rank
        return None
    return ordered[rank - 1].instance_id


def resolve_reference(scene: Scene, text: str) -> int | None:
    """The instance id a reference produced by `assign_references` designates, recomputed from the scene's
    geometry; None when the text is not one of our phrases, names no/several objects, or the rank is tied."""
    return _resolve(scene, text)[1]


def _resolve(scene: Scene, text: str) -> tuple[bool, int | None]:
    """(whether the text is one of our phrases about a category of this scene, the instance id or None)."""
    text = _normalise(text)
    categories = {o.category.lower() for o in scene.objects}
    for name, pattern in _PATTERNS:
        match = pattern.match(text)
        if match is None or match.group("cat") not in categories:
            continue
        group = [o for o in scene.objects if o.category.lower() == match.group("cat")]
        if name in ("fallback", "mark"):
            key, value = (
                ("box_color", match.group("color"))
                if name == "fallback"
                else ("box_mark", match.group("mark"))
            )
            hits = [o.instance_id for o in group if o.attributes.get(key) == value]
            return True, hits[0] if len(hits) == 1 else None
        if name == "category":
            return True, group[0].instance_id if len(group) == 1 else None
        rank = ORDINALS.index(match.group("ord")) + 1 if match.groupdict().get("ord") else 1
        word = {"from": "end", "superlative": "sup"}.get(name)
        quantity, highest = _END_OF_WORD[match.group(word) if word else name]
        return True, _pick_ranked(scene, group, quantity, highest, rank)
    return False, None


# ------------------------------------------------------------------------------------------ stage
def references_shard(
    root: Path, shard: str, writer: ReferenceWriter | None = None, config: ReferenceConfig | None = None
) -> StageReport:
    """Build `object_references/<shard>/` from `object_clouds/<shard>`: every object gains `reference` and
    `reference_kind`; metadata counts references by kind."""
    config = config or ReferenceConfig()
    kind_counts: dict[str, object] = {f"references_{kind}": 0 for kind in (*KIND_ORDER, "not_askable")}

    def one(scene: Scene, report: StageReport, tmp: Path) -> Scene:
        written = None
        if writer is not None:
            rgb = load_scene_rgb(root, scene)
            with model_errors(f"reference writer {type(writer).__name__}"):
                written = writer.write(scene, rgb)
        scene = assign_references(scene, config, written)
        for obj in scene.objects:
            key = f"references_{obj.reference_kind}"
            kind_counts[key] = int(kind_counts.get(key, 0)) + 1  # type: ignore[call-overload]
        return scene

    return run_scene_stage(
        root,
        STAGE,
        shard,
        UPSTREAM,
        one,
        extra_preview=lambda s: {"references": "; ".join(o.reference or "-" for o in s.objects)[:160]},
        metadata=kind_counts,
    )
