"""One scene in, its QA pairs out: runs the level generators (L0 eval samples, L1, L2, L3) under one config.

`QAConfig.include_l3 = False` leaves L3 out (template-level benchmarks, level ablations at generation time).

Bad input never crashes the engine and never produces a wrong answer: unusable objects are dropped by
`QAContext.build`, gravity-dependent questions are skipped without a gravity frame, pairs and groups without a
clear margin are skipped, and each skip is reported as a human-readable reason.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np

from assets.qa.config import DEFAULT_CAPS, LENGTH_UNITS, QAConfig
from assets.qa.context import QAContext
from assets.qa.l0 import generate_l0
from assets.qa.l1 import generate_l1
from assets.qa.l2 import generate_l2
from assets.qa.l3 import generate_l3
from assets.records import QAPair, Scene

__all__ = ["DEFAULT_CAPS", "LENGTH_UNITS", "QAConfig", "generate_scene_qa"]


@functools.cache
def _l3_params() -> frozenset[str]:
    """Keyword parameters `generate_l3` accepts (inspected once: `inspect.signature` costs ~20 us per scene)."""
    return frozenset(inspect.signature(generate_l3).parameters)


def _context(
    scene: Scene,
    ctx_or_point_map: QAContext | np.ndarray | tuple | None,
    config: QAConfig,
    rng: np.random.Generator | None,
) -> QAContext:
    if isinstance(ctx_or_point_map, QAContext):
        return ctx_or_point_map
    points = valid = None
    if isinstance(ctx_or_point_map, tuple):
        points, valid = ctx_or_point_map
    elif ctx_or_point_map is not None:
        points = np.asarray(ctx_or_point_map)
    return QAContext.build(scene, config, rng, points, valid)


def generate_scene_qa(
    scene: Scene,
    ctx_or_point_map: QAContext | np.ndarray | tuple | None = None,
    config: QAConfig | None = None,
    rng: np.random.Generator | None = None,
    *,
    llm: object | None = None,
    image: np.ndarray | None = None,
) -> tuple[list[QAPair], list[str]]:
    """QA pairs for one scene, and the reasons for everything that was not asked.

    `ctx_or_point_map` is a prepared `QAContext`, or an (H, W, 3) point map, or a (points, valid) tuple, or None
    (no L0 eval samples). `rng` defaults to a generator seeded from (config.seed, scene_id), so a scene's questions
    do not depend on which other scenes share its shard. `llm` (and the scene's RGB `image`, shown to the LLM
    teacher) go to the L3 problem-solving generator. Pairs are built unvalidated for speed
    (`assets.qa.formats.construct_pair`); callers that persist them (`assets.qa.shards`) validate them.
    """
    config = config or QAConfig()
    ctx = _context(scene, ctx_or_point_map, config, rng)
    pairs: list[QAPair] = []
    skips_before = len(ctx.skips)  # generators (L3) may append their own reasons to ctx.skips
    reasons: list[str] = []
    if config.l0_eval_samples > 0:
        if ctx.point_map is None:
            reasons.append("L0: no point map given")
        else:
            try:
                pairs.extend(generate_l0(ctx))
            except ValueError as err:
                reasons.append(f"L0: {err}")
    for name, level in (("L1", generate_l1), ("L2", generate_l2)):
        try:
            produced, why = level(ctx)
        except ValueError as err:  # a data problem the level could not route around: skip the level, say why
            reasons.append(f"{name}: {type(err).__name__}: {err}")
            continue
        pairs.extend(produced)
        reasons.extend(why)
    if config.include_l3:
        params = _l3_params()
        kwargs = {k: v for k, v in (("llm", llm), ("image", image)) if k in params and v is not None}
        try:
            pairs.extend(generate_l3(ctx, **kwargs))
        except ValueError as err:
            reasons.append(f"L3: {type(err).__name__}: {err}")
    seen: set[str] = set()
    unique = []
    for pair in pairs:  # the same question drawn twice (same objects, template, format) is kept once
        if pair.qa_id not in seen:
            seen.add(pair.qa_id)
            unique.append(pair)
    return unique, ctx.skips[:skips_before] + reasons + ctx.skips[skips_before:]
