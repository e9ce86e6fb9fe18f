"""What every Level-3 task shares: thresholds, horizontal footprints and their overlap rule, and `L3Task`, one
task's generator over one scene (its context, the objects' footprints, references).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assets.geometry import box_corners_grav
from assets.qa.context import QAContext, refer
from assets.records import DrawBox, Scene, SceneObject

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
MAX_ATTEMPTS = 400  # candidate questions examined per task and scene (crowded scenes are n^3 in candidates)
EXHAUSTIVE_KEY = "exhaustive_annotations"  # Scene.metadata flag: all instances of each category are labelled


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


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


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


def footprints(ctx: QAContext) -> dict[int, Footprint]:
    """Every known object's horizontal footprint (gravity frame), by instance id, askable or not (a labelled car
    out of view still blocks a gap); the tasks of one scene share them."""
    assert ctx.frame is not None
    prints = {}
    for o in ctx.known or ctx.objects:
        geom = ctx.geom(o)
        corners = geom.corners if geom.corners is not None else box_corners_grav(o.box3d, ctx.frame)
        prints[o.instance_id] = Footprint(o, geom.center_grav, corners)
    return prints


class L3Task:
    """One L3 task's generation state for one scene: the context (its random generator is shared, so the tasks
    must run in the order `generate_l3` runs them) and the objects' footprints."""

    def __init__(self, ctx: QAContext, known_prints: dict[int, Footprint]) -> None:
        self.ctx = ctx
        # every known object occupies space (`known_prints`); only askable ones are asked about (`prints`)
        self.known_prints = known_prints
        askable = {o.instance_id for o in ctx.objects}
        self.prints = {i: fp for i, fp in known_prints.items() if i in askable}

    def ref(self, *objs: SceneObject) -> tuple[list[str], list[DrawBox]]:
        texts, boxes = [], []
        for obj in objs:
            text, drawn = refer(obj, self.ctx)
            texts.append(text)
            boxes += drawn
        return texts, boxes

    def choose(self, n: int) -> np.ndarray:
        return self.ctx.rng.permutation(n)
