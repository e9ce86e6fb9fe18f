"""The bootstrap intervals against cases whose answer is known: the normal interval of a Bernoulli sample,
scipy's own percentile bootstrap, degenerate samples, perfectly clustered scenes, and the power formula."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from evaluation.intervals import (
    bootstrap_difference,
    bootstrap_mean,
    design_effect,
    interval_table,
    items_for_half_width,
)


def _items(correct, scenes=None, seed=0) -> pd.DataFrame:
    correct = np.asarray(correct, dtype=float)
    scenes = np.arange(len(correct)) if scenes is None else np.asarray(scenes)
    return pd.DataFrame(
        {
            "seed": seed,
            "scene_id": [f"s{s}" for s in scenes],
            "item_id": [f"i{i}" for i in range(len(correct))],
            "correct": correct,
        }
    )


def test_bernoulli_sample_matches_the_normal_interval():
    # 100 of 400 right: p = 0.25, normal 95% interval 0.25 +- 1.96 * sqrt(0.25 * 0.75 / 400) = +- 0.0424
    interval = bootstrap_mean(_items([1] * 100 + [0] * 300), resamples=20_000)
    half = 1.959964 * math.sqrt(0.25 * 0.75 / 400)
    assert interval.mean == 0.25 and interval.n_items == 400 and interval.n_scenes == 400
    assert interval.low == pytest.approx(0.25 - half, abs=0.006)
    assert interval.high == pytest.approx(0.25 + half, abs=0.006)
    assert interval.low < 0.25 < interval.high


def test_agrees_with_scipy_percentile_bootstrap():
    rng = np.random.default_rng(3)
    correct = (rng.random(300) < 0.3).astype(float)
    ours = bootstrap_mean(_items(correct), resamples=20_000, rng_seed=1)
    theirs = bootstrap((correct,), np.mean, method="percentile", n_resamples=20_000, random_state=2)
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=0.006)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=0.006)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_degenerate_sample_has_a_point_interval(value):
    interval = bootstrap_mean(_items([value] * 50, scenes=np.arange(50) // 5))
    assert (interval.mean, interval.low, interval.high) == (value, value, value)
    assert interval.n_scenes == 10


def test_clustered_scenes_widen_the_interval_to_the_number_of_scenes():
    # 50 scenes x 8 questions; a scene's questions are all right or all wrong (20 of 50 scenes right): the evidence
    # is 50 scenes, so the interval is the Bernoulli interval of n = 50, not of n = 400
    scene_right = np.array([1] * 20 + [0] * 30)
    frame = _items(np.repeat(scene_right, 8), scenes=np.repeat(np.arange(50), 8))
    clustered = bootstrap_mean(frame, resamples=20_000)
    half = 1.959964 * math.sqrt(0.4 * 0.6 / 50)
    assert clustered.mean == pytest.approx(0.4)
    assert clustered.half_width == pytest.approx(half, abs=0.012)
    assert design_effect(frame, resamples=20_000) == pytest.approx(8, rel=0.2)
    independent = bootstrap_mean(frame.assign(scene_id=frame["item_id"]), resamples=20_000)
    assert independent.half_width == pytest.approx(1.959964 * math.sqrt(0.4 * 0.6 / 400), abs=0.006)


def test_seeds_pool_and_resample():
    a = _items([1] * 30 + [0] * 70, seed=0)
    b = _items([1] * 50 + [0] * 50, seed=1)
    interval = bootstrap_mean(pd.concat([a, b]))
    assert interval.mean == pytest.approx(0.4) and interval.n_seeds == 2 and interval.n_items == 200
    # the between-seed spread (0.3 vs 0.5) widens the interval beyond the one seed-fixed resampling gives
    assert interval.half_width > bootstrap_mean(pd.concat([a, b]), resample_seeds=False).half_width


def test_paired_difference_of_identical_runs_is_exactly_zero():
    rng = np.random.default_rng(0)
    frame = _items((rng.random(200) < 0.5).astype(float), scenes=np.arange(200) // 4)
    diff = bootstrap_difference(frame, frame.copy())
    assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0)


def test_paired_difference_sees_a_shift_the_unpaired_intervals_overlap_on():
    # b is a with 10 of 200 items flipped to right: +5 points, visible paired, not from two separate intervals
    rng = np.random.default_rng(1)
    base = (rng.random(200) < 0.5).astype(float)
    better = base.copy()
    better[np.flatnonzero(base == 0)[:10]] = 1
    a, b = _items(better), _items(base)
    diff = bootstrap_difference(a, b, resamples=5000)
    assert diff.mean == pytest.approx(0.05)
    assert diff.low > 0
    ia, ib = bootstrap_mean(a), bootstrap_mean(b)
    assert ia.low < ib.high  # the separate intervals overlap


def test_nan_scores_do_not_count():
    frame = _items([1, 0, np.nan, np.nan])
    interval = bootstrap_mean(frame)
    assert interval.mean == 0.5 and interval.n_items == 2


def test_interval_table_per_group_and_level():
    frame = pd.concat(
        [
            _items([1] * 10 + [0] * 10).assign(arm="a", level=["L1"] * 10 + ["L2"] * 10),
            _items([0] * 20).assign(arm="b", level=["L1"] * 10 + ["L2"] * 10),
        ]
    )
    table = interval_table(frame, "arm", "level").set_index(["arm", "level"])
    assert table.loc[("a", "L1"), "mean"] == 1.0 and table.loc[("a", "L2"), "mean"] == 0.0
    assert table.loc[("a", "all"), "mean"] == 0.5 and table.loc[("a", "all"), "n_items"] == 20
    assert table.loc[("b", "all"), "ci_high"] == 0.0


def test_items_for_half_width():
    # z^2 p (1 - p) / h^2 with z = 1.959964: 1536.6 -> 1537 at p = 0.5, h = 2.5 points; 384.1 -> 385 at h = 5
    assert items_for_half_width(0.5, 0.025) == 1537
    assert items_for_half_width(0.5, 0.05) == 385
    assert items_for_half_width(0.2, 0.025) == 984
    assert items_for_half_width(0.5, 0.025, design_effect=2.0) == 3074
    with pytest.raises(ValueError):
        items_for_half_width(0.0, 0.025)
