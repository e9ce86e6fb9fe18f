"""Level 0: geometric perception from a point map alone (paper Sec. 3.1): pixel-wise 3D point query and pairwise
depth ordering.

These need no objects, so the training dataloader generates them ONLINE per image (`sample_l0`, plain dicts, a few
microseconds each; paper Table 7 lists them as "online generated"); `generate_l0` makes the same questions offline
as `QAPair`s for evaluation shards. Pixels are named by PaliGemma location tokens `<locYYYY><locXXXX>` (YYYY =
floor(v / H * 1024), XXXX = floor(u / W * 1024)) or, for other VLMs, as plain "(x, y)" pixel coordinates.

A token covers less than a pixel for images under 1024 px and several pixels above, so we sample a pixel, encode
its center, and then read the point at the pixel that contains the token's bin center: the pixel the model is
asked about is exactly the one a decoder of the token would pick, at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from assets.qa.context import FastRandom, QAContext, RandomSource
from assets.qa.formats import (
    TF_WRAPPERS,
    construct_pair,
    format_xyz,
    multiple_choice,
    pick,
    templates,
    xyz_distractors,
)
from assets.records import TASK_LEVEL, QAFormat, QAPair, Task

LOC_BINS = 1024

POINT_FF = templates(
    "l0.point.ff",
    "What are the 3D coordinates of the point at {p} in the camera coordinate system?",
    "Give the camera-frame xyz position, in meters, of the pixel {p}.",
    "Where is the point {p} located in 3D relative to the camera? Answer as x y z.",
    "Estimate the metric 3D position (x right, y down, z forward) of the point at {p}.",
)
POINT_MC = templates(
    "l0.point.mc",
    "Which is the 3D position of the point at {p} in the camera frame?",
    "The pixel {p} corresponds to which camera-frame point?",
    "Select the xyz coordinates of the point at {p}.",
)
POINT_TF = templates(
    "l0.point.tf",
    "The point at {p} lies at {xyz} in the camera coordinate system.",
    "In camera coordinates, the pixel {p} is at {xyz}.",
    "The 3D position of the point {p} is {xyz}.",
)
DEPTH_FF = templates(
    "l0.depth.ff",
    "Which point is {rel} the camera: the first at {p1} or the second at {p2}?",
    "Consider two points, {p1} (first) and {p2} (second). Which one is {rel} the camera?",
    "Between the point {p1} and the point {p2}, which is {rel} the camera? Answer first or second.",
)
DEPTH_MC = templates(
    "l0.depth.mc",
    "Which point is {rel} the camera, {p1} or {p2}?",
    "Of the points {p1} and {p2}, which one is {rel} the camera?",
    "Select the point {rel} the camera.",
)
DEPTH_TF = templates(
    "l0.depth.tf",
    "The point at {p1} is {rel} the camera than the point at {p2}.",
    "Compared with the point {p2}, the point {p1} is {rel} the camera.",
    "The pixel {p1} shows something {rel} the camera than the pixel {p2}.",
)
DEPTH_YN = templates(
    "l0.depth.yn",
    "Is the point at {p1} {rel} the camera than the point at {p2}?",
    "Is the pixel {p1} {rel} the camera than the pixel {p2}?",
    "Looking at the points {p1} and {p2}, is the first one {rel} the camera?",
)
_REL_FF = {"closer": "closer to", "farther": "farther from"}

L0_TASKS = (Task.POINT_QUERY, Task.DEPTH_ORDER)
# Paper Table 7 ratios of the two L0 tasks (10.51% : 2.69%), the default online mix.
L0_DEFAULT_WEIGHTS = (10.51, 2.69)


def loc_tokens(
    u: np.ndarray | float, v: np.ndarray | float, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u = column, v = row, continuous) -> (y_bin, x_bin) location-token indices 0..1023."""
    y = np.clip(np.floor(np.asarray(v, dtype=np.float64) / height * LOC_BINS), 0, LOC_BINS - 1).astype(
        np.int64
    )
    x = np.clip(np.floor(np.asarray(u, dtype=np.float64) / width * LOC_BINS), 0, LOC_BINS - 1).astype(
        np.int64
    )
    return y, x


def loc_text(y_bin: int, x_bin: int) -> str:
    return f"<loc{int(y_bin):04d}><loc{int(x_bin):04d}>"


def loc_to_pixel(
    y_bin: np.ndarray | int, x_bin: np.ndarray | int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token -> (row, col) of the pixel containing the token bin's center (what a decoder of the token reads)."""
    row = np.floor((np.asarray(y_bin) + 0.5) / LOC_BINS * height).astype(np.int64)
    col = np.floor((np.asarray(x_bin) + 0.5) / LOC_BINS * width).astype(np.int64)
    return np.clip(row, 0, height - 1), np.clip(col, 0, width - 1)


def _usable(pts: np.ndarray, valid: np.ndarray | None, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Validity of the given pixels only (checking the whole map per call would dominate online sampling)."""
    p = pts[rows, cols]
    ok = np.isfinite(p).all(axis=-1) & (p[:, 2] > 0)
    if valid is not None:
        ok &= valid[rows, cols]
    return ok


def _sample_pixels(
    pts: np.ndarray, valid: np.ndarray | None, rng: np.random.Generator, k: int, use_tokens: bool
) -> np.ndarray:
    """(k', 2) (row, col) of valid pixels (k' <= k; fewer only when the map has almost no valid pixel).

    Rejection sampling: a few random draws beat scanning the whole mask for the usual mostly-valid maps; a mask
    scan is the fallback for sparse maps.
    """
    h, w = pts.shape[:2]
    out = np.empty((0, 2), dtype=np.int64)

    def snap(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not use_tokens:  # snap to the pixel a token decoder would read
            return rows, cols
        yb, xb = loc_tokens(cols + 0.5, rows + 0.5, w, h)
        return loc_to_pixel(yb, xb, w, h)

    for _ in range(6):
        m = max(2 * (k - len(out)), 8)
        rows, cols = snap(rng.integers(0, h, size=m), rng.integers(0, w, size=m))
        ok = _usable(pts, valid, rows, cols)
        out = np.concatenate([out, np.stack([rows[ok], cols[ok]], axis=1)])
        if len(out) >= k:
            return out[:k]
    full = np.isfinite(pts).all(axis=-1) & (pts[..., 2] > 0)
    if valid is not None:
        full &= valid
    flat = np.flatnonzero(full)
    if flat.size == 0:
        return out
    rows, cols = snap(*np.divmod(rng.choice(flat, size=min(k - len(out), flat.size), replace=False), w))
    keep = _usable(pts, valid, rows, cols)
    return np.concatenate([out, np.stack([rows[keep], cols[keep]], axis=1)])[:k]


def _pixel_text(row: int, col: int, width: int, height: int, use_tokens: bool) -> str:
    if use_tokens:  # scalar form of loc_tokens (numpy per scalar costs ~10x more)
        yb = min(max(math.floor((row + 0.5) / height * LOC_BINS), 0), LOC_BINS - 1)
        xb = min(max(math.floor((col + 0.5) / width * LOC_BINS), 0), LOC_BINS - 1)
        return f"<loc{yb:04d}><loc{xb:04d}>"
    return f"({col}, {row})"


def _point_query(
    rng: RandomSource,
    xyz: np.ndarray | tuple,
    ptext: str,
    fmt: QAFormat,
    min_rel: float,
    mc_range: tuple[int, int],
    yes_no_prob: float,
    truth_flag: bool,
) -> dict | None:
    xyz = tuple(round(float(c), 2) + 0.0 for c in xyz)
    answer = format_xyz(xyz)
    if fmt == QAFormat.FREE_FORM:
        t = pick(rng, POINT_FF)
        return {"question": t.render(p=ptext), "answer": answer, "template_id": t.id}
    if fmt == QAFormat.MULTIPLE_CHOICE:
        t = pick(rng, POINT_MC)
        wrong = [format_xyz(d) for d in xyz_distractors(rng, xyz, mc_range[1] - 1, min_rel)]
        mc = multiple_choice(
            rng, t.render(p=ptext), answer, wrong, min_options=mc_range[0], max_options=mc_range[1]
        )
        if mc is None:
            return None
        return {
            "question": mc.question,
            "answer": mc.answer,
            "options": mc.options,
            "correct_index": mc.correct_index,
            "template_id": t.id,
        }
    t = pick(rng, POINT_TF)
    shown = answer
    if not truth_flag:
        wrong = xyz_distractors(rng, xyz, 1, min_rel)
        if not wrong:
            return None
        shown = format_xyz(wrong[0])
    w = pick(rng, TF_WRAPPERS)
    return {
        "question": w.render(s=t.render(p=ptext, xyz=shown)),
        "answer": "True" if truth_flag else "False",
        "template_id": f"{t.id}/{w.id}",
    }


def _depth_order(
    rng: RandomSource,
    p1: str,
    p2: str,
    z1: float,
    z2: float,
    fmt: QAFormat,
    yes_no_prob: float,
    truth_flag: bool,
) -> dict:
    rel = "closer" if rng.random() < 0.5 else "farther"
    first_wins = (z1 < z2) == (rel == "closer")
    if fmt == QAFormat.FREE_FORM:
        t = pick(rng, DEPTH_FF)
        return {
            "question": t.render(p1=p1, p2=p2, rel=_REL_FF[rel]),
            "answer": "The first point." if first_wins else "The second point.",
            "template_id": t.id,
            "subtask": rel,
        }
    if fmt == QAFormat.MULTIPLE_CHOICE:
        t = pick(rng, DEPTH_MC)
        correct, other = (p1, p2) if first_wins else (p2, p1)
        mc = multiple_choice(
            rng, t.render(p1=p1, p2=p2, rel=_REL_FF[rel]), correct, [other], min_options=2, max_options=2
        )
        assert mc is not None  # two distinct pixel texts
        return {
            "question": mc.question,
            "answer": mc.answer,
            "options": mc.options,
            "correct_index": mc.correct_index,
            "template_id": t.id,
            "subtask": rel,
        }
    # true/false: the statement says "p1 is <stated> than p2"; the opposite relation word makes it false
    stated = rel if first_wins == truth_flag else ("farther" if rel == "closer" else "closer")
    if rng.random() < yes_no_prob:
        t = pick(rng, DEPTH_YN)
        return {
            "question": t.render(p1=p1, p2=p2, rel=_REL_FF[stated]),
            "answer": "Yes" if truth_flag else "No",
            "template_id": t.id,
            "subtask": stated,
        }
    t = pick(rng, DEPTH_TF)
    w = pick(rng, TF_WRAPPERS)
    return {
        "question": w.render(s=t.render(p1=p1, p2=p2, rel=_REL_FF[stated])),
        "answer": "True" if truth_flag else "False",
        "template_id": f"{t.id}/{w.id}",
        "subtask": stated,
    }


def sample_l0(
    points: np.ndarray,
    valid: np.ndarray | None,
    rng: np.random.Generator,
    n: int,
    *,
    loc_tokens: bool = True,
    formats: Sequence[QAFormat] = tuple(QAFormat),
    tasks: Sequence[Task] = L0_TASKS,
    task_weights: Sequence[float] | None = None,
    depth_margin: float = 0.10,
    min_rel: float = 0.25,
    mc_range: tuple[int, int] = (3, 5),
    yes_no_prob: float = 0.5,
) -> list[dict]:
    """`n` L0 questions about one point map, as plain dicts (fields of `QAPair` minus the scene-specific ones,
    plus `pixels`: [[col, row], ...]); fast enough to run per image in the training dataloader.

    Each question gets one format drawn uniformly from `formats` and one task from `tasks` (weights default to the
    Table 7 ratios). Depth-ordering questions use only pixel pairs whose z differs by at least `depth_margin`
    (relative to the nearer one); the correct answer is first/second in equal shares, and true/false answers
    alternate from a random start. May return fewer than `n` when the map has too few valid pixels.
    """
    pts = np.asarray(points)
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ValueError(f"point map must be (H, W, 3), got {pts.shape}")
    h, w = pts.shape[:2]
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != (h, w):
            raise ValueError(f"valid mask {valid.shape} does not match point map {pts.shape}")
    if n <= 0:
        return []
    tasks = list(tasks)
    if task_weights is None:
        task_weights = [dict(zip(L0_TASKS, L0_DEFAULT_WEIGHTS, strict=True)).get(t, 1.0) for t in tasks]
    probs = np.asarray(task_weights, dtype=np.float64)
    probs = probs / probs.sum()
    chosen_tasks = rng.choice(len(tasks), size=n, p=probs)
    chosen_formats = rng.integers(0, len(formats), size=n)
    n_depth = int(sum(tasks[i] == Task.DEPTH_ORDER for i in chosen_tasks))
    n_point = n - n_depth
    # depth pairs: oversample candidates, keep those with a clear margin
    pixels = _sample_pixels(pts, valid, rng, n_point + 6 * n_depth, loc_tokens)
    z = pts[pixels[:, 0], pixels[:, 1], 2].astype(np.float64) if len(pixels) else np.empty(0)
    point_px = pixels[:n_point]
    cand = pixels[n_point:]
    cz = z[n_point:]
    m = len(cand) // 2
    a, b = cand[:m], cand[m : 2 * m]
    za, zb = cz[:m], cz[m : 2 * m]
    clear = np.abs(za - zb) >= depth_margin * np.minimum(za, zb)
    pairs = list(zip(a[clear], b[clear], za[clear], zb[clear], strict=True))[:n_depth]
    # balance first/second: put the nearer pixel first in exactly half of the pairs (random order)
    near_first = rng.permutation(np.arange(len(pairs)) % 2 == 0)
    fast = FastRandom(int(rng.integers(2**63)))  # scalar draws per question (see FastRandom)
    truth_coin = fast.random() < 0.5
    out: list[dict] = []
    pi = di = 0
    for ti, fi in zip(chosen_tasks, chosen_formats, strict=True):
        task, fmt = tasks[ti], formats[fi]
        if fmt == QAFormat.TRUE_FALSE:
            truth_coin = not truth_coin
        if task == Task.POINT_QUERY:
            if pi >= len(point_px):
                continue
            r, c = point_px[pi]
            pi += 1
            ptext = _pixel_text(int(r), int(c), w, h, loc_tokens)
            item = _point_query(fast, pts[r, c], ptext, fmt, min_rel, mc_range, yes_no_prob, truth_coin)
            if item is None:
                continue
            item.setdefault("subtask", "xyz")
            pix = [[int(c), int(r)]]
        else:
            if di >= len(pairs):
                continue
            pa, pb, z1, z2 = pairs[di]
            if (z1 < z2) != near_first[di]:
                pa, pb, z1, z2 = pb, pa, z2, z1
            di += 1
            t1 = _pixel_text(int(pa[0]), int(pa[1]), w, h, loc_tokens)
            t2 = _pixel_text(int(pb[0]), int(pb[1]), w, h, loc_tokens)
            item = _depth_order(fast, t1, t2, float(z1), float(z2), fmt, yes_no_prob, truth_coin)
            pix = [[int(pa[1]), int(pa[0])], [int(pb[1]), int(pb[0])]]
        item.update(task=task, level=TASK_LEVEL[task], format=fmt, pixels=pix)
        item.setdefault("options", [])
        item.setdefault("correct_index", None)
        out.append(item)
    return out


def generate_l0(ctx: QAContext, n: int | None = None) -> list[QAPair]:
    """Offline L0 questions for evaluation shards, from the context's point map (none without one)."""
    if ctx.point_map is None:
        return []
    n = ctx.config.l0_eval_samples if n is None else n
    cfg = ctx.config
    items = sample_l0(
        ctx.point_map,
        ctx.valid,
        ctx.rng,
        n,
        loc_tokens=cfg.loc_tokens,
        formats=cfg.formats,
        depth_margin=cfg.depth_order_margin,
        min_rel=cfg.distractor_min_rel,
        mc_range=(cfg.mc_min_options, cfg.mc_max_options),
        yes_no_prob=cfg.yes_no_prob,
    )
    pairs = []
    for item in items:
        extra = f"{item['subtask']}|{item['pixels']}"
        pairs.append(
            construct_pair(
                qa_id=ctx.qa_id(item["task"], item["template_id"], [], item["format"], extra),
                scene_id=ctx.scene.scene_id,
                shard=ctx.shard,
                level=item["level"],
                task=item["task"],
                subtask=item["subtask"],
                format=item["format"],
                question=item["question"],
                answer=item["answer"],
                options=item["options"],
                correct_index=item["correct_index"],
                value=None,
                unit=None,
                direction=None,
                object_ids=[],
                references=[],
                draw_boxes=[],
                template_id=item["template_id"],
                reasoning="",
                generator="template",
            )
        )
    return pairs
