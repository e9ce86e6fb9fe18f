"""The authors' numeric rules at their exact boundaries, group accuracy, POPE metrics."""

import math

import pytest

from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import (
    QSPATIAL_RULE,
    SPATIALRGPT_RULE,
    NumericRule,
    ScoringRules,
    abs_rel,
    angle_deg,
    clock_difference,
    group_accuracy,
    score_item,
    yes_no_metrics,
)


def test_spatialrgpt_band_is_inclusive():
    assert SPATIALRGPT_RULE.check(0.75, 1.0)
    assert SPATIALRGPT_RULE.check(1.25, 1.0)
    assert not SPATIALRGPT_RULE.check(0.7499, 1.0)
    assert not SPATIALRGPT_RULE.check(1.2501, 1.0)
    assert abs_rel(1.5, 1.0) == pytest.approx(0.5 / 1.0001)


def test_qspatial_ratio_is_strict():
    assert QSPATIAL_RULE.check(1.99, 1.0)
    assert QSPATIAL_RULE.check(0.51, 1.0)
    assert not QSPATIAL_RULE.check(2.0, 1.0)
    assert not QSPATIAL_RULE.check(0.5, 1.0)
    assert not QSPATIAL_RULE.check(0.0, 1.0)
    assert not QSPATIAL_RULE.check(-1.0, 1.0)


def test_relative_error_rule():
    rule = NumericRule("relative_error", threshold=0.1)
    assert rule.check(1.1, 1.0) and rule.check(0.9, 1.0)
    assert not rule.check(1.11, 1.0)
    assert not rule.check(float("nan"), 1.0)


def test_angles_and_clock():
    assert angle_deg((1, 0, 0), (0, 1, 0)) == pytest.approx(90)
    assert angle_deg((1, 1, 0), (2, 2, 0)) == pytest.approx(0, abs=1e-4)
    assert math.isnan(angle_deg((0, 0, 0), (1, 0, 0)))
    assert clock_difference(12, 1) == 1 and clock_difference(11, 2) == 3 and clock_difference(3, 3) == 0


def _result(group, correct, category="c"):
    return ItemResult(
        item_id=f"{group}-{correct}",
        category=category,
        subcategory="",
        group=group,
        split="",
        prediction="",
        parsed="",
        correct=correct,
    )


def test_group_accuracy_counts_a_group_only_if_every_row_is_right():
    rows = [
        _result("g1", True, "x"),
        _result("g1", True, "x"),
        _result("g2", True, "y"),
        _result("g2", False, "y"),
        _result("g3", True, "y"),
    ]
    overall, n, per_cat = group_accuracy(rows, lambda r: r.group, lambda r: r.category)
    assert n == 3
    assert overall == pytest.approx(200 / 3)
    assert per_cat == {"x": {"accuracy": 100.0, "count": 1}, "y": {"accuracy": 50.0, "count": 2}}


def test_pope_metrics_by_hand():
    # truths yes, yes, no, no ; said yes, no, yes, unparseable
    rows = [
        ItemResult("1", "", "", "1", "", "Yes", "yes", True),
        ItemResult("2", "", "", "2", "", "No", "no", False),
        ItemResult("3", "", "", "3", "", "Yes", "yes", False),
        ItemResult("4", "", "", "4", "", "??", "", False, "unparseable"),
    ]
    m = yes_no_metrics(rows, [True, True, False, False])
    assert m["accuracy"] == 25.0
    assert m["precision"] == 50.0 and m["recall"] == 50.0 and m["f1"] == 50.0
    assert m["yes_ratio"] == 50.0


def _item(kind, **kw):
    return EvalItem(item_id="i", benchmark="t", prompt="q", kind=kind, answer=kw.pop("answer", ""), **kw)


def test_score_item_records_reasons_and_never_raises():
    rules = ScoringRules(angle_threshold_deg=30)
    choice = _item(AnswerKind.CHOICE, options=["x", "y"], labels=["A", "B"], correct_index=1)
    assert score_item(choice, "B", rules).correct
    bad = score_item(choice, "no idea at all", rules)
    assert not bad.correct and bad.reason.startswith("unparseable")
    missing = score_item(choice, None, rules)
    assert not missing.correct and missing.reason == "no prediction"

    vec = _item(AnswerKind.VECTOR, direction=(0.0, 0.0, 1.0))
    ok = score_item(vec, "0.1m 0.0m 1.0m", rules)  # 5.7 degrees off
    assert ok.correct and ok.score_detail["angle_deg"] == pytest.approx(5.71, abs=0.01)
    assert not score_item(vec, "0.7m 0m 1m", rules).correct  # 35 degrees off
    assert score_item(vec, "0 0 0", rules).reason == "zero vector"

    length = _item(AnswerKind.LENGTH, value=2.0)
    assert score_item(length, "about 2.4 m", rules).correct
    assert not score_item(length, "2.6 meters", rules).correct
    assert score_item(length, "2.4", rules).reason.startswith("unparseable")  # no unit, no default
    judged = _item(AnswerKind.JUDGED, answer="yes")
    assert score_item(judged, "yes", rules).reason == "no judge configured"
