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

One module per task (`perspective`, `counting`, `problems`), sharing `common` (thresholds, footprints, `L3Task`);
`generate_l3` runs them in a fixed order on one random generator, so a seed gives the same pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from assets.qa.context import QAContext
from assets.records import QAPair, Task

if TYPE_CHECKING:
    from assets.llm import LLMClient

from assets.qa.l3.common import (
    ARM_REACH_M,
    DECISION_MARGIN,
    EXHAUSTIVE_KEY,
    MAX_ATTEMPTS,
    WALKWAY_M,
    Footprint,
    annotations_exhaustive,
    footprints,
    plural,
)
from assets.qa.l3.counting import SpatialCounting
from assets.qa.l3.perspective import PerspectiveTaking, Viewpoint, perspective_relation, viewpoint
from assets.qa.l3.problems import PROBLEM_KINDS, ProblemSolving

__all__ = [
    "ARM_REACH_M",
    "DECISION_MARGIN",
    "EXHAUSTIVE_KEY",
    "MAX_ATTEMPTS",
    "WALKWAY_M",
    "Footprint",
    "PerspectiveTaking",
    "PROBLEM_KINDS",
    "ProblemSolving",
    "SpatialCounting",
    "Viewpoint",
    "annotations_exhaustive",
    "footprints",
    "generate_l3",
    "perspective_relation",
    "plural",
    "viewpoint",
]


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
    prints = footprints(ctx)
    pairs = PerspectiveTaking(ctx, prints).perspective()
    if annotations_exhaustive(ctx.scene):
        pairs += SpatialCounting(ctx, prints).counting()
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
        solved += ProblemSolving(ctx, prints).problem_solving(limit - len(solved))
    return pairs + solved
