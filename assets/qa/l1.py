"""Level 1: object-level spatial understanding (paper Sec. 3.1): localization (3D center, camera frame; the whole
3D bounding box as subtask "detection": center, size, yaw), orientation
(facing direction relative to the camera view), size (width, height, length) and object-to-camera distance.

Definitions are those of docs/CONVENTIONS.md; every answer is read from the object's `Box3D` and `front_grav`.
Object-to-camera distance has no task of its own in Table 7 and is filed under localization (subtask "distance").
"""

from __future__ import annotations

import math

import numpy as np

from assets.qa.context import QAContext, refer
from assets.qa.formats import (
    Budget,
    Choice,
    FreeForm,
    Judgement,
    QABase,
    capitalize,
    distance3,
    emit,
    format_length,
    format_xyz,
    length_distractors,
    length_value,
    numeric_judgement,
    pick,
    pick_unit,
    templates,
    xyz_distractors,
)
from assets.records import QAPair, SceneObject, Task

# --------------------------------------------------------------------------------------------------- templates

LOC_FF = templates(
    "l1.loc.ff",
    "What is the 3D location of {a} in the camera coordinate system?",
    "Where is the center of {a} relative to the camera? Answer as x y z in meters.",
    "Give the camera-frame coordinates of the center of {a}.",
    "Estimate the 3D position (x right, y down, z forward) of {a}.",
)
LOC_MC = templates(
    "l1.loc.mc",
    "Which is the 3D center of {a} in the camera frame?",
    "Where is {a} located in camera coordinates?",
    "Select the camera-frame position of {a}.",
)
LOC_TF = templates(
    "l1.loc.tf",
    "The center of {a} is at {xyz} in the camera coordinate system.",
    "In camera coordinates, {a} is located at {xyz}.",
    "{A} has its 3D center at {xyz}.",
)
DIST_FF = templates(
    "l1.dist.ff",
    "How far is {a} from the camera{u}?",
    "What is the distance between the camera and {a}{u}?",
    "Estimate how far away {a} is from the viewer{u}.",
    "How far away from the camera is {a}{u}?",
)
DIST_MC = templates(
    "l1.dist.mc",
    "How far is {a} from the camera{u}?",
    "What is the distance from the camera to {a}{u}?",
    "Which value best matches the distance of {a} from the camera{u}?",
)
DIST_TF = templates(
    "l1.dist.tf",
    "{A} is {x} away from the camera.",
    "The distance from the camera to {a} is {x}.",
    "{A} stands {x} from the viewer.",
)
DIST_YN = templates(
    "l1.dist.yn",
    "Is {a} more than {x} away from the camera?",
    "Is the distance between the camera and {a} greater than {x}?",
    "Is {a} farther than {x} from the camera?",
)
_DIMENSION_WORDS = {
    "width": ("wide", "width"),
    "height": ("tall", "height"),
    "length": ("long", "length"),
}
SIZE_FF = templates(
    "l1.size.ff",
    "How {adj} is {a}{u}?",
    "What is the {dim} of {a}{u}?",
    "Estimate the {dim} of {a}{u}.",
    "Measure the {dim} of {a}{u}.",
)
SIZE_MC = templates(
    "l1.size.mc",
    "How {adj} is {a}{u}?",
    "What is the {dim} of {a}{u}?",
    "Which value is closest to the {dim} of {a}{u}?",
)
SIZE_TF = templates(
    "l1.size.tf",
    "{A} is {x} {adj}.",
    "The {dim} of {a} is {x}.",
    "{A} has a {dim} of {x}.",
)
SIZE_YN = templates(
    "l1.size.yn",
    "Is {a} more than {x} {adj}?",
    "Is the {dim} of {a} greater than {x}?",
    "Does {a} have a {dim} of more than {x}?",
)
ORI_FF = templates(
    "l1.ori.ff",
    "Which direction is {a} facing?",
    "From the camera's viewpoint, where is {a} facing?",
    "What is the facing direction of {a} relative to the camera?",
    "Describe the orientation of {a}: which way does its front point?",
)
ORI_MC = templates(
    "l1.ori.mc",
    "Which direction is {a} facing?",
    "Relative to the camera, how is {a} oriented?",
    "Where does the front of {a} point?",
)
ORI_TF = templates(
    "l1.ori.tf",
    "{A} is facing {d}.",
    "The front of {a} points {d}.",
    "Seen from the camera, {a} faces {d}.",
)
ORI_YN = templates(
    "l1.ori.yn",
    "Is {a} facing {d}?",
    "Does the front of {a} point {d}?",
    "Seen from the camera, is {a} facing {d}?",
)

DET_FF = templates(
    "l1.det.ff",
    "Give the 3D bounding box of {a}: center (camera frame), size (width height length) and yaw.",
    "Detect {a} in 3D: report its box center in camera coordinates, its width, height and length, and its yaw.",
    "What is the 3D bounding box of {a} (center in the camera frame, size as width height length, yaw)?",
)
DET_MC = templates(
    "l1.det.mc",
    "Which 3D bounding box fits {a}?",
    "Select the 3D box (center, size, yaw) of {a}.",
    "Which of these boxes is the 3D bounding box of {a}?",
)
DET_TF = templates(
    "l1.det.tf",
    "The 3D bounding box of {a} is {box}.",
    "{A} has the 3D box {box}.",
    "In 3D, {a} is enclosed by the box {box}.",
)
# Yaw: the angle of the box's length axis from the camera's right direction, turning towards the viewing direction
# (about the up axis), in whole degrees in [-90, 90) (a box turned by 180 degrees is the same box). Asked only when
# the footprint is clearly oblong (width and length differ by DETECTION_MIN_ASPECT): a square footprint's yaw is
# ambiguous by 90 degrees.
DETECTION_MIN_ASPECT = 0.15
DETECTION_YAW_DISTRACTOR_DEG = (45, 60, 90)
DETECTION_SIZE_FACTORS = (0.6, 1.5, 1.8, 0.5)


def yaw_degrees(yaw_rad: float) -> int:
    """A box's yaw as shown in answers: whole degrees in [-90, 90)."""
    return (round(math.degrees(yaw_rad)) + 90) % 180 - 90


def format_box3d(center: tuple[float, float, float], size: tuple[float, float, float], yaw_deg: int) -> str:
    """'center 0.61m -0.20m 1.17m, size 0.45m 0.90m 0.50m, yaw 30 deg' (size = width, height, length)."""
    return f"center {format_xyz(center)}, size {format_xyz(size)}, yaw {yaw_deg} deg"


# Facing classes: unit axis in the gravity frame (x right, y forward, z up) -> phrase. "Left"/"right" are as seen
# from the camera; "towards the camera" is the -forward direction.
FACING = (
    ("towards", np.array([0.0, -1.0, 0.0]), "towards the camera"),
    ("away", np.array([0.0, 1.0, 0.0]), "away from the camera"),
    ("left", np.array([-1.0, 0.0, 0.0]), "to the left"),
    ("right", np.array([1.0, 0.0, 0.0]), "to the right"),
    ("up", np.array([0.0, 0.0, 1.0]), "upwards"),
    ("down", np.array([0.0, 0.0, -1.0]), "downwards"),
)
OPPOSITE_FACING = {
    "towards": "away",
    "away": "towards",
    "left": "right",
    "right": "left",
    "up": "down",
    "down": "up",
}
# A facing is only asked when the front lies within this angle of one class axis (so >= 60 deg from the others).
FACING_MAX_ANGLE_DEG = 30.0


def facing_class(front_grav: np.ndarray | tuple[float, float, float]) -> str | None:
    """Name of the facing class the front direction clearly belongs to, or None when it is in between."""
    f = np.asarray(front_grav, dtype=np.float64)
    comps = (f / math.sqrt(f.dot(f))).tolist()  # f / np.linalg.norm(f), bit for bit
    # f @ axis for a signed unit axis is exactly +-one component (the other terms add zeros)
    for name, index, sign in _FACING_COMPONENT:
        if comps[index] * sign >= _FACING_COS_MIN:
            return name
    return None


_FACING_COS_MIN = np.cos(np.deg2rad(FACING_MAX_ANGLE_DEG))
_FACING_COMPONENT = tuple(
    (name, int(np.flatnonzero(axis)[0]), float(axis[np.flatnonzero(axis)[0]])) for name, axis, _ in FACING
)


FACING_PHRASE = {name: phrase for name, _, phrase in FACING}


def _length_question(
    ctx: QAContext,
    base: QABase,
    meters: float,
    ff: tuple,
    mc: tuple,
    tf: tuple,
    yn: tuple,
    words: dict[str, str],
) -> list[QAPair]:
    """Free-form / MC / TF variants of a question whose answer is one length (size, distance)."""
    rng, cfg = ctx.fast, ctx.config
    unit, u_phrase = pick_unit(ctx)
    answer = format_length(meters, unit)
    wrong_m = length_distractors(rng, meters, unit, cfg.mc_max_options - 1, cfg.distractor_min_rel)
    wrong = [format_length(w, unit) for w in wrong_m]
    t_ff, t_mc = pick(rng, ff), pick(rng, mc)
    value = length_value(meters, unit)
    free = FreeForm(capitalize(t_ff.render(u=u_phrase, **words)), answer, t_ff.id, value, unit)
    choice = Choice(capitalize(t_mc.render(u=u_phrase, **words)), answer, wrong, t_mc.id, value, unit)
    judgement = numeric_judgement(
        rng,
        cfg.yes_no_prob,
        meters,
        unit,
        answer,
        wrong,
        wrong_m,
        yn,
        tf,
        words,
        balance_key=f"{base.task}|{base.subtask}",
    )
    return emit(ctx, base, free, choice, judgement)


def _base(ctx: QAContext, task: Task, subtask: str, obj: SceneObject) -> tuple[QABase, str]:
    text, boxes = refer(obj, ctx)
    return QABase(task=task, subtask=subtask, objects=[obj], references=[text], draw_boxes=boxes), text


def localization_questions(ctx: QAContext, obj: SceneObject) -> list[QAPair]:
    """3D center in the camera frame (xyz answer)."""
    rng, cfg = ctx.fast, ctx.config
    base, a = _base(ctx, Task.LOCALIZATION, "center", obj)
    center = tuple(round(float(c), 2) + 0.0 for c in obj.box3d.center_cam)
    answer = format_xyz(center)
    norm = math.sqrt(sum(c * c for c in center))
    # distractors: other objects' centers when clearly elsewhere (plausible), then perturbed copies of the truth
    wrong_pts: list = []
    for other in ctx.objects:
        c = other.box3d.center_cam
        if (
            other.instance_id != obj.instance_id
            and len(wrong_pts) < 2
            and distance3(c, center) >= (cfg.distractor_min_rel + 0.05) * norm
            and all(distance3(c, w) >= 0.15 * norm for w in wrong_pts)
        ):
            wrong_pts.append(c)
    wrong_pts += xyz_distractors(
        rng, center, cfg.mc_max_options - 1 - len(wrong_pts), cfg.distractor_min_rel, taken=wrong_pts
    )
    wrong = [format_xyz(p) for p in wrong_pts]
    t_ff, t_mc, t_tf = pick(rng, LOC_FF), pick(rng, LOC_MC), pick(rng, LOC_TF)
    words = {"a": a, "A": capitalize(a)}
    judgement = None
    if wrong:
        judgement = Judgement(
            capitalize(t_tf.render(xyz=answer, **words)),
            capitalize(t_tf.render(xyz=wrong[-1], **words)),
            t_tf.id,
        )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), answer, t_ff.id),
        Choice(capitalize(t_mc.render(**words)), answer, wrong, t_mc.id),
        judgement,
    )


def distance_questions(ctx: QAContext, obj: SceneObject) -> list[QAPair]:
    """Object-to-camera distance = |center|."""
    base, a = _base(ctx, Task.LOCALIZATION, "distance", obj)
    return _length_question(
        ctx, base, ctx.geom(obj).distance, DIST_FF, DIST_MC, DIST_TF, DIST_YN, {"a": a, "A": capitalize(a)}
    )


def size_questions(ctx: QAContext, obj: SceneObject, dimension: str) -> list[QAPair]:
    """Width / height / length of the box (docs/CONVENTIONS.md: width across the facing direction, etc.)."""
    base, a = _base(ctx, Task.SIZE, dimension, obj)
    adj, dim = _DIMENSION_WORDS[dimension]
    meters = float(getattr(obj.box3d, dimension))
    return _length_question(
        ctx,
        base,
        meters,
        SIZE_FF,
        SIZE_MC,
        SIZE_TF,
        SIZE_YN,
        {"a": a, "A": capitalize(a), "adj": adj, "dim": dim},
    )


def detection_questions(ctx: QAContext, obj: SceneObject) -> list[QAPair] | str:
    """The whole 3D bounding box (center, size, yaw) as one answer; a reason string when it cannot be asked."""
    box = obj.box3d
    if ctx.frame is None:
        return "no gravity frame (yaw undefined)"
    if abs(box.width - box.length) < DETECTION_MIN_ASPECT * max(box.width, box.length):
        return "square footprint (yaw ambiguous)"
    rng, cfg = ctx.fast, ctx.config
    base, a = _base(ctx, Task.LOCALIZATION, "detection", obj)
    center = tuple(round(float(c), 2) + 0.0 for c in box.center_cam)
    size = (
        round(float(box.width), 2) + 0.0,
        round(float(box.height), 2) + 0.0,
        round(float(box.length), 2) + 0.0,
    )
    yaw = yaw_degrees(float(box.yaw))
    answer = format_box3d(center, size, yaw)
    # each distractor is wrong in one clear way: elsewhere, another size, or turned
    wrong: list[str] = []
    for point in xyz_distractors(rng, center, 2, cfg.distractor_min_rel):
        wrong.append(format_box3d(point, size, yaw))
    factor = DETECTION_SIZE_FACTORS[int(rng.integers(len(DETECTION_SIZE_FACTORS)))]
    wrong.append(format_box3d(center, tuple(round(v * factor, 2) + 0.0 for v in size), yaw))
    turn = DETECTION_YAW_DISTRACTOR_DEG[int(rng.integers(len(DETECTION_YAW_DISTRACTOR_DEG)))]
    wrong.append(format_box3d(center, size, (yaw + turn + 90) % 180 - 90))
    order = rng.permutation(len(wrong))
    wrong = [wrong[i] for i in order][: cfg.mc_max_options - 1]
    words = {"a": a, "A": capitalize(a)}
    t_ff, t_mc, t_tf = pick(rng, DET_FF), pick(rng, DET_MC), pick(rng, DET_TF)
    judgement = Judgement(
        capitalize(t_tf.render(box=answer, **words)),
        capitalize(t_tf.render(box=wrong[0], **words)),
        t_tf.id,
        balance_key="localization|detection",
    )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), answer, t_ff.id),
        Choice(capitalize(t_mc.render(**words)), answer, wrong, t_mc.id),
        judgement,
    )


def orientation_questions(ctx: QAContext, obj: SceneObject) -> list[QAPair] | str:
    """Facing direction relative to the camera view; a reason string when the object cannot be asked about."""
    if obj.front_grav is None:
        return "no front"
    cls = facing_class(obj.front_grav)
    if cls is None:
        return "facing between two directions"
    rng = ctx.fast
    base, a = _base(ctx, Task.ORIENTATION, cls, obj)
    correct = FACING_PHRASE[cls]
    others = [FACING_PHRASE[n] for n, _, _ in FACING if n != cls]
    # up/down facings are rare and odd as distractors for a horizontal front: prefer the four horizontal ones
    if cls not in ("up", "down"):
        others = [o for o in others if o not in ("upwards", "downwards")] + ["upwards", "downwards"]
        others = others[:3] if rng.random() < 0.7 else others
    words = {"a": a, "A": capitalize(a)}
    t_ff, t_mc = pick(rng, ORI_FF), pick(rng, ORI_MC)
    # false statement: the opposite facing half of the time, another wrong one otherwise; for a horizontal front
    # never upwards/downwards (no horizontal object faces up, so "faces upwards" would always be false)
    plausible = (
        [o for o in others if o not in ("upwards", "downwards")] if cls not in ("up", "down") else others
    )
    wrong = (
        FACING_PHRASE[OPPOSITE_FACING[cls]]
        if rng.random() < 0.5
        else plausible[int(rng.integers(len(plausible)))]
    )
    if rng.random() < ctx.config.yes_no_prob:
        t = pick(rng, ORI_YN)
        judgement = Judgement(
            capitalize(t.render(d=correct, **words)),
            capitalize(t.render(d=wrong, **words)),
            t.id,
            yes_no=True,
            balance_key="orientation|yn",
        )
    else:
        t = pick(rng, ORI_TF)
        judgement = Judgement(
            capitalize(t.render(d=correct, **words)),
            capitalize(t.render(d=wrong, **words)),
            t.id,
            balance_key="orientation",
        )
    return emit(
        ctx,
        base,
        FreeForm(capitalize(t_ff.render(**words)), f"{capitalize(a)} is facing {correct}.", t_ff.id),
        Choice(capitalize(t_mc.render(**words)), correct, others, t_mc.id),
        judgement,
    )


def generate_l1(ctx: QAContext) -> tuple[list[QAPair], list[str]]:
    """All L1 questions for a scene within the per-task caps, and reasons for what was skipped."""
    out: list[QAPair] = []
    skips: list[str] = []
    if not ctx.objects:
        return out, ["L1: no usable object"]
    budget = Budget(ctx)
    order = [ctx.objects[i] for i in ctx.fast.permutation(len(ctx.objects))]
    if not ctx.has_gravity:
        skips.append("L1 size/orientation: gravity frame undefined")
    for obj in order:
        if budget.open(Task.LOCALIZATION):
            draw = ctx.fast.random()
            if draw < 0.25:  # the 3D box, falling back to its center when the box cannot be asked
                pairs = detection_questions(ctx, obj)
                pairs = localization_questions(ctx, obj) if isinstance(pairs, str) else pairs
            elif draw < 0.6:
                pairs = localization_questions(ctx, obj)
            else:
                pairs = distance_questions(ctx, obj)
            budget.take(Task.LOCALIZATION, pairs, out)
        if ctx.has_gravity and budget.open(Task.SIZE):
            dims = ["width", "height", "length"]
            dimension = dims[int(ctx.fast.integers(3))]
            budget.take(Task.SIZE, size_questions(ctx, obj, dimension), out)
        if ctx.has_gravity and budget.open(Task.ORIENTATION):
            result = orientation_questions(ctx, obj)
            if isinstance(result, str):
                if result != "no front":
                    skips.append(f"L1 orientation of object {obj.instance_id}: {result}")
            else:
                budget.take(Task.ORIENTATION, result, out)
    return out, skips
