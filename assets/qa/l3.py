"""Level 3: abstract spatial reasoning (paper Sec. 3.1): perspective taking, spatial object counting and spatial
problem solving.

All three live in the horizontal plane of the gravity frame (x right, y forward, z up; docs/CONVENTIONS.md), so a
scene without a usable gravity frame gets no L3 questions.

- **Perspective taking.** An imagined observer stands at object A's center and faces either object B (facing
  direction = horizontal part of b - a) or, for objects with a front, the way A faces. Their right is
  `facing x up` (the same handedness as the camera's gravity frame). A target C is "to your left" when its whole
  horizontal footprint lies left of A's footprint along the observer's right axis (the overlap rule of the
  conventions, applied in the observer's frame); likewise for in front/behind. Offsets are between box centers.
- **Spatial counting.** "How many cups are to the left of the laptop?": count the objects of one category whose
  relation to an anchor holds (camera-relative axes, as L2). If *any* object of that category overlaps the anchor's
  extent along the axis, the count is ambiguous and the question is skipped.
- **Spatial problem solving.** Without an LLM, multi-step questions are composed from scene facts (rule
  generator): does an object of a given width fit in the horizontal gap between two side-by-side objects; is X
  within arm's reach of Y; can a person walk through a gap; which object must move to make room. Each carries a
  short reasoning string. With an LLM, `assets.qa.problem_solving` runs the paper's teacher/student protocol and
  these rules only top up what it could not produce.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from assets.geometry import box_corners_grav
from assets.qa.context import QAContext, refer, refer_neutral
from assets.qa.formats import (
    Choice,
    FreeForm,
    Judgement,
    QABase,
    Template,
    capitalize,
    emit,
    emit_deferred,
    format_length,
    length_value,
    numeric_distractors,
    pick,
    pick_unit,
    templates,
)
from assets.qa.quality import AXIS_QUANTITIES
from assets.records import DrawBox, QAPair, Scene, SceneObject, Task
from assets.references import unplaced_categories

if TYPE_CHECKING:
    from assets.llm import LLMClient

UP = np.array([0.0, 0.0, 1.0])

# Problem-solving thresholds (meters). Arm's reach and the width a walking person needs are everyday figures;
# a question is asked only when the quantity is at least `DECISION_MARGIN` (relative) away from the threshold, so
# the yes/no answer survives box noise.
ARM_REACH_M = 0.8
WALKWAY_M = 0.6
DECISION_MARGIN = 0.15
MIN_FACING_DISTANCE_M = 0.3  # observer and the object they face must be this far apart horizontally
MIN_OFFSET_M = 0.1  # perspective offsets smaller than this are not asked numerically
FLOOR_TOLERANCE_M = 0.15  # an object stands on the floor when its bottom is this close to the lowest bottom
MIN_WALL_HEIGHT_M = 0.3  # ...and it is tall enough to bound a walkway
MAX_REACH_OBJECT_M = 1.0  # reach is center to center, meaningful only for objects smaller than this
MAX_ATTEMPTS = 400
EXHAUSTIVE_KEY = "exhaustive_annotations"  # Scene.metadata flag: all instances of each category are labelled  # candidate questions examined per task and scene (crowded scenes are n^3 in candidates)


# ------------------------------------------------------------------------------------------------- geometry


def horizontal(vec: np.ndarray) -> np.ndarray:
    """Gravity-frame vector with its vertical (z) part removed."""
    out = np.array(vec, dtype=np.float64)
    out[..., 2] = 0.0
    return out


def observer_axes(facing: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(right, forward) unit axes of an observer facing `facing` (gravity frame); None if facing is vertical."""
    forward = horizontal(facing)
    norm = float(np.linalg.norm(forward))
    if norm < 1e-6:
        return None
    forward = forward / norm
    return np.cross(forward, UP), forward


@dataclass
class Footprint:
    """An object's gravity-frame center and box corners, cached for the L3 generators."""

    obj: SceneObject
    center: np.ndarray  # (3,)
    corners: np.ndarray  # (8, 3)

    def interval(self, origin: np.ndarray, axis: np.ndarray) -> tuple[float, float]:
        proj = ((self.corners - origin) @ axis).tolist()  # Python min/max: same values, less overhead
        return min(proj), max(proj)


def _choose_two_floyd(rng: np.random.Generator, n: int) -> tuple[int, int]:
    """Two distinct indices below `n`, drawn exactly as `Generator.choice(n, size=2, replace=False)` draws them
    (Floyd's sampling, then the in-place shuffle: three bounded integers from the same stream), without choice's
    ~4 us of array set-up per call: the perspective sampler calls it hundreds of times per scene."""
    first = int(rng.integers(0, n - 1))
    second = int(rng.integers(0, n))
    if second == first:
        second = n - 1
    if int(rng.integers(0, 2)) == 0:
        first, second = second, first
    return first, second


def _floyd_matches_numpy() -> bool:
    """True when `_choose_two_floyd` reproduces this numpy's `choice` (draws and the stream after them)."""
    for seed in range(8):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        for n in (2, 3, 4, 7, 12, 33):
            if tuple(int(x) for x in a.choice(n, size=2, replace=False)) != _choose_two_floyd(b, n):
                return False
        if a.integers(2**40) != b.integers(2**40) or a.random() != b.random():
            return False
    return True


def _choose_two_numpy(rng: np.random.Generator, n: int) -> tuple[int, int]:
    i, j = rng.choice(n, size=2, replace=False)
    return int(i), int(j)


# Checked once at import, so a numpy whose `choice` samples differently keeps the exact `choice` behaviour.
choose_two = _choose_two_floyd if _floyd_matches_numpy() else _choose_two_numpy


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@dataclass(frozen=True)
class Viewpoint:
    """An imagined observer at `observer`'s center, facing `target` (an object) or the observer's own front."""

    observer: Footprint
    target: Footprint | None
    right: np.ndarray
    forward: np.ndarray

    @property
    def origin(self) -> np.ndarray:
        return self.observer.center


def viewpoint(observer: Footprint, target: Footprint | None) -> Viewpoint | None:
    """Observer facing `target`, or facing its own front when `target` is None; None when undefined."""
    # Computes exactly what `observer_axes` computes (same float operations, bit for bit) without numpy's
    # per-call overhead on 3-vectors: |h| as sqrt(h . h) (np.linalg.norm's own formula) and the cross product
    # with UP written out term by term as np.cross evaluates it.
    if target is None:
        if observer.obj.front_grav is None:
            return None
        h = horizontal(np.asarray(observer.obj.front_grav, dtype=np.float64))
        norm = math.sqrt(h.dot(h))
        if norm < 0.5:  # front points mostly up/down: no horizontal heading
            return None
    else:
        h = horizontal(target.center - observer.center)
        norm = math.sqrt(h.dot(h))
        if norm < MIN_FACING_DISTANCE_M:
            return None
    if norm < 1e-6:
        return None
    forward = h / norm
    fx, fy, fz = forward.tolist()
    right = np.array([fy * 1.0 - fz * 0.0, fz * 0.0 - fx * 1.0, fx * 0.0 - fy * 0.0])  # np.cross(forward, UP)
    return Viewpoint(observer, target, right, forward)


def observer_intervals(view: Viewpoint) -> tuple[tuple[float, float], tuple[float, float]]:
    """The observer's own footprint along its right and forward axes (what `perspective_relation` compares
    every other object against)."""
    return view.observer.interval(view.origin, view.right), view.observer.interval(view.origin, view.forward)


def perspective_relation(view: Viewpoint, other: Footprint,
                         own: tuple[tuple[float, float], tuple[float, float]] | None = None,
                         ) -> dict[str, float | str | None]:
    """Where `other` is for the observer: side ('left'/'right'/None if ambiguous), depth ('front'/'behind'/None),
    and the signed center offsets along the observer's right and forward axes (meters). `own` is
    `observer_intervals(view)` when the caller has it already."""
    own_right, own_forward = own if own is not None else observer_intervals(view)
    offset = horizontal(other.center - view.origin)
    lateral, ahead = float(offset @ view.right), float(offset @ view.forward)
    side = depth = None
    if not _overlap(other.interval(view.origin, view.right), own_right):
        side = "right" if lateral > 0 else "left"
    if not _overlap(other.interval(view.origin, view.forward), own_forward):
        depth = "front" if ahead > 0 else "behind"
    return {"side": side, "depth": depth, "lateral": lateral, "ahead": ahead}


def perspective_subtasks(rel: dict[str, float | str | None]) -> list[str]:
    """Which perspective questions a relation supports: a clear side and/or depth, and the numeric offsets along
    them when they are not too small to state."""
    return [
        s
        for s, ok in (
            ("side", rel["side"]),
            ("depth", rel["depth"]),
            ("offset", rel["side"] and abs(rel["lateral"]) >= MIN_OFFSET_M),
            ("ahead", rel["depth"] and abs(rel["ahead"]) >= MIN_OFFSET_M),
        )
        if ok
    ]


# ----------------------------------------------------------------------------------------------- templates

VIEW_TOWARD = templates(
    "l3.view.toward",
    "Imagine you are standing at {a}, facing {b}.",
    "Suppose you stand where {a} is and look towards {b}.",
    "Picture yourself at the position of {a}, looking at {b}.",
)
VIEW_FRONT = templates(
    "l3.view.front",
    "Take the viewpoint of {a}, looking in the direction it faces.",
    "Imagine you are {a}, facing the same way it faces.",
    "Take the perspective of {a}, looking where its front points.",
)
PT_SIDE_FF = templates(
    "l3.pt.side.ff",
    "{view} Is {c} to your left or to your right?",
    "{view} On which side of you is {c}, left or right?",
)
PT_DEPTH_FF = templates(
    "l3.pt.depth.ff",
    "{view} Is {c} in front of you or behind you?",
    "{view} Would you see {c} ahead of you, or is it behind you?",
)
PT_QUADRANT_MC = templates(
    "l3.pt.quadrant.mc",
    "{view} Where is {c} relative to you?",
    "{view} In which direction is {c} from you?",
)
PT_SIDE_TF = templates("l3.pt.side.tf", "{view} Then {c} is on your {side}.", "{view} {C} is to your {side}.")
PT_DEPTH_TF = templates("l3.pt.depth.tf", "{view} Then {c} is {depth_phrase} you.")
PT_OFFSET_FF = templates(
    "l3.pt.offset.ff",
    "{view} {C} is {where}. How far {where} is it{unit}?",
    "{view} How far {where} is {c}{unit}?",
)
PT_OFFSET_TF = templates("l3.pt.offset.tf", "{view} {C} is about {value} {where}.")
OFFSET_WHERE = {
    "left": "to your left",
    "right": "to your right",
    "front": "in front of you",
    "behind": "behind you",
}

QUADRANTS = (
    "in front of you and to the left",
    "in front of you and to the right",
    "behind you and to the left",
    "behind you and to the right",
)
DEPTH_PHRASE = {"front": "in front of", "behind": "behind"}
OPPOSITE_CLASS = {"left": "right", "right": "left", "front": "behind", "behind": "front"}

# Counting relations: (gravity axis, sign of (candidate - anchor) that satisfies it, text, subtask name).
COUNT_RELATIONS = (
    ("right", -1, "to the left of", "left"),
    ("right", +1, "to the right of", "right"),
    ("forward", -1, "in front of", "front"),
    ("forward", +1, "behind", "behind"),
    ("up", +1, "above", "above"),
    ("up", -1, "below", "below"),
)
COUNT_FF = templates(
    "l3.count.ff",
    "How many {plural} are {rel} {anchor}?",
    "Count the {plural} {rel} {anchor}.",
    "What is the number of {plural} located {rel} {anchor}?",
)
COUNT_MC = templates("l3.count.mc", "How many {plural} are {rel} {anchor}?")
COUNT_TF = templates(
    "l3.count.tf",
    "There {be} exactly {n} {noun} {rel} {anchor}.",
    "Exactly {n} {noun} {be} {rel} {anchor}.",
)

FIT_FF = templates(
    "l3.ps.fit.ff",
    "What is the widest object that could be placed in the gap between {a} and {b}{unit}?",
    "How wide can an item be and still fit between {a} and {b}{unit}?",
)
FIT_YES = templates(
    "l3.ps.fit.yes",
    "Would {thing} fit in the gap between {a} and {b}?",
    "Is there enough room between {a} and {b} to place {thing}?",
)
FIT_NO = templates(
    "l3.ps.fit.no",
    "Is the gap between {a} and {b} too narrow for {thing}?",
    "Would {thing} be too wide to fit between {a} and {b}?",
)
WALK_FF = templates(
    "l3.ps.walk.ff",
    "Can a person (needing about {need}) walk through the gap between {a} and {b}? Explain with the gap width.",
    "Is the space between {a} and {b} wide enough to walk through, given a person needs about {need}?",
)
WALK_YES = templates("l3.ps.walk.yes", "Could a person walk through the gap between {a} and {b}?")
WALK_NO = templates(
    "l3.ps.walk.no", "Is the gap between {a} and {b} too narrow for a person to walk through?"
)
REACH_FF = templates(
    "l3.ps.reach.ff",
    "Is {x} within arm's reach (about {reach}) of {y}? How far apart are they?",
    "Someone at {y} wants to grab {x}. Can they reach it with an arm's reach of about {reach}?",
)
REACH_YES = templates("l3.ps.reach.yes", "Is {x} within arm's reach of {y}?")
REACH_NO = templates("l3.ps.reach.no", "Is {x} too far from {y} to reach without walking?")
REACH_MC = templates(
    "l3.ps.reach.mc",
    "Which of these objects is within arm's reach (about {reach}) of {y}?",
    "Standing at {y}, which object could you reach (arm's reach about {reach})?",
)
MOVE_FF = templates(
    "l3.ps.move.ff",
    "You want to put an item {w} wide somewhere between {a} and {c}. Which object would you have to move?",
    "To make room for something {w} wide between {a} and {c}, which object should be moved?",
)
MOVE_MC = templates(
    "l3.ps.move.mc",
    "To fit an item {w} wide between {a} and {c}, which object should be moved?",
)


def plural(noun: str) -> str:
    """English plural of a category name's last word ("coffee table" -> "coffee tables", "box" -> "boxes")."""
    head, _, last = noun.strip().rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith("f") and not last.endswith("ff"):
        last = last[:-1] + "ves"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def annotations_exhaustive(scene: Scene) -> bool:
    """True when every instance of every labelled category is annotated, so counts are trustworthy (a detector
    that misses one cup of three would make "how many cups" wrong)."""
    return scene.has_ground_truth_3d or scene.metadata.get(EXHAUSTIVE_KEY) is True


def count_statement(template: Template, fill: dict[str, str], category: str, n: int) -> str:
    """'There are exactly 2 cups ...' / 'There is exactly 1 cup ...' (number agreement)."""
    noun = category if n == 1 else plural(category)
    return capitalize(template.render(**fill, n=str(n), noun=noun, be="is" if n == 1 else "are"))


# -------------------------------------------------------------------------------------------------- generator


class _L3:
    """One scene's L3 generation state: footprints, references and the per-task caps."""

    def __init__(self, ctx: QAContext) -> None:
        assert ctx.frame is not None
        self.ctx = ctx
        # every known object occupies space (a labelled car out of view still blocks a gap); only askable ones
        # are asked about
        self.known_prints = {}
        for o in ctx.known or ctx.objects:
            geom = ctx.geom(o)
            corners = geom.corners if geom.corners is not None else box_corners_grav(o.box3d, ctx.frame)
            self.known_prints[o.instance_id] = Footprint(o, geom.center_grav, corners)
        askable = {o.instance_id for o in ctx.objects}
        self.prints = {i: fp for i, fp in self.known_prints.items() if i in askable}
        self._used: dict[str, set[tuple[int, int]]] = {}  # pairs already asked about, per problem subtask
        # Deterministic geometry, memoised: the perspective sampler revisits the same (observer, facing, target)
        # combinations many times in MAX_ATTEMPTS draws.
        self._views: dict[tuple[int, int], Viewpoint | None] = {}
        self._relations: dict[tuple[int, int, int], dict[str, float | str | None]] = {}
        self._own: dict[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]] = {}
        self._subtasks: dict[int, list[str]] = {}  # id(relation) -> its askable subtasks (relations live in _relations)

    def ref(self, *objs: SceneObject) -> tuple[list[str], list[DrawBox]]:
        texts, boxes = [], []
        for obj in objs:
            text, drawn = refer(obj, self.ctx)
            texts.append(text)
            boxes += drawn
        return texts, boxes

    def choose(self, n: int) -> np.ndarray:
        return self.ctx.rng.permutation(n)

    # --------------------------------------------------------------------------------- perspective taking

    def viewpoints(self) -> Iterator[tuple[Viewpoint, Footprint]]:
        """(viewpoint, target object) candidates in random order, at most MAX_ATTEMPTS of them. Objects with a
        front are sometimes the observer facing their own front; otherwise the observer faces a second object."""
        prints = list(self.prints.values())
        rng = self.ctx.rng
        for _ in range(MAX_ATTEMPTS):
            observer = prints[int(rng.integers(len(prints)))]
            others = [fp for fp in prints if fp is not observer]
            if observer.obj.front_grav is not None and (len(others) < 2 or rng.random() < 0.4):
                facing, target = None, others[int(rng.integers(len(others)))]
            elif len(others) >= 2:
                i, j = choose_two(rng, len(others))  # == rng.choice(len(others), size=2, replace=False)
                facing, target = others[i], others[j]
            else:
                continue
            key = (observer.obj.instance_id, facing.obj.instance_id if facing is not None else 0)
            if key in self._views:
                view = self._views[key]
            else:
                view = self._views[key] = viewpoint(observer, facing)
            if view is not None:
                yield view, target

    def relation(self, view: Viewpoint, other: Footprint) -> dict[str, float | str | None]:
        """`perspective_relation`, memoised per (observer, facing, other); callers must not mutate the result."""
        view_key = (view.observer.obj.instance_id, view.target.obj.instance_id if view.target is not None else 0)
        key = (*view_key, other.obj.instance_id)
        rel = self._relations.get(key)
        if rel is None:
            own = self._own.get(view_key)
            if own is None:
                own = self._own[view_key] = observer_intervals(view)
            rel = self._relations[key] = perspective_relation(view, other, own)
        return rel

    def _view(self, view: Viewpoint) -> tuple[Template, dict[str, str], list[SceneObject]]:
        """The viewpoint sentence's template (drawn now), its fields and the objects it names."""
        (a,), _ = self.ref(view.observer.obj)
        if view.target is None:
            return pick(self.ctx.rng, VIEW_FRONT), {"a": a}, [view.observer.obj]
        (b,), _ = self.ref(view.target.obj)
        return pick(self.ctx.rng, VIEW_TOWARD), {"a": a, "b": b}, [view.observer.obj, view.target.obj]

    def perspective(self) -> list[QAPair]:
        ctx, cap = self.ctx, self.ctx.config.cap(Task.PERSPECTIVE_TAKING)
        out: list[QAPair] = []
        seen: set[tuple[int, int, int, str]] = set()
        asked: Counter[tuple[str, bool, str]] = Counter()  # (subtask, facing own front, answer class) -> questions
        for view, target in self.viewpoints():
            if len(out) >= cap:
                break
            rel = self.relation(view, target)
            subtasks = self._subtasks.get(id(rel))
            if subtasks is None:  # keyed by the memoised relation itself: one list per distinct relation
                subtasks = self._subtasks[id(rel)] = perspective_subtasks(rel)
            if not subtasks:
                continue
            subtask = subtasks[int(ctx.rng.integers(len(subtasks)))]
            answer_key = None
            if subtask in ("side", "depth"):
                # answer-balanced sampling: a class is asked again only once the opposite class has caught up
                # (seen from an object facing another, most things are "in front of me")
                answer_key = (subtask, view.target is None, str(rel[subtask]))
                opposite = (subtask, view.target is None, OPPOSITE_CLASS[str(rel[subtask])])
                if asked[answer_key] > asked[opposite]:
                    continue
            key = (
                view.observer.obj.instance_id,
                view.target.obj.instance_id if view.target else 0,
                target.obj.instance_id,
                subtask,
            )
            if key in seen:
                continue
            seen.add(key)
            pairs = self.perspective_question(view, target, rel, subtask)
            if len(out) + len(pairs) <= cap:  # a dropped question's draws are still made, its pairs never built
                out += [build() for build in pairs]
                if answer_key is not None:
                    asked[answer_key] += 1
        return out

    def perspective_question(
        self, view: Viewpoint, target: Footprint, rel: dict, subtask: str
    ) -> list[Callable[[], QAPair]]:
        """One perspective question: its random draws happen now, its pairs are built by calling the returned
        builders (`emit_deferred`)."""
        ctx, rng = self.ctx, self.ctx.rng
        view_tpl, view_fill, view_objs = self._view(view)
        (c,), _ = self.ref(target.obj)
        objs = [*view_objs, target.obj]
        refs, boxes = self.ref(*objs)
        mode = "front" if view.target is None else "toward"
        base = QABase(Task.PERSPECTIVE_TAKING, f"{subtask}_{mode}", objs, refs, boxes, extra=view_tpl.id)
        # Texts are rendered only for questions that are kept (most drawn questions are dropped at the cap):
        # `text(...)` gives a callable for emit_deferred; every value a random draw depends on is computed now.
        fill: dict[str, str] = {"c": c}
        rendered: dict[str, str] = {}

        def full_fill() -> dict[str, str]:
            if not rendered:
                rendered.update(fill, view=view_tpl.render(**view_fill), C=capitalize(c))
            return rendered

        def text(tpl: Template, **extra: str) -> Callable[[], str]:
            return lambda: tpl.render(**full_fill(), **extra)

        side, depth = rel["side"], rel["depth"]
        if subtask == "side":
            ff_t, tf_t = pick(rng, PT_SIDE_FF), pick(rng, PT_SIDE_TF)
            other = "left" if side == "right" else "right"
            free = FreeForm(text(ff_t), capitalize(side), ff_t.id)
            choice = None
            if depth is not None:
                mc_t = pick(rng, PT_QUADRANT_MC)
                correct = f"{'in front of' if depth == 'front' else 'behind'} you and to the {side}"
                choice = Choice(text(mc_t), correct, [q for q in QUADRANTS if q != correct], mc_t.id)
            judgement = Judgement(
                text(tf_t, side=side),
                text(tf_t, side=other),
                tf_t.id,
                balance_key="l3.pt.side",
            )
            return emit_deferred(ctx, base, free, choice, judgement)
        if subtask == "depth":
            ff_t, tf_t = pick(rng, PT_DEPTH_FF), pick(rng, PT_DEPTH_TF)
            answer = "In front of me" if depth == "front" else "Behind me"
            other = "behind" if depth == "front" else "front"
            free = FreeForm(text(ff_t), answer, ff_t.id)
            judgement = Judgement(
                text(tf_t, depth_phrase=DEPTH_PHRASE[depth]),
                text(tf_t, depth_phrase=DEPTH_PHRASE[other]),
                tf_t.id,
                balance_key="l3.pt.depth",
            )
            return emit_deferred(ctx, base, free, None, judgement)
        # offset / ahead: how far to the side, or ahead/behind, the target is (center to center, along the
        # observer's right or forward axis)
        meters = abs(rel["lateral"] if subtask == "offset" else rel["ahead"])
        fill["where"] = OFFSET_WHERE[side if subtask == "offset" else depth]
        unit, unit_text = pick_unit(ctx)
        ff_t, tf_t = pick(rng, PT_OFFSET_FF), pick(rng, PT_OFFSET_TF)
        stem = text(ff_t, unit=unit_text)
        answer, value = format_length(meters, unit), length_value(meters, unit)
        free = FreeForm(stem, answer, ff_t.id, value=value, unit=unit)
        wrong = numeric_distractors(rng, meters, 4, min_rel=ctx.config.distractor_min_rel)
        choice = Choice(
            stem, answer, [format_length(w, unit) for w in wrong], ff_t.id, value=value, unit=unit
        )
        judgement = None
        if wrong:
            judgement = Judgement(
                text(tf_t, value=answer),
                text(tf_t, value=format_length(wrong[0], unit)),
                tf_t.id,
                balance_key=f"l3.pt.{subtask}",
            )
        return emit_deferred(ctx, base, free, choice, judgement)

    # ------------------------------------------------------------------------------------- spatial counting

    def counting_candidates(self) -> list[tuple[SceneObject, int, str]]:
        """(anchor, relation index, category) triples, categories with several instances first. Categories and
        their counts are over every known object (`QAContext.known`), askable or not: the labels' count."""
        unplaced = unplaced_categories(self.ctx.scene)  # a category with an instance not in 3D: no count
        by_category: dict[str, list[SceneObject]] = {}
        for obj in self.ctx.known:
            if obj.category in unplaced:
                continue
            by_category.setdefault(obj.category, []).append(obj)
        triples = [
            (anchor, r, category)
            for anchor in self.ctx.objects
            for r in range(len(COUNT_RELATIONS))
            for category in by_category
            if category != anchor.category
        ]
        order = self.choose(len(triples))
        triples = [triples[i] for i in order]
        triples.sort(key=lambda t: -min(len(by_category[t[2]]), 3))  # stable: random within each group
        return triples

    def count_relation(
        self, anchor: SceneObject, relation: int, category: str
    ) -> tuple[int, list[SceneObject]]:
        """(count, members of `category`) or (-1, members) when any member overlaps the anchor along the axis."""
        axis, sign, _, _ = COUNT_RELATIONS[relation]
        extents = self.ctx.geom(anchor).extents[axis]
        members = [
            o for o in self.ctx.known if o.category == category and o.instance_id != anchor.instance_id
        ]
        count = 0
        for obj in members:
            lo, hi = self.ctx.geom(obj).extents[axis]
            if _overlap((lo, hi), extents):
                return -1, members
            count += int((lo >= extents[1]) if sign > 0 else (hi <= extents[0]))
        return count, members

    def counting(self) -> list[QAPair]:
        ctx, rng, cap = self.ctx, self.ctx.rng, self.ctx.config.cap(Task.SPATIAL_COUNTING)
        out: list[QAPair] = []
        used: set[tuple[int, str]] = set()
        for anchor, relation, category in self.counting_candidates()[:MAX_ATTEMPTS]:
            if len(out) >= cap:
                break
            if (anchor.instance_id, category) in used:
                continue
            count, members = self.count_relation(anchor, relation, category)
            if count < 0:
                continue
            axis, _, rel, relation_name = COUNT_RELATIONS[relation]
            # "how many tables are left of the leftmost table?" answers itself: the anchor is never named by the
            # axis the relation runs along
            neutral = refer_neutral(anchor, ctx, AXIS_QUANTITIES[axis])
            if neutral is None:
                continue
            used.add((anchor.instance_id, category))
            anchor_text, boxes = neutral
            base = QABase(
                Task.SPATIAL_COUNTING,
                relation_name,
                [anchor, *members],
                [anchor_text],
                boxes,
                extra=f"{relation}|{category}",
            )
            fill = {"plural": plural(category), "rel": rel, "anchor": anchor_text}
            ff_t, mc_t, tf_t = pick(rng, COUNT_FF), pick(rng, COUNT_MC), pick(rng, COUNT_TF)
            free = FreeForm(capitalize(ff_t.render(**fill)), str(count), ff_t.id, value=float(count))
            wrong = [n for n in range(max(0, count - 3), count + 4) if n != count and n <= len(members) + 2]
            choice = Choice(
                capitalize(mc_t.render(**fill)),
                str(count),
                [str(n) for n in wrong],
                mc_t.id,
                value=float(count),
            )
            false_n = wrong[int(rng.integers(len(wrong)))]

            judgement = Judgement(
                count_statement(tf_t, fill, category, count),
                count_statement(tf_t, fill, category, false_n),
                tf_t.id,
                balance_key="l3.count",
            )
            pairs = emit_deferred(ctx, base, free, choice, judgement)
            if len(out) + len(pairs) <= cap:  # a dropped question's draws are still made, its pairs never built
                out += [build() for build in pairs]
        return out

    # ------------------------------------------------------------------------------------ problem solving

    def row_pairs(self) -> list[tuple[Footprint, Footprint, float]]:
        """Side-by-side pairs (left, right, gap): disjoint along `right`, overlapping along `forward` and `up`,
        and nothing else standing in the gap between them."""
        prints = list(self.prints.values())
        out = []
        for a in prints:
            for b in prints:
                if a is b:
                    continue
                gap = self.gap(a, b)
                if gap is not None and not self.blockers(a, b):
                    out.append((a, b, gap))
        return out

    def _ext(self, fp: Footprint, axis: str) -> tuple[float, float]:
        return self.ctx.geom(fp.obj).extents[axis]

    def gap(self, left: Footprint, right: Footprint) -> float | None:
        """Horizontal free width between `left` and `right` when they stand side by side, else None."""
        la, ra = self._ext(left, "right"), self._ext(right, "right")
        if la[1] >= ra[0]:
            return None
        if not (
            _overlap(self._ext(left, "forward"), self._ext(right, "forward"))
            and _overlap(self._ext(left, "up"), self._ext(right, "up"))
        ):
            return None
        return ra[0] - la[1]

    def blockers(self, left: Footprint, right: Footprint) -> list[Footprint]:
        """Objects occupying the gap: overlapping it along `right` and the pair's band along `forward`/`up`."""
        lo, hi = self._ext(left, "right")[1], self._ext(right, "right")[0]
        fwd = (
            min(self._ext(left, "forward")[0], self._ext(right, "forward")[0]),
            max(self._ext(left, "forward")[1], self._ext(right, "forward")[1]),
        )
        up = (
            min(self._ext(left, "up")[0], self._ext(right, "up")[0]),
            max(self._ext(left, "up")[1], self._ext(right, "up")[1]),
        )
        return [
            fp
            for fp in self.known_prints.values()
            if fp is not left
            and fp is not right
            and _overlap(self._ext(fp, "right"), (lo, hi))
            and _overlap(self._ext(fp, "forward"), fwd)
            and _overlap(self._ext(fp, "up"), up)
        ]

    def problem_solving(self, limit: int) -> list[QAPair]:
        """Rule-based multi-step questions, subtasks interleaved, at most `limit` pairs."""
        makers = [self.fit_question, self.walk_question, self.reach_question, self.move_question]
        out: list[QAPair] = []
        rows = self.row_pairs()
        exhausted: set[int] = set()
        attempt = 0
        while len(out) < limit and len(exhausted) < len(makers) and attempt < MAX_ATTEMPTS:
            attempt += 1
            k = int(self.ctx.rng.integers(len(makers)))
            if k in exhausted:
                continue
            pairs = makers[k](rows)
            if pairs is None:
                exhausted.add(k)
                continue
            if len(out) + len(pairs) <= limit:
                out += pairs
            else:
                exhausted.add(k)
        return out

    def _yes_no(self, truth: bool, yes_t, no_t, key: str, **fill: str) -> Judgement:
        """A yes/no judgement from two phrasings: `yes_t` asks whether the predicate holds, `no_t` its negation."""
        pos, neg = yes_t.render(**fill), no_t.render(**fill)
        true_q, false_q = (pos, neg) if truth else (neg, pos)
        return Judgement(
            capitalize(true_q), capitalize(false_q), f"{yes_t.id}|{no_t.id}", yes_no=True, balance_key=key
        )

    def _fresh(self, rows: list, tag: str) -> tuple[Footprint, Footprint, float] | None:
        seen = self._used.setdefault(tag, set())
        for i in self.choose(len(rows)):
            left, right, gap = rows[i]
            if (left.obj.instance_id, right.obj.instance_id) not in seen:
                seen.add((left.obj.instance_id, right.obj.instance_id))
                return left, right, gap
        return None

    def fit_question(self, rows: list) -> list[QAPair] | None:
        ctx, rng = self.ctx, self.ctx.rng
        picked = self._fresh(rows, "fit")
        if picked is None:
            return None
        left, right, gap = picked
        refs, boxes = self.ref(left.obj, right.obj)
        # An object of the scene (its narrowest horizontal side) or an abstract width, clearly above/below the gap.
        fits = ctx.flip("l3.ps.fit")
        thing_objs: list[SceneObject] = []
        candidates = [
            fp
            for fp in self.prints.values()
            if fp is not left
            and fp is not right
            and abs(self.footprint_width(fp) - gap) >= DECISION_MARGIN * gap
            and (self.footprint_width(fp) < gap) == fits
        ]
        if candidates:
            thing_fp = candidates[int(rng.integers(len(candidates)))]
            width = self.footprint_width(thing_fp)
            (thing,), thing_boxes = self.ref(thing_fp.obj)
            thing_objs, boxes = [thing_fp.obj], boxes + thing_boxes
            refs = [*refs, thing]
        else:
            width = gap * (
                rng.uniform(0.5, 1.0 - DECISION_MARGIN) if fits else rng.uniform(1.0 + DECISION_MARGIN, 1.8)
            )
            thing = f"an item {format_length(width)} wide"
        unit, unit_text = pick_unit(ctx)
        a, b = refs[0], refs[1]
        relation = "narrower" if fits else "wider"
        reasoning = (
            f"The right side of {a} is at x = {self._ext(left, 'right')[1]:.2f} m and the left side of {b} "
            f"at x = {self._ext(right, 'right')[0]:.2f} m, so the gap is {gap:.2f} m wide. "
            f"{capitalize(thing)} needs {width:.2f} m, which is {relation} than the gap, so it "
            f"{'fits' if fits else 'does not fit'}."
        )
        base = QABase(
            Task.PROBLEM_SOLVING,
            "fit_between",
            [left.obj, right.obj, *thing_objs],
            refs,
            boxes,
            reasoning=reasoning,
            generator="rule",
        )
        ff_t = pick(rng, FIT_FF)
        free = FreeForm(
            capitalize(ff_t.render(a=a, b=b, unit=unit_text)),
            format_length(gap, unit),
            ff_t.id,
            value=length_value(gap, unit),
            unit=unit,
        )
        wrong = numeric_distractors(rng, gap, 4, min_rel=ctx.config.distractor_min_rel)
        choice = Choice(
            capitalize(ff_t.render(a=a, b=b, unit=unit_text)),
            format_length(gap, unit),
            [format_length(w, unit) for w in wrong],
            ff_t.id,
            value=length_value(gap, unit),
            unit=unit,
        )
        judgement = self._yes_no(
            fits, pick(rng, FIT_YES), pick(rng, FIT_NO), "l3.ps.fit.tf", a=a, b=b, thing=thing
        )
        return emit(ctx, base, free, choice, judgement)

    @staticmethod
    def footprint_width(fp: Footprint) -> float:
        """Narrowest horizontal side: the width an object needs when turned to fit a gap."""
        return min(fp.obj.box3d.width, fp.obj.box3d.length)

    def walk_question(self, rows: list) -> list[QAPair] | None:
        ctx, rng = self.ctx, self.ctx.rng
        floor = self.floor_standing()
        candidates = [
            r
            for r in rows
            if abs(r[2] - WALKWAY_M) >= DECISION_MARGIN * WALKWAY_M
            and r[0].obj.instance_id in floor
            and r[1].obj.instance_id in floor
        ]
        picked = self._fresh(candidates, "walk")
        if picked is None:
            return None
        left, right, gap = picked
        (a, b), boxes = self.ref(left.obj, right.obj)
        passable = gap > WALKWAY_M
        verdict = "wider" if passable else "narrower"
        reasoning = (
            f"The free gap between {a} and {b} is {gap:.2f} m. A person needs about {WALKWAY_M:.2f} m; "
            f"the gap is {verdict}, so {'a person can' if passable else 'a person cannot'} walk through."
        )
        base = QABase(
            Task.PROBLEM_SOLVING,
            "walkway",
            [left.obj, right.obj],
            [a, b],
            boxes,
            reasoning=reasoning,
            generator="rule",
        )
        ff_t = pick(rng, WALK_FF)
        answer = (
            f"{'Yes' if passable else 'No'}. The gap is {format_length(gap)}, {verdict} than the "
            f"{format_length(WALKWAY_M)} a person needs."
        )
        free = FreeForm(
            capitalize(ff_t.render(a=a, b=b, need=format_length(WALKWAY_M))),
            answer,
            ff_t.id,
            value=length_value(gap),
            unit="m",
        )
        judgement = self._yes_no(passable, WALK_YES[0], WALK_NO[0], "l3.ps.walk.tf", a=a, b=b)
        return emit(ctx, base, free, None, judgement)

    def floor_standing(self) -> set[int]:
        """Ids of objects that plausibly stand on the floor (bottom near the lowest bottom, tall enough): only
        these bound a walkway. Without a floor estimate the lowest object bottom stands in for the floor."""
        bottoms = {i: self._ext(fp, "up")[0] for i, fp in self.prints.items()}
        floor = min(bottoms.values())
        return {
            i
            for i, fp in self.prints.items()
            if bottoms[i] - floor <= FLOOR_TOLERANCE_M and fp.obj.box3d.height >= MIN_WALL_HEIGHT_M
        }

    def reach_question(self, rows: list) -> list[QAPair] | None:
        ctx, rng = self.ctx, self.ctx.rng
        prints = [
            fp
            for fp in self.prints.values()
            if max(fp.obj.box3d.width, fp.obj.box3d.length) <= MAX_REACH_OBJECT_M
        ]
        seen = self._used.setdefault("reach", set())
        for i in self.choose(len(prints)):
            y = prints[i]
            dist = {
                fp.obj.instance_id: float(np.linalg.norm(fp.center - y.center))
                for fp in prints
                if fp is not y
            }
            near = [
                fp
                for fp in prints
                if fp is not y and dist[fp.obj.instance_id] <= ARM_REACH_M * (1 - DECISION_MARGIN)
            ]
            far = [
                fp
                for fp in prints
                if fp is not y and dist[fp.obj.instance_id] >= ARM_REACH_M * (1 + DECISION_MARGIN)
            ]
            options = near + far
            if not options:
                continue
            x = options[int(rng.integers(len(options)))]
            if (y.obj.instance_id, x.obj.instance_id) in seen:
                continue
            seen.add((y.obj.instance_id, x.obj.instance_id))
            d = dist[x.obj.instance_id]
            reachable = d < ARM_REACH_M
            (xt, yt), boxes = self.ref(x.obj, y.obj)
            reasoning = (
                f"The centers of {xt} and {yt} are {d:.2f} m apart; arm's reach is about "
                f"{ARM_REACH_M:.2f} m, so {xt} is {'within' if reachable else 'out of'} reach."
            )
            objs, refs = [x.obj, y.obj], [xt, yt]
            choice = None
            if reachable and far:
                mc_t = pick(rng, REACH_MC)
                far_refs = [self.ref(fp.obj)[0][0] for fp in far]
                choice = Choice(
                    capitalize(mc_t.render(y=yt, reach=format_length(ARM_REACH_M))), xt, far_refs, mc_t.id
                )
                far_objs = [fp.obj for fp in far]
                objs += far_objs
                far_text, far_boxes = self.ref(*far_objs)
                refs += far_text
                boxes += far_boxes
            base = QABase(
                Task.PROBLEM_SOLVING, "reach", objs, refs, boxes, reasoning=reasoning, generator="rule"
            )
            ff_t = pick(rng, REACH_FF)
            answer = (
                f"{'Yes' if reachable else 'No'}. They are {format_length(d)} apart, "
                f"{'within' if reachable else 'beyond'} an arm's reach of about {format_length(ARM_REACH_M)}."
            )
            free = FreeForm(
                capitalize(ff_t.render(x=xt, y=yt, reach=format_length(ARM_REACH_M))),
                answer,
                ff_t.id,
                value=length_value(d),
                unit="m",
            )
            judgement = self._yes_no(reachable, REACH_YES[0], REACH_NO[0], "l3.ps.reach.tf", x=xt, y=yt)
            return emit(ctx, base, free, choice, judgement)
        return None

    def move_question(self, rows: list) -> list[QAPair] | None:
        """Three objects in a row A | B | C with B the only object between A and C: an item wider than both
        current gaps but narrower than the span A..C fits only if B is moved."""
        ctx, rng = self.ctx, self.ctx.rng
        prints = list(self.prints.values())
        seen = self._used.setdefault("move", set())
        for i in self.choose(len(prints) * len(prints)):
            a, c = prints[i // len(prints)], prints[i % len(prints)]
            if a is c or (a.obj.instance_id, c.obj.instance_id) in seen or self.gap(a, c) is None:
                continue
            blockers = self.blockers(a, c)
            if len(blockers) != 1:
                continue
            b = blockers[0]
            g1, g2 = self.gap(a, b), self.gap(b, c)
            if g1 is None or g2 is None:  # B is not side by side with both (e.g. in front of the row)
                continue
            span = self._ext(c, "right")[0] - self._ext(a, "right")[1]
            lo, hi = max(g1, g2) * (1 + DECISION_MARGIN), span * (1 - DECISION_MARGIN)
            if lo >= hi:
                continue
            seen.add((a.obj.instance_id, c.obj.instance_id))
            width = float(rng.uniform(lo, hi))
            (at, bt, ct), boxes = self.ref(a.obj, b.obj, c.obj)
            reasoning = (
                f"Between {at} and {ct} stands only {bt}. The gaps on either side of it are {g1:.2f} m and "
                f"{g2:.2f} m, both narrower than {width:.2f} m, but without it the free span is "
                f"{span:.2f} m, which is wide enough. So {bt} has to be moved."
            )
            base = QABase(
                Task.PROBLEM_SOLVING,
                "make_room",
                [b.obj, a.obj, c.obj],
                [bt, at, ct],
                boxes,
                reasoning=reasoning,
                generator="rule",
            )
            ff_t, mc_t = pick(rng, MOVE_FF), pick(rng, MOVE_MC)
            fill = {"a": at, "c": ct, "w": format_length(width)}
            free = FreeForm(ff_t.render(**fill), bt, ff_t.id)
            others = [self.ref(fp.obj)[0][0] for fp in prints if fp is not b and fp is not a and fp is not c]
            choice = Choice(mc_t.render(**fill), bt, [at, ct, *others], mc_t.id)
            return emit(ctx, base, free, choice, None)
        return None


def generate_l3(
    ctx: QAContext, llm: LLMClient | None = None, image: np.ndarray | None = None
) -> list[QAPair]:
    """All Level-3 pairs for one scene (per-task caps from `ctx.config`); [] without a gravity frame.

    With `llm`, spatial problem solving uses the teacher/student protocol (`assets.qa.problem_solving`, `image` is
    shown to the teacher when given) and the rule generator fills whatever it did not produce; LLM failures and an
    exhausted budget become entries in `ctx.skips`, never exceptions.
    """
    if ctx.frame is None:
        ctx.skips.append("L3: no gravity frame")
        return []
    if len(ctx.objects) < 2:
        return []
    gen = _L3(ctx)
    pairs = gen.perspective()
    if annotations_exhaustive(ctx.scene):
        pairs += gen.counting()
    else:
        ctx.skips.append("L3 counting: annotations not known to be exhaustive (no ground truth)")
    limit = ctx.config.cap(Task.PROBLEM_SOLVING)
    solved: list[QAPair] = []
    if llm is not None and limit > 0:
        from assets.qa.problem_solving import (
            generate_llm_problems,
        )  # local: problem_solving imports this module

        result = generate_llm_problems(ctx, llm, max_problems=limit, image=image)
        solved = result.pairs[:limit]
        ctx.skips.extend(f"L3 problem solving (llm): {reason}" for reason in result.rejected)
    if len(solved) < limit:
        solved += gen.problem_solving(limit - len(solved))
    return pairs + solved
