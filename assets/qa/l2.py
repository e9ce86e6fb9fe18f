"""Level 2: inter-object relations (paper Sec. 3.1): relative direction (qualitative left/right, in front of/behind,
above/below in the gravity frame, the precise unit direction vector in the camera frame, and clock positions as in
SpatialRGPT), relative distance (direct, vertical, horizontal, depth-wise centre to centre, and nearest surface to
nearest surface) and relational comparison (two-object yes/no comparisons; over 3+ objects, extremes and orderings
of distance to camera, volume and dimensions; orientation consistency between fronted objects).

No question refers to an object by the quantity or relation it asks about (`assets.qa.quality`): references go
through `refer_neutral` with the quantities of the question.

Ambiguity rules (docs/CONVENTIONS.md): a qualitative relation is asked only when the two boxes' extents do not
overlap on that axis (`assets.geometry.extents_overlap`, evaluated on cached extents by
`QAContext.overlaps`); comparisons only with a relative margin of
`QAConfig.compare_margin` between every compared pair that decides the answer; orientation consistency only within
`orientation_tolerance_deg` of 0/90/180 degrees.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from assets.qa.context import FastRandom, QAContext, RandomSource, refer_neutral
from assets.qa.formats import (
    Budget,
    Choice,
    FreeForm,
    Judgement,
    QABase,
    capitalize,
    emit,
    format_length,
    format_vector,
    length_distractors,
    length_value,
    numeric_judgement,
    pick,
    pick_unit,
    templates,
)
from assets.qa.quality import ATTRIBUTE_QUANTITIES, AXIS_QUANTITIES
from assets.records import QAPair, SceneObject, Task

# ------------------------------------------------------------------------------------------- relative direction

# axis -> (relation when A's coordinate is smaller, relation when larger, phrase of the axis for questions)
RELATIONS = {
    "right": ("to the left of", "to the right of"),
    "up": ("below", "above"),
    # forward: smaller coordinate = nearer the camera = in front of
    "forward": ("in front of", "behind"),
}
DIR_FF = templates(
    "l2.dir.ff",
    "Is {a} {r0} or {r1} {b}?",
    "Relative to {b}, is {a} {r0} it or {r1} it?",
    "From the camera's viewpoint, is {a} {r0} {b} or {r1} it?",
    "Where is {a} with respect to {b}: {r0} it or {r1} it?",
)
DIR_MC = templates(
    "l2.dir.mc",
    "Where is {a} relative to {b}?",
    "Which describes the position of {a} with respect to {b}?",
    "From the camera's viewpoint, where is {a} with respect to {b}?",
)
DIR_TF = templates(
    "l2.dir.tf",
    "{A} is {r} {b}.",
    "From the camera's viewpoint, {a} is {r} {b}.",
    "Seen from the camera, {b} has {a} {r} it.",
)
DIR_YN = templates(
    "l2.dir.yn",
    "Is {a} {r} {b}?",
    "From the camera's viewpoint, is {a} {r} {b}?",
    "Would you say {a} is {r} {b}?",
)
VEC_FF = templates(
    "l2.vec.ff",
    "What is the unit direction vector from {a} to {b} in the camera coordinate system?",
    "Give the normalized 3D direction, in camera coordinates, pointing from {a} to {b}.",
    "In which 3D direction (unit vector, camera frame) does {b} lie as seen from {a}?",
)
VEC_MC = templates(
    "l2.vec.mc",
    "Which unit vector points from {a} to {b} in the camera frame?",
    "Select the camera-frame direction from {a} towards {b}.",
    "What is the direction from {a} to {b} (unit vector, x right, y down, z forward)?",
)
VEC_TF = templates(
    "l2.vec.tf",
    "The unit direction from {a} to {b} in the camera frame is ({v}).",
    "In camera coordinates, {b} lies in the direction ({v}) from {a}.",
    "The normalized vector pointing from {a} to {b} is ({v}) in the camera frame.",
)
# A direction distractor is at least this far (degrees) from the truth and from the other distractors.
VECTOR_MIN_ANGLE_DEG = 40.0

# Clock positions (SpatialRGPT): seen from A, looking the way the camera looks (12 o'clock = straight away from the
# camera, 3 o'clock = to the right), the horizontal direction to B as an hour. Asked only within
# CLOCK_MAX_OFF_DEG of an hour's centre and with B at least CLOCK_MIN_DISTANCE_M away horizontally.
CLOCK_MAX_OFF_DEG = 7.5
CLOCK_MIN_DISTANCE_M = 0.3
CLOCK_FF = templates(
    "l2.clock.ff",
    "Standing at {a} and facing the way the camera looks, at what clock position is {b}?",
    "If 12 o'clock is straight ahead (away from the camera), at which o'clock is {b} as seen from {a}?",
    "From {a}, in which clock direction does {b} lie (12 o'clock pointing away from the camera)?",
)
CLOCK_MC = templates(
    "l2.clock.mc",
    "Seen from {a}, with 12 o'clock pointing away from the camera, where is {b}?",
    "At what clock position is {b} relative to {a} (12 o'clock = away from the camera)?",
    "Which clock direction points from {a} to {b}, with 12 o'clock straight ahead of the camera?",
)
CLOCK_TF = templates(
    "l2.clock.tf",
    "Seen from {a}, with 12 o'clock pointing away from the camera, {b} is at {h}.",
    "With 12 o'clock straight ahead of the camera, {b} lies at {h} from {a}.",
    "From {a}, {b} is in the {h} direction (12 o'clock = away from the camera).",
)

# --------------------------------------------------------------------------------------------- relative distance

DISTANCE_KINDS = {
    "direct": ("distance", "How far apart are {a} and {b}{u}?"),
    "vertical": ("vertical distance", "How far apart are {a} and {b} vertically{u}?"),
    "horizontal": ("horizontal distance", "How far apart are {a} and {b} horizontally{u}?"),
    "depth": (
        "depth-wise distance",
        "How far apart are {a} and {b} along the camera's viewing direction{u}?",
    ),
    # the named variant next to centre-to-centre: the gap between the boxes' nearest surfaces (0 when touching)
    "surface": ("surface-to-surface distance", "How far apart are the nearest surfaces of {a} and {b}{u}?"),
}
RDIST_FF = templates(
    "l2.rdist.ff",
    "{kind_q}",
    "What is the {kind} between {a} and {b}{u}?",
    "Measure the {kind} from {a} to {b}{u}.",
    "Estimate the {kind} separating {a} and {b}{u}.",
)
RDIST_MC = templates(
    "l2.rdist.mc",
    "What is the {kind} between {a} and {b}{u}?",
    "{kind_q}",
    "Which value is closest to the {kind} from {a} to {b}{u}?",
)
RDIST_TF = templates(
    "l2.rdist.tf",
    "The {kind} between {a} and {b} is {x}.",
    "{A} and {b} are {x} apart ({kind}).",
    "Measured as {kind}, {a} is {x} from {b}.",
)
RDIST_YN = templates(
    "l2.rdist.yn",
    "Is the {kind} between {a} and {b} more than {x}?",
    "Are {a} and {b} more than {x} apart ({kind})?",
    "Does the {kind} from {a} to {b} exceed {x}?",
)
MIN_RELATIVE_DISTANCE_M = 0.05  # below this, a centre-to-centre distance is measurement noise

# ------------------------------------------------------------------------------------------ relational comparison

# attribute -> (smallest word, largest word, ordering phrase small->large, needs gravity)
ATTRIBUTES = {
    "distance": (
        "nearest to the camera",
        "farthest from the camera",
        "from nearest to farthest from the camera",
        False,
    ),
    "volume": ("smallest", "largest", "from smallest to largest", False),
    "height": ("shortest", "tallest", "from shortest to tallest", True),
    "width": ("narrowest", "widest", "from narrowest to widest", True),
    "length": ("shortest in length", "longest", "from shortest to longest", True),
}
EXT_FF = templates(
    "l2.cmp.ext.ff",
    "Which of these objects is the {w}: {objs}?",
    "Among {objs}, which one is the {w}?",
    "Of {objs}, tell me which is the {w}.",
)
EXT_MC = templates(
    "l2.cmp.ext.mc",
    "Which object is the {w}?",
    "Among the following objects, which is the {w}?",
    "Select the {w} object.",
)
EXT_TF = templates(
    "l2.cmp.ext.tf",
    "Among {objs}, {x} is the {w}.",
    "{X} is the {w} of {objs}.",
    "Of {objs}, the {w} one is {x}.",
)
ORD_FF = templates(
    "l2.cmp.ord.ff",
    "Order these objects {o}: {objs}.",
    "Sort {objs} {o}.",
    "List {objs} {o}.",
)
ORD_MC = templates(
    "l2.cmp.ord.mc",
    "Which ordering lists the objects {o}?",
    "Which sequence sorts {objs} {o}?",
    "Select the correct order {o}.",
)
ORD_TF = templates(
    "l2.cmp.ord.tf",
    "Ordered {o}, the objects are: {seq}.",
    "Sorting {objs} {o} gives: {seq}.",
    "{Seq}: this is the order {o}.",
)
# Two-object comparisons: attribute -> (comparative for the smaller value, for the larger value).
PAIR_WORDS = {
    "distance": ("closer to the camera", "farther from the camera"),
    "volume": ("smaller", "larger"),
    "height": ("shorter", "taller"),
    "width": ("narrower", "wider"),
    "length": ("shorter in length", "longer"),
}
PAIR_FF = templates(
    "l2.cmp.pair.ff",
    "Which is {w}, {a} or {b}?",
    "Of {a} and {b}, which one is {w}?",
    "Between {a} and {b}, which is {w}?",
)
PAIR_MC = templates(
    "l2.cmp.pair.mc",
    "Which object is {w}?",
    "Which of the two is {w}?",
    "Select the object that is {w}.",
)
PAIR_YN = templates(
    "l2.cmp.pair.yn",
    "Is {a} {w} than {b}?",
    "Would you say {a} is {w} than {b}?",
    "Compared with {b}, is {a} {w}?",
)
ORIENT_CLASSES = ("similar", "orthogonal", "opposite")
ORIENT_ANGLES = {"similar": 0.0, "orthogonal": 90.0, "opposite": 180.0}
ORIENT_PHRASE = {
    "similar": "facing the same direction",
    "orthogonal": "facing perpendicular directions",
    "opposite": "facing opposite directions",
}
OCONS_FF = templates(
    "l2.cmp.ori.ff",
    "Are {a} and {b} facing similar, orthogonal or opposite directions?",
    "How do the facing directions of {a} and {b} relate: similar, orthogonal or opposite?",
    "Compare the orientations of {a} and {b}: are they similar, orthogonal or opposite?",
)
OCONS_MC = templates(
    "l2.cmp.ori.mc",
    "How are {a} and {b} oriented relative to each other?",
    "Which describes the facing directions of {a} and {b}?",
    "What is the relation between the orientations of {a} and {b}?",
)
OCONS_TF = templates(
    "l2.cmp.ori.tf",
    "{A} and {b} are {p}.",
    "The orientations of {a} and {b} are {c}.",
    "{A} is {c2} to {b} in orientation.",
)
_ORIENT_ADJ = {"similar": "similar", "orthogonal": "orthogonal", "opposite": "opposite"}
_ORIENT_ADJ2 = {"similar": "aligned", "orthogonal": "perpendicular", "opposite": "opposite"}


def _refs(
    ctx: QAContext, objs: list[SceneObject], avoid: frozenset[str] = frozenset()
) -> tuple[list[str], list, bool]:
    """References and draw boxes of several objects, none naming a quantity in `avoid`; False when two references
    coincide (ambiguous) or an object has no neutral reference."""
    texts, boxes = [], []
    for o in objs:
        found = refer_neutral(o, ctx, avoid)
        if found is None:
            return [], [], False
        t, b = found
        texts.append(t)
        boxes.extend(b)
    return texts, boxes, len(set(texts)) == len(texts)


def _join(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else items[0]


_AXIS_INDEX = {"right": 0, "forward": 1, "up": 2}


def qualitative_relation(ctx: QAContext, a: SceneObject, b: SceneObject, axis: str) -> str | None:
    """The relation of A to B on a gravity axis ('to the left of', ...), or None when the extents overlap."""
    if ctx.frame is None or ctx.overlaps(a, b, axis):  # extents_overlap on cached corners
        return None
    idx = _AXIS_INDEX[axis]
    smaller = ctx.geom(a).center_grav[idx] < ctx.geom(b).center_grav[idx]
    return RELATIONS[axis][0] if smaller else RELATIONS[axis][1]


def image_contradicts(a: SceneObject, b: SceneObject, rel: str) -> bool:
    """True when the 2D boxes are clearly apart left/right (no column in common) and in the opposite order to
    the 3D relation: the picture would contradict the answer (perspective), so the question is not asked."""
    ba, bb = a.box2d, b.box2d
    if ba.x1 <= bb.x0:  # A wholly left of B in the image
        return rel == RELATIONS["right"][1]
    if bb.x1 <= ba.x0:
        return rel == RELATIONS["right"][0]
    return False


def direction_questions(ctx: QAContext, a: SceneObject, b: SceneObject, axis: str) -> list[QAPair]:
    rel = qualitative_relation(ctx, a, b, axis)
    if rel is None or (axis == "right" and image_contradicts(a, b, rel)):
        return []
    rng = ctx.fast
    refs, boxes, distinct = _refs(ctx, [a, b], AXIS_QUANTITIES[axis])
    if not distinct:
        return []
    ra, rb = refs
    r0, r1 = RELATIONS[axis]
    opposite = r1 if rel == r0 else r0
    base = QABase(
        task=Task.RELATIVE_DIRECTION, subtask=axis, objects=[a, b], references=[ra, rb], draw_boxes=boxes
    )
    words = {"a": ra, "b": rb, "A": capitalize(ra)}
    swap = rng.random() < 0.5  # which relation is named first in the question
    t_ff, t_mc = pick(rng, DIR_FF), pick(rng, DIR_MC)
    free = FreeForm(
        capitalize(t_ff.render(r0=r1 if swap else r0, r1=r0 if swap else r1, **words)),
        f"{capitalize(ra)} is {rel} {rb}.",
        t_ff.id,
    )
    choice = Choice(capitalize(t_mc.render(**words)), f"{rel} {rb}", [f"{opposite} {rb}"], t_mc.id)
    if rng.random() < ctx.config.yes_no_prob:
        t = pick(rng, DIR_YN)
        judgement = Judgement(
            capitalize(t.render(r=rel, **words)),
            capitalize(t.render(r=opposite, **words)),
            t.id,
            yes_no=True,
            balance_key=f"dir|{axis}|yn",
        )
    else:
        t = pick(rng, DIR_TF)  # "{b} has {a} <r> it" states the same relation from B's side
        judgement = Judgement(
            capitalize(t.render(r=rel, **words)),
            capitalize(t.render(r=opposite, **words)),
            t.id,
            balance_key=f"dir|{axis}",
        )
    return emit(ctx, base, free, choice, judgement)


def _angle_deg(u: Sequence[float], v: Sequence[float]) -> float:
    """Angle between two 2D/3D vectors in degrees (plain floats: called per candidate in the hot loop)."""
    dot = sum(float(x) * float(y) for x, y in zip(u, v, strict=True))
    nu = math.sqrt(sum(float(x) ** 2 for x in u))
    nv = math.sqrt(sum(float(y) ** 2 for y in v))
    return math.degrees(math.acos(max(-1.0, min(1.0, dot / (nu * nv)))))


_COS_VEC_TRUTH = math.cos(math.radians(VECTOR_MIN_ANGLE_DEG))
_COS_VEC_OTHER = math.cos(math.radians(VECTOR_MIN_ANGLE_DEG * 0.75))


def vector_distractors(rng: RandomSource, truth: Sequence[float], k: int) -> list[tuple[float, float, float]]:
    """Unit vectors at least VECTOR_MIN_ANGLE_DEG from the truth and 0.75 x that from each other (rounded to two
    decimals, as displayed): wrong directions nobody could mistake for the answer."""
    tx, ty, tz = (float(c) for c in truth)
    tn = math.sqrt(tx * tx + ty * ty + tz * tz)
    tx, ty, tz = tx / tn, ty / tn, tz / tn
    kept: list[tuple[float, float, float, float]] = []  # x, y, z and the norm after rounding
    for _ in range(60 * max(k, 1)):
        if len(kept) >= k:
            break
        if rng.random() < 0.3:  # mirrored along one camera axis: a classic left/right or up/down confusion
            flip = int(rng.random() * 3)
            x, y, z = (-tx if flip == 0 else tx), (-ty if flip == 1 else ty), (-tz if flip == 2 else tz)
        elif isinstance(rng, FastRandom):
            x, y, z = rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
        else:
            x, y, z = (float(c) for c in rng.normal(size=3))
        n = math.sqrt(x * x + y * y + z * z)
        if n < 1e-6:
            continue
        x, y, z = round(x / n, 2), round(y / n, 2), round(z / n, 2)
        n = math.sqrt(x * x + y * y + z * z)  # ~1 after rounding
        if (x * tx + y * ty + z * tz) / n > _COS_VEC_TRUTH:
            continue
        if any((x * ox + y * oy + z * oz) / (n * on) > _COS_VEC_OTHER for ox, oy, oz, on in kept):
            continue
        kept.append((x, y, z, n))
    return [(x, y, z) for x, y, z, _ in kept]


def vector_questions(ctx: QAContext, a: SceneObject, b: SceneObject) -> list[QAPair]:
    """Unit direction (b - a) / |b - a| in the camera frame."""
    delta = ctx.geom(b).center_cam - ctx.geom(a).center_cam
    norm = math.sqrt(delta.dot(delta))  # == np.linalg.norm(delta), bit for bit, without its overhead
    if norm < MIN_RELATIVE_DISTANCE_M:
        return []
    rng = ctx.fast
    refs, boxes, distinct = _refs(ctx, [a, b])
    if not distinct:
        return []
    unit = delta / norm
    shown = format_vector(unit)
    base = QABase(
        task=Task.RELATIVE_DIRECTION, subtask="vector", objects=[a, b], references=refs, draw_boxes=boxes
    )
    words = {"a": refs[0], "b": refs[1]}
    wrong = [format_vector(v) for v in vector_distractors(rng, unit, ctx.config.mc_max_options - 1)]
    t_ff, t_mc, t_tf = pick(rng, VEC_FF), pick(rng, VEC_MC), pick(rng, VEC_TF)
    judgement = None
    if wrong:
        judgement = Judgement(
            capitalize(t_tf.render(v=shown, **words)),
            capitalize(t_tf.render(v=wrong[0], **words)),
            t_tf.id,
            balance_key="dir|vector",
        )
    direction = tuple(float(x) for x in unit)
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), shown, t_ff.id, direction=direction),
        Choice(capitalize(t_mc.render(**words)), shown, wrong, t_mc.id),
        judgement,
    )


def clock_hour_of(d_right: float, d_forward: float) -> int | None:
    """The clock hour (1-12) of a horizontal offset (12 = the camera's forward, 3 = right), None when the offset is
    shorter than CLOCK_MIN_DISTANCE_M or not clearly one hour.

    "Clearly" is CLOCK_MAX_OFF_DEG on the counter-clockwise side of the hour's direction, where the nearest hour
    and SpatialRGPT's own rule (`calculate_angle_clockwise` in their data pipeline: the next hour clockwise, i.e.
    ceil(clockwise angle / 30)) agree, so our answers are theirs too (tests/assets/qa/fixtures/spatialrgpt_clock.json).
    """
    if math.hypot(d_right, d_forward) < CLOCK_MIN_DISTANCE_M:
        return None
    angle = math.degrees(math.atan2(d_right, d_forward)) % 360.0  # clockwise from forward
    hour = round(angle / 30.0)
    off = angle - 30.0 * hour
    if not -CLOCK_MAX_OFF_DEG <= off <= 1e-9:
        return None
    return 12 if hour % 12 == 0 else hour % 12


def clock_hour(ctx: QAContext, a: SceneObject, b: SceneObject) -> int | None:
    """`clock_hour_of` the horizontal offset from A's centre to B's (gravity frame)."""
    d = ctx.geom(b).center_grav - ctx.geom(a).center_grav  # (right, forward, up)
    return clock_hour_of(float(d[0]), float(d[1]))


def _hours_apart(h1: int, h2: int) -> int:
    return min((h1 - h2) % 12, (h2 - h1) % 12)


def clock_questions(ctx: QAContext, a: SceneObject, b: SceneObject) -> list[QAPair]:
    """Clock position of B from A (SpatialRGPT style); distractors at least two hours off."""
    if ctx.frame is None:
        return []
    hour = clock_hour(ctx, a, b)
    if hour is None:
        return []
    refs, boxes, distinct = _refs(ctx, [a, b], AXIS_QUANTITIES["right"] | AXIS_QUANTITIES["forward"])
    if not distinct:
        return []
    rng = ctx.fast
    shown = f"{hour} o'clock"
    far = [h for h in range(1, 13) if _hours_apart(h, hour) >= 2]
    wrong = [f"{far[i]} o'clock" for i in rng.permutation(len(far))[: ctx.config.mc_max_options - 1]]
    base = QABase(
        task=Task.RELATIVE_DIRECTION, subtask="clock", objects=[a, b], references=refs, draw_boxes=boxes
    )
    words = {"a": refs[0], "b": refs[1]}
    t_ff, t_mc, t_tf = pick(rng, CLOCK_FF), pick(rng, CLOCK_MC), pick(rng, CLOCK_TF)
    judgement = Judgement(
        capitalize(t_tf.render(h=shown, **words)),
        capitalize(t_tf.render(h=wrong[0], **words)),
        t_tf.id,
        balance_key="dir|clock",
    )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), shown, t_ff.id, value=float(hour)),
        Choice(capitalize(t_mc.render(**words)), shown, wrong, t_mc.id),
        judgement,
    )


def pair_comparison_questions(ctx: QAContext, a: SceneObject, b: SceneObject, attribute: str) -> list[QAPair]:
    """Two-object comparison ("Is A larger than B?"), asked only with a relative margin of `compare_margin`."""
    va, vb = attribute_value(ctx, a, attribute), attribute_value(ctx, b, attribute)
    if max(va, vb) < min(va, vb) * (1.0 + ctx.config.compare_margin):
        return []
    refs, boxes, distinct = _refs(ctx, [a, b], ATTRIBUTE_QUANTITIES[attribute])
    if not distinct:
        return []
    rng = ctx.fast
    larger = rng.random() < 0.5  # which comparative the question asks with
    word = PAIR_WORDS[attribute][1 if larger else 0]
    a_wins = (va > vb) == larger
    base = QABase(
        task=Task.RELATIONAL_COMPARISON,
        subtask=f"pair_{attribute}",
        objects=[a, b],
        references=refs,
        draw_boxes=boxes,
    )
    first, second = (refs[0], refs[1]) if rng.random() < 0.5 else (refs[1], refs[0])  # mention order
    winner, loser = (refs[0], refs[1]) if a_wins else (refs[1], refs[0])
    t_ff, t_mc, t_yn = pick(rng, PAIR_FF), pick(rng, PAIR_MC), pick(rng, PAIR_YN)
    judgement = Judgement(
        capitalize(t_yn.render(a=winner, b=loser, w=word)),
        capitalize(t_yn.render(a=loser, b=winner, w=word)),
        t_yn.id,
        yes_no=True,
        balance_key=f"cmp|pair_{attribute}|yn",
    )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(a=first, b=second, w=word)), capitalize(winner) + ".", t_ff.id),
        Choice(capitalize(t_mc.render(w=word)), winner, [loser], t_mc.id),
        judgement,
    )


def relative_distance(ctx: QAContext, a: SceneObject, b: SceneObject, kind: str) -> float | None:
    """Center-to-center distance of the given kind (docs/CONVENTIONS.md), None when it needs gravity and there is
    none."""
    if kind == "direct":
        d = ctx.geom(a).center_cam - ctx.geom(b).center_cam
        return math.sqrt(d.dot(d))  # == np.linalg.norm(d), bit for bit
    if ctx.frame is None:
        return None
    d = ctx.geom(a).center_grav - ctx.geom(b).center_grav  # (right, forward, up)
    if kind == "vertical":
        return float(abs(d[2]))
    if kind == "horizontal":
        return float(np.hypot(d[0], d[1]))
    if kind == "depth":
        return float(abs(d[1]))
    if kind == "surface":
        return surface_distance(ctx.geom(a).corners, ctx.geom(b).corners)
    raise ValueError(f"unknown distance kind {kind!r}")


def _footprint(corners: np.ndarray) -> list[tuple[float, float]]:
    """The 4 footprint corners (right, forward) of gravity-aligned box corners, in order around the rectangle."""
    pts = {(round(float(x), 12), round(float(y), 12)) for x, y in corners[:, :2]}
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    return sorted(pts, key=lambda p: math.atan2(p[1] - cy, p[0] - cx))


def _point_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = b[0] - a[0], b[1] - a[1]
    t = max(0.0, min(1.0, ((p[0] - a[0]) * ax + (p[1] - a[1]) * ay) / max(ax * ax + ay * ay, 1e-18)))
    return math.hypot(p[0] - a[0] - t * ax, p[1] - a[1] - t * ay)


def _separated(poly_a: list[tuple[float, float]], poly_b: list[tuple[float, float]]) -> bool:
    """Separating-axis test for two convex polygons (edge normals of both)."""
    for poly in (poly_a, poly_b):
        for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True):
            nx, ny = y1 - y0, x0 - x1
            pa = [nx * x + ny * y for x, y in poly_a]
            pb = [nx * x + ny * y for x, y in poly_b]
            if max(pa) < min(pb) or max(pb) < min(pa):
                return True
    return False


def surface_distance(corners_a: np.ndarray, corners_b: np.ndarray) -> float:
    """Distance between the nearest surface points of two gravity-aligned boxes (0 when they touch or overlap).

    Both boxes are vertical prisms, so the gap splits exactly into a vertical gap (between the height intervals)
    and a horizontal gap (between the two footprint rectangles: 0 when they intersect, else the least
    vertex-to-edge distance), combined as hypot(horizontal, vertical)."""
    za, zb = corners_a[:, 2], corners_b[:, 2]
    vertical = max(0.0, float(max(za.min(), zb.min()) - min(za.max(), zb.max())))
    fa, fb = _footprint(corners_a), _footprint(corners_b)
    horizontal = 0.0
    if _separated(fa, fb):
        horizontal = min(
            min(_point_segment(p, q0, q1) for p in fa for q0, q1 in zip(fb, fb[1:] + fb[:1], strict=True)),
            min(_point_segment(p, q0, q1) for p in fb for q0, q1 in zip(fa, fa[1:] + fa[:1], strict=True)),
        )
    return math.hypot(horizontal, vertical)


def distance_questions(ctx: QAContext, a: SceneObject, b: SceneObject, kind: str) -> list[QAPair]:
    meters = relative_distance(ctx, a, b, kind)
    if meters is None or meters < MIN_RELATIVE_DISTANCE_M:
        return []
    rng, cfg = ctx.fast, ctx.config
    refs, boxes, distinct = _refs(ctx, [a, b])
    if not distinct:
        return []
    base = QABase(
        task=Task.RELATIVE_DISTANCE, subtask=kind, objects=[a, b], references=refs, draw_boxes=boxes
    )
    unit, u = pick_unit(ctx)
    kind_word, kind_q = DISTANCE_KINDS[kind]
    words = {"a": refs[0], "b": refs[1], "A": capitalize(refs[0]), "kind": kind_word, "u": u}
    words["kind_q"] = kind_q.format(**words)
    answer = format_length(meters, unit)
    wrong_m = length_distractors(rng, meters, unit, cfg.mc_max_options - 1, cfg.distractor_min_rel)
    wrong = [format_length(w, unit) for w in wrong_m]
    t_ff, t_mc = pick(rng, RDIST_FF), pick(rng, RDIST_MC)
    value = length_value(meters, unit)
    judgement = numeric_judgement(
        rng,
        cfg.yes_no_prob,
        meters,
        unit,
        answer,
        wrong,
        wrong_m,
        RDIST_YN,
        RDIST_TF,
        words,
        balance_key=f"rdist|{kind}",
    )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), answer, t_ff.id, value, unit),
        Choice(capitalize(t_mc.render(**words)), answer, wrong, t_mc.id, value, unit),
        judgement,
    )


def attribute_value(ctx: QAContext, obj: SceneObject, attribute: str) -> float:
    if attribute == "distance":
        return ctx.geom(obj).distance
    if attribute == "volume":
        return ctx.geom(obj).volume
    return float(getattr(obj.box3d, attribute))


def _clear(values: list[float], margin: float) -> bool:
    """True when consecutive sorted values differ by at least `margin` relative to the smaller one."""
    s = sorted(values)
    return all(hi >= lo * (1.0 + margin) for lo, hi in itertools.pairwise(s))


def extreme_questions(ctx: QAContext, objs: list[SceneObject], attribute: str) -> list[QAPair]:
    """Which of 3+ objects is nearest/farthest/smallest/largest (the winner beats the runner-up by the margin)."""
    rng, margin = ctx.fast, ctx.config.compare_margin
    values = [attribute_value(ctx, o, attribute) for o in objs]
    largest = rng.random() < 0.5
    order = sorted(range(len(values)), key=values.__getitem__)
    win, runner = (order[-1], order[-2]) if largest else (order[0], order[1])
    lo, hi = sorted((values[win], values[runner]))
    if hi < lo * (1.0 + margin):
        return []
    refs, boxes, distinct = _refs(ctx, objs, ATTRIBUTE_QUANTITIES[attribute])
    if not distinct:
        return []
    word = ATTRIBUTES[attribute][1 if largest else 0]
    base = QABase(
        task=Task.RELATIONAL_COMPARISON,
        subtask=f"{'max' if largest else 'min'}_{attribute}",
        objects=list(objs),
        references=refs,
        draw_boxes=boxes,
    )
    listing = _join(refs)
    words = {"w": word, "objs": listing}
    correct = refs[win]
    others = [r for i, r in enumerate(refs) if i != win]
    t_ff, t_mc = pick(rng, EXT_FF), pick(rng, EXT_MC)
    t_tf = pick(rng, EXT_TF)
    wrong = others[int(rng.integers(len(others)))]
    judgement = Judgement(
        capitalize(t_tf.render(x=correct, X=capitalize(correct), **words)),
        capitalize(t_tf.render(x=wrong, X=capitalize(wrong), **words)),
        t_tf.id,
        balance_key=f"cmp|{attribute}",
    )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), capitalize(correct) + ".", t_ff.id),
        Choice(capitalize(t_mc.render(**words)), correct, others, t_mc.id, all_options=True),
        judgement,
    )


def ordering_questions(ctx: QAContext, objs: list[SceneObject], attribute: str) -> list[QAPair]:
    """Full ordering of 3+ objects by an attribute; every consecutive gap must clear the margin."""
    rng = ctx.fast
    values = [attribute_value(ctx, o, attribute) for o in objs]
    if not _clear(values, ctx.config.compare_margin):
        return []
    refs, boxes, distinct = _refs(ctx, objs, ATTRIBUTE_QUANTITIES[attribute])
    if not distinct:
        return []
    order = list(np.argsort(values))
    correct_seq = [refs[i] for i in order]
    correct = ", ".join(correct_seq)
    wrong: list[str] = []
    for _ in range(30):
        if len(wrong) >= ctx.config.mc_max_options - 1:
            break
        perm = [refs[i] for i in rng.permutation(len(refs))]
        text = ", ".join(perm)
        if perm != correct_seq and text not in wrong:
            wrong.append(text)
    base = QABase(
        task=Task.RELATIONAL_COMPARISON,
        subtask=f"order_{attribute}",
        objects=list(objs),
        references=refs,
        draw_boxes=boxes,
    )
    words = {"o": ATTRIBUTES[attribute][2], "objs": _join(refs)}
    t_ff, t_mc, t_tf = pick(rng, ORD_FF), pick(rng, ORD_MC), pick(rng, ORD_TF)
    judgement = None
    if wrong:
        judgement = Judgement(
            capitalize(t_tf.render(seq=correct, Seq=capitalize(correct), **words)),
            capitalize(t_tf.render(seq=wrong[0], Seq=capitalize(wrong[0]), **words)),
            t_tf.id,
            balance_key=f"cmp|order_{attribute}",
        )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), capitalize(correct) + ".", t_ff.id),
        Choice(capitalize(t_mc.render(**words)), correct, wrong, t_mc.id),
        judgement,
    )


def orientation_relation(
    front_a: tuple[float, float, float], front_b: tuple[float, float, float], tolerance_deg: float
) -> str | None:
    """similar / orthogonal / opposite for two horizontal facing directions, None when not clearly one of them."""
    a, b = front_a[:2], front_b[:2]
    if math.hypot(*a) < 0.5 or math.hypot(*b) < 0.5:  # (nearly) vertical fronts have no yaw to compare
        return None
    angle = _angle_deg(a, b)
    for name, target in ORIENT_ANGLES.items():
        if abs(angle - target) <= tolerance_deg:
            return name
    return None


def orientation_consistency_questions(ctx: QAContext, a: SceneObject, b: SceneObject) -> list[QAPair]:
    if a.front_grav is None or b.front_grav is None or ctx.frame is None:
        return []
    rel = orientation_relation(a.front_grav, b.front_grav, ctx.config.orientation_tolerance_deg)
    if rel is None:
        return []
    rng = ctx.fast
    refs, boxes, distinct = _refs(ctx, [a, b])
    if not distinct:
        return []
    base = QABase(
        task=Task.RELATIONAL_COMPARISON,
        subtask=f"orientation_{rel}",
        objects=[a, b],
        references=refs,
        draw_boxes=boxes,
    )
    words = {"a": refs[0], "b": refs[1], "A": capitalize(refs[0])}
    others = [c for c in ORIENT_CLASSES if c != rel]
    wrong = others[int(rng.integers(2))]
    t_ff, t_mc, t_tf = pick(rng, OCONS_FF), pick(rng, OCONS_MC), pick(rng, OCONS_TF)

    def tf(c: str) -> str:
        return capitalize(t_tf.render(p=ORIENT_PHRASE[c], c=_ORIENT_ADJ[c], c2=_ORIENT_ADJ2[c], **words))

    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), capitalize(rel) + ".", t_ff.id),
        Choice(capitalize(t_mc.render(**words)), rel, others, t_mc.id),
        Judgement(tf(rel), tf(wrong), t_tf.id, balance_key="cmp|orientation"),
    )


def generate_l2(ctx: QAContext) -> tuple[list[QAPair], list[str]]:
    """All L2 questions for a scene within the per-task caps, and reasons for what was skipped."""
    out: list[QAPair] = []
    skips: list[str] = []
    objs = ctx.objects
    if len(objs) < 2:
        return out, [f"L2: needs 2+ usable objects, scene has {len(objs)}"]
    rng = ctx.fast
    budget = Budget(ctx)
    pairs = list(itertools.permutations(range(len(objs)), 2))
    order = rng.permutation(len(pairs))
    gravity = ctx.has_gravity
    if not gravity:
        skips.append(
            "L2 qualitative directions, non-direct distances, size comparisons: gravity frame undefined"
        )
    n_ambiguous = 0
    for k in order:
        if not (
            budget.open(Task.RELATIVE_DIRECTION)
            or budget.open(Task.RELATIVE_DISTANCE)
            or budget.open(Task.RELATIONAL_COMPARISON)
        ):
            break  # every pair task is full: the rest of the loop would draw nothing and ask nothing
        a, b = objs[pairs[k][0]], objs[pairs[k][1]]
        if budget.open(Task.RELATIVE_DIRECTION):
            draw = rng.random()
            if gravity and draw < 0.15:
                produced = clock_questions(ctx, a, b) or vector_questions(ctx, a, b)
            elif gravity and draw < 0.75:
                axes = ["right", "forward", "up"]
                axis = axes[int(rng.integers(3))]
                produced = direction_questions(ctx, a, b, axis)
                if not produced:  # try the other axes before giving up on this pair
                    for other in axes:
                        if other != axis:
                            produced = direction_questions(ctx, a, b, other)
                            if produced:
                                break
                if not produced:
                    n_ambiguous += 1
            else:
                produced = vector_questions(ctx, a, b)
            budget.take(Task.RELATIVE_DIRECTION, produced, out)
        if budget.open(Task.RELATIVE_DISTANCE):
            kinds = ["direct", "surface", "vertical", "horizontal", "depth"] if gravity else ["direct"]
            kind = kinds[int(rng.integers(len(kinds)))]
            budget.take(Task.RELATIVE_DISTANCE, distance_questions(ctx, a, b, kind), out)
        if (
            budget.open(Task.RELATIONAL_COMPARISON)
            and a.front_grav is not None
            and b.front_grav is not None
            and pairs[k][0] < pairs[k][1]
            and rng.random() < 0.5
        ):
            budget.take(Task.RELATIONAL_COMPARISON, orientation_consistency_questions(ctx, a, b), out)
        elif budget.open(Task.RELATIONAL_COMPARISON) and pairs[k][0] < pairs[k][1] and rng.random() < 0.1:
            names = [n for n, spec in ATTRIBUTES.items() if gravity or not spec[3]]
            attribute = names[int(rng.integers(len(names)))]
            budget.take(Task.RELATIONAL_COMPARISON, pair_comparison_questions(ctx, a, b, attribute), out)
    if n_ambiguous:
        skips.append(f"L2 relative direction: {n_ambiguous} pairs overlap on every axis (ambiguous)")
    if len(objs) >= 3:
        attributes = [a for a, spec in ATTRIBUTES.items() if gravity or not spec[3]]
        tries = 0
        while budget.open(Task.RELATIONAL_COMPARISON) and tries < 4 * len(objs):
            tries += 1
            k = int(rng.integers(3, min(len(objs), 5) + 1))
            group = [objs[i] for i in rng.choice(len(objs), size=k, replace=False)]
            attribute = attributes[int(rng.integers(len(attributes)))]
            fn = ordering_questions if rng.random() < 0.3 else extreme_questions
            budget.take(Task.RELATIONAL_COMPARISON, fn(ctx, group, attribute), out)
    else:
        skips.append("L2 relational comparison over 3+ objects: fewer than 3 usable objects")
    return out, skips
