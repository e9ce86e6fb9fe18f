"""Level 3 spatial problem solving by rule (without an LLM, or topping up what it did not produce): four kinds
of multi-step question composed from scene facts, each with its reasoning string: does a thing fit in the gap
between two side-by-side objects; can a person walk through it; is X within arm's reach of Y; which object must
move to make room."""

from __future__ import annotations

import numpy as np

from assets.qa.context import QAContext
from assets.qa.formats import (
    Choice,
    FreeForm,
    Judgement,
    QABase,
    capitalize,
    emit,
    format_length,
    length_value,
    numeric_distractors,
    pick,
    pick_unit,
    templates,
)
from assets.qa.l3.common import (
    ARM_REACH_M,
    DECISION_MARGIN,
    FLOOR_TOLERANCE_M,
    MAX_ATTEMPTS,
    MAX_REACH_OBJECT_M,
    MIN_WALL_HEIGHT_M,
    WALKWAY_M,
    Footprint,
    L3Task,
    overlap,
)
from assets.records import QAPair, SceneObject, Task

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


class RowProblem(L3Task):
    """What the problem kinds share: side-by-side rows of objects, the gaps and blockers between them, fresh
    pairs per kind, and yes/no judgements."""

    def __init__(self, ctx: QAContext, prints: dict[int, Footprint]) -> None:
        super().__init__(ctx, prints)
        self._used: dict[str, set[tuple[int, int]]] = {}  # pairs already asked about, per problem subtask

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
            overlap(self._ext(left, "forward"), self._ext(right, "forward"))
            and overlap(self._ext(left, "up"), self._ext(right, "up"))
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
            and overlap(self._ext(fp, "right"), (lo, hi))
            and overlap(self._ext(fp, "forward"), fwd)
            and overlap(self._ext(fp, "up"), up)
        ]

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

    def question(self, rows: list) -> list[QAPair] | None:
        """This kind's next question's pairs over `rows` (`row_pairs`), or None when it has none left."""
        raise NotImplementedError


class FitBetween(RowProblem):
    """Does a thing (an object of the scene, or an abstract width) fit in the gap between two objects?"""

    def question(self, rows: list) -> list[QAPair] | None:
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


class Walkway(RowProblem):
    """Can a person walk through the gap between two floor-standing objects?"""

    def question(self, rows: list) -> list[QAPair] | None:
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


class Reach(RowProblem):
    """Is X within arm's reach of Y (and, as multiple choice, which object is)?"""

    def question(self, rows: list) -> list[QAPair] | None:
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


class MakeRoom(RowProblem):
    """Which object must move so that an item fits between two others?"""

    def question(self, rows: list) -> list[QAPair] | None:
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


PROBLEM_KINDS: tuple[type[RowProblem], ...] = (FitBetween, Walkway, Reach, MakeRoom)


class ProblemSolving(RowProblem):
    """Rule-based problem-solving questions of one scene: the four kinds, interleaved by random draws."""

    def problem_solving(self, limit: int) -> list[QAPair]:
        """Rule-based multi-step questions, subtasks interleaved, at most `limit` pairs."""
        makers = [kind(self.ctx, self.prints).question for kind in PROBLEM_KINDS]  # the order the draws index
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
