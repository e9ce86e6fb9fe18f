"""Level 3 perspective taking: an imagined observer at one object, facing another object or its own front, and
where a third object is for them (side, depth, offsets along their axes)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from assets.qa.context import QAContext
from assets.qa.formats import (
    Choice,
    FreeForm,
    Judgement,
    QABase,
    Template,
    capitalize,
    emit_deferred,
    format_length,
    length_value,
    numeric_distractors,
    pick,
    pick_unit,
    templates,
)
from assets.qa.l3.common import (
    MAX_ATTEMPTS,
    MIN_FACING_DISTANCE_M,
    MIN_OFFSET_M,
    Footprint,
    L3Task,
    choose_two,
    horizontal,
    overlap,
)
from assets.records import QAPair, SceneObject, Task


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


def perspective_relation(
    view: Viewpoint,
    other: Footprint,
    own: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> dict[str, float | str | None]:
    """Where `other` is for the observer: side ('left'/'right'/None if ambiguous), depth ('front'/'behind'/None),
    and the signed center offsets along the observer's right and forward axes (meters). `own` is
    `observer_intervals(view)` when the caller has it already."""
    own_right, own_forward = own if own is not None else observer_intervals(view)
    offset = horizontal(other.center - view.origin)
    lateral, ahead = float(offset @ view.right), float(offset @ view.forward)
    side = depth = None
    if not overlap(other.interval(view.origin, view.right), own_right):
        side = "right" if lateral > 0 else "left"
    if not overlap(other.interval(view.origin, view.forward), own_forward):
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


class PerspectiveTaking(L3Task):
    """Perspective-taking questions of one scene, answer-balanced per subtask and capped by the config."""

    def __init__(self, ctx: QAContext, prints: dict[int, Footprint]) -> None:
        super().__init__(ctx, prints)
        # Deterministic geometry, memoised: the perspective sampler revisits the same (observer, facing, target)
        # combinations many times in MAX_ATTEMPTS draws.
        self._views: dict[tuple[int, int], Viewpoint | None] = {}
        self._relations: dict[tuple[int, int, int], dict[str, float | str | None]] = {}
        self._own: dict[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]] = {}
        self._subtasks: dict[
            int, list[str]
        ] = {}  # id(relation) -> its askable subtasks (relations live in _relations)

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
        view_key = (
            view.observer.obj.instance_id,
            view.target.obj.instance_id if view.target is not None else 0,
        )
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
        asked: Counter[tuple[str, bool, str]] = (
            Counter()
        )  # (subtask, facing own front, answer class) -> questions
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
            if (
                len(out) + len(pairs) <= cap
            ):  # a dropped question's draws are still made, its pairs never built
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
