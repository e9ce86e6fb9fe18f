"""Level 3 spatial counting: "how many cups are to the left of the laptop?", asked only when no object of the
category overlaps the anchor along the axis (otherwise the count is ambiguous)."""

from __future__ import annotations

from assets.qa.context import refer_neutral
from assets.qa.formats import (
    Choice,
    FreeForm,
    Judgement,
    QABase,
    Template,
    capitalize,
    emit_deferred,
    pick,
    templates,
)
from assets.qa.l3.common import MAX_ATTEMPTS, L3Task, overlap, plural
from assets.qa.quality import AXIS_QUANTITIES
from assets.records import QAPair, SceneObject, Task
from assets.references import unplaced_categories

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


def count_statement(template: Template, fill: dict[str, str], category: str, n: int) -> str:
    """'There are exactly 2 cups ...' / 'There is exactly 1 cup ...' (number agreement)."""
    noun = category if n == 1 else plural(category)
    return capitalize(template.render(**fill, n=str(n), noun=noun, be="is" if n == 1 else "are"))


class SpatialCounting(L3Task):
    """Counting questions of one scene (camera-relative axes, as L2), capped by the config."""

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
            if overlap((lo, hi), extents):
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
            if (
                len(out) + len(pairs) <= cap
            ):  # a dropped question's draws are still made, its pairs never built
                out += [build() for build in pairs]
        return out
