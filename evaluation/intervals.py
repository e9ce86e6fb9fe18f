"""Confidence intervals for held-out accuracies: percentile bootstrap over scenes (and seeds), paired differences,
and the sample size that makes a given difference visible.

Why scenes, not items: every question about one image shares that image, its point map and its objects, so a model
that misreads a scene misses many of its questions together. Items of one scene are correlated and an item-level
bootstrap would pretend there is more evidence than there is; resampling whole scenes (a cluster bootstrap) keeps
that correlation inside each resample. Where each item is its own scene both are the same.

Why seeds too: a training run is one draw of initialisation and data order. With several seeds per condition the
resample draws seeds with replacement as well as scenes (a two-level bootstrap). It counts the item-level noise at
both levels, so it errs on the wide side; with one seed it reduces to the scene bootstrap.

Why percentile bootstrap rather than a normal interval: accuracies of a toy model sit near 0 and 1, where the
normal interval leaves [0, 1] and is too narrow; the percentile interval stays inside and needs no variance
formula for clustered ratios. It is the `method="percentile"` interval of `scipy.stats.bootstrap`, which tests
compare against; scipy has no cluster or two-level resampling, hence this module.

Everything here is pure numpy/pandas over a long table of per-item records with columns `seed`, `scene_id`,
`item_id` and a 0/1 (or NaN = not applicable) score column such as `correct`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap interval and the evidence behind it."""

    mean: float
    low: float
    high: float
    n_items: int
    n_scenes: int
    n_seeds: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}mean": self.mean,
            f"{prefix}ci_low": self.low,
            f"{prefix}ci_high": self.high,
            f"{prefix}n_items": float(self.n_items),
            f"{prefix}n_scenes": float(self.n_scenes),
            f"{prefix}n_seeds": float(self.n_seeds),
        }

    def __str__(self) -> str:
        if math.isnan(self.mean):
            return "n/a"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


EMPTY = Interval(float("nan"), float("nan"), float("nan"), 0, 0, 0)


def items_for_half_width(
    p: float, half_width: float, confidence: float = DEFAULT_CONFIDENCE, design_effect: float = 1.0
) -> int:
    """Items needed so that the normal-approximation interval of a proportion near `p` is +-`half_width`:
    n = z^2 p (1 - p) / h^2, times the design effect of clustering (1 + (m - 1) * ICC for m items per scene)."""
    if not 0 < p < 1 or half_width <= 0:
        raise ValueError(f"need 0 < p < 1 and half_width > 0, got p={p}, half_width={half_width}")
    z = norm.ppf(0.5 + confidence / 2)
    return math.ceil(z * z * p * (1 - p) / half_width**2 * design_effect)


def _cells(
    frame: pd.DataFrame, score: str, seeds: Sequence, scenes: Sequence
) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts), each (S, C): the score summed and the items counted per seed and scene."""
    seed_index = pd.Index(seeds).get_indexer(frame["seed"])
    scene_index = pd.Index(scenes).get_indexer(frame["scene_id"])
    sums = np.zeros((len(seeds), len(scenes)))
    counts = np.zeros((len(seeds), len(scenes)))
    np.add.at(sums, (seed_index, scene_index), frame[score].to_numpy(dtype=np.float64))
    np.add.at(counts, (seed_index, scene_index), 1.0)
    return sums, counts


def _resample_weights(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """(resamples, n): how often each of n units is drawn in each resample (draw n with replacement)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def _ratio(
    weights_seed: np.ndarray, sums: np.ndarray, counts: np.ndarray, weights_scene: np.ndarray
) -> np.ndarray:
    # resampled pooled mean: sum over drawn seeds s and drawn scenes c of sums[s, c] / the same over counts
    num = np.einsum("bs,sc,bc->b", weights_seed, sums, weights_scene)
    den = np.einsum("bs,sc,bc->b", weights_seed, counts, weights_scene)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def _scored(frame: pd.DataFrame, score: str) -> pd.DataFrame:
    missing = {"seed", "scene_id", score} - set(frame.columns)
    if missing:
        raise ValueError(f"per-item records lack columns {sorted(missing)}")
    return frame[frame[score].notna()]


def bootstrap_mean(
    frame: pd.DataFrame,
    score: str = "correct",
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    rng_seed: int = 0,
    resample_seeds: bool = True,
) -> Interval:
    """Pooled mean of `score` over all seeds and items, with a percentile interval from resampling scenes (and,
    with `resample_seeds`, seeds). Rows whose score is NaN do not count."""
    frame = _scored(frame, score)
    if frame.empty:
        return EMPTY
    seeds, scenes = sorted(frame["seed"].unique()), sorted(frame["scene_id"].unique())
    sums, counts = _cells(frame, score, seeds, scenes)
    rng = np.random.default_rng(rng_seed)
    w_seed = (
        _resample_weights(rng, len(seeds), resamples) if resample_seeds else np.ones((resamples, len(seeds)))
    )
    w_scene = _resample_weights(rng, len(scenes), resamples)
    low, high = _percentiles(_ratio(w_seed, sums, counts, w_scene), confidence)
    return Interval(float(sums.sum() / counts.sum()), low, high, len(frame), len(scenes), len(seeds))


def bootstrap_difference(
    a: pd.DataFrame,
    b: pd.DataFrame,
    score: str = "correct",
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    rng_seed: int = 0,
    resample_seeds: bool = True,
) -> Interval:
    """mean(a) - mean(b) over the items both were scored on, paired: each resample draws the same scenes (and the
    same seed positions) for both, so what the two share (the items' difficulty) cancels. The interval excludes 0
    when the difference is visible at this confidence."""
    a, b = _scored(a, score), _scored(b, score)
    shared = set(a["item_id"]) & set(b["item_id"])
    a, b = a[a["item_id"].isin(shared)], b[b["item_id"].isin(shared)]
    if a.empty:
        return EMPTY
    scenes = sorted(set(a["scene_id"]) | set(b["scene_id"]))
    seeds_a, seeds_b = sorted(a["seed"].unique()), sorted(b["seed"].unique())
    if len(seeds_a) != len(seeds_b):
        raise ValueError(f"paired difference needs as many seeds on both sides, got {seeds_a} and {seeds_b}")
    sums_a, counts_a = _cells(a, score, seeds_a, scenes)
    sums_b, counts_b = _cells(b, score, seeds_b, scenes)
    rng = np.random.default_rng(rng_seed)
    w_seed = (
        _resample_weights(rng, len(seeds_a), resamples)
        if resample_seeds
        else np.ones((resamples, len(seeds_a)))
    )
    w_scene = _resample_weights(rng, len(scenes), resamples)
    stats = _ratio(w_seed, sums_a, counts_a, w_scene) - _ratio(w_seed, sums_b, counts_b, w_scene)
    low, high = _percentiles(stats, confidence)
    mean = float(sums_a.sum() / counts_a.sum() - sums_b.sum() / counts_b.sum())
    return Interval(mean, low, high, len(shared), len(scenes), len(seeds_a))


def design_effect(
    frame: pd.DataFrame, score: str = "correct", *, resamples: int = DEFAULT_RESAMPLES, rng_seed: int = 0
) -> float:
    """Variance of the scene bootstrap over that of an item bootstrap (one seed at a time, pooled): how many
    items one independent item is worth. 1 = items independent; m = a scene's m items always agree."""
    frame = _scored(frame, score)
    if frame.empty or frame[score].nunique() < 2:
        return float("nan")
    single = frame.assign(seed=0)
    options = {"resamples": resamples, "rng_seed": rng_seed, "resample_seeds": False}
    by_scene = bootstrap_mean(single, score, **options)
    by_item = bootstrap_mean(single.assign(scene_id=np.arange(len(single))), score, **options)
    return (by_scene.half_width / by_item.half_width) ** 2 if by_item.half_width > 0 else float("nan")


def interval_table(
    items: pd.DataFrame,
    group: str | Sequence[str],
    by: str,
    score: str = "correct",
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
) -> pd.DataFrame:
    """One row per (group..., `by` value): mean, ci_low, ci_high, n_items, n_scenes, n_seeds, and the per-seed
    means (`seed_means`, for the spread between runs). Also an `all` row per group over every value of `by`."""
    groups = [group] if isinstance(group, str) else list(group)
    rows = []
    for key, part in items.groupby(groups, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        for value, cell in [*sorted(part.groupby(by)), ("all", part)]:
            interval = bootstrap_mean(cell, score, resamples=resamples, confidence=confidence)
            if interval.n_items == 0:
                continue
            scored = cell[cell[score].notna()]
            seed_means = scored.groupby("seed")[score].mean()
            rows.append(
                {
                    **dict(zip(groups, key, strict=True)),
                    by: value,
                    **interval.as_dict(),
                    "seed_means": " ".join(f"{m:.3f}" for m in seed_means),
                }
            )
    return pd.DataFrame(rows)
