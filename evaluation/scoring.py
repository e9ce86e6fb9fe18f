"""Per-item scoring rules and the aggregate metrics each benchmark's authors report.

The numeric rules are the authors' own, with their exact boundaries: SpatialRGPT counts 0.75*gt <= pred <=
1.25*gt (inclusive); Q-Spatial counts max(pred/gt, gt/pred) < 2 (strict). Group accuracy (3DSRBench's circular
and flip evaluation, MMBench's CircularEval) counts a group right only when every row in it is right, and per
category figures are computed over groups, never rows.
"""

from __future__ import annotations

import ast
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from evaluation.extract import (
    extract_choice,
    extract_clock,
    extract_number,
    extract_quantity,
    extract_vector,
    extract_yes_no,
    final_answer_region,
)
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.official import point_in_polygon

# ------------------------------------------------------------------------------------------ numeric rules


@dataclass(frozen=True)
class NumericRule:
    """How a numeric prediction is judged against ground truth.

    band: low*gt <= pred <= high*gt (SpatialRGPT: 0.75 / 1.25). ratio: max(p/g, g/p) < factor (Q-Spatial: 2).
    relative_error: |p - g| / |g| <= threshold (our L3 numeric questions).
    """

    kind: Literal["band", "ratio", "relative_error"] = "band"
    low: float = 0.75
    high: float = 1.25
    factor: float = 2.0
    threshold: float = 0.25

    def check(self, pred: float, gt: float) -> bool:
        if not (math.isfinite(pred) and math.isfinite(gt)):
            return False
        if self.kind == "band":
            return self.low * gt <= pred <= self.high * gt
        if self.kind == "ratio":
            if pred <= 0 or gt <= 0:
                return False
            return max(pred / gt, gt / pred) < self.factor
        if gt == 0:
            return pred == 0
        return abs(pred - gt) / abs(gt) <= self.threshold + 1e-12  # 1.1 vs 1.0 at 10% is in, despite rounding

    def describe(self) -> str:
        if self.kind == "band":
            return f"{self.low}*gt <= pred <= {self.high}*gt"
        if self.kind == "ratio":
            return f"max(pred/gt, gt/pred) < {self.factor}"
        return f"|pred-gt|/|gt| <= {self.threshold}"


SPATIALRGPT_RULE = NumericRule("band", low=0.75, high=1.25)
QSPATIAL_RULE = NumericRule("ratio", factor=2.0)


def abs_rel(pred: float, gt: float) -> float:
    """SpatialRGPT's absolute relative error, with its 1e-4 guard."""
    return abs(pred - gt) / (gt + 1e-4)


def angle_deg(a: Sequence[float], b: Sequence[float]) -> float:
    """Angle between two vectors in degrees; NaN when either is zero."""
    u, v = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(u.dot(v) / (nu * nv), -1.0, 1.0))))


def clock_difference(a: int, b: int) -> int:
    """Hours between two clock directions, the short way round (12 and 1 are 1 apart)."""
    d = abs(a - b) % 12
    return min(d, 12 - d)


# ------------------------------------------------------------------------------------------ item scoring


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: the judge could not decide (counted wrong, with `reason`)
    reason: str = ""
    model: str = ""
    prompt: str = ""
    raw: str = ""
    parsed: str = ""


class Judge(Protocol):
    """Decides free-form items (see evaluation.judge)."""

    def judge(self, item: EvalItem, prediction: str) -> Verdict: ...


@dataclass(frozen=True)
class ScoringRules:
    numeric: NumericRule = SPATIALRGPT_RULE
    angle_threshold_deg: float = 30.0
    clock_tolerance_h: int = 1
    default_unit: str | None = None  # unit assumed for a bare number in a LENGTH answer (None: refuse)
    length_extractor: Callable[[str], float | None] | None = None  # e.g. extract_qspatial
    numeric_by_category: tuple[tuple[str, NumericRule], ...] = ()  # per-category override of `numeric`

    def numeric_for(self, category: str) -> NumericRule:
        return dict(self.numeric_by_category).get(category, self.numeric)


def _result(
    item: EvalItem, prediction: str | None, parsed: str, correct: bool, reason: str = "", **kw
) -> ItemResult:
    return ItemResult.of(item, prediction, parsed, correct, reason, **kw)


def score_item(
    item: EvalItem, prediction: str | None, rules: ScoringRules, judge: Judge | None = None
) -> ItemResult:
    """Score one prediction. Never raises on bad model output: it is wrong, with the reason recorded."""
    if prediction is None:
        return _result(item, None, "", False, "no prediction")
    if item.kind == AnswerKind.CHOICE:
        choice = extract_choice(prediction, item.labels, item.options)
        if choice.index is None:
            return _result(item, prediction, "", False, f"unparseable: {choice.rule}")
        parsed = item.labels[choice.index] if choice.index < len(item.labels) else str(choice.index)
        return _result(item, prediction, parsed, choice.index == item.correct_index)
    if item.kind == AnswerKind.YES_NO:
        said = extract_yes_no(prediction)
        if said is None:
            return _result(item, prediction, "", False, "unparseable: no yes/no")
        truth = item.answer.strip().lower() in ("yes", "true")
        return _result(item, prediction, "yes" if said else "no", said == truth)
    if item.kind in (AnswerKind.LENGTH, AnswerKind.NUMBER):
        if item.value is None:
            return _result(item, prediction, "", False, "item has no ground-truth value")
        try:
            if item.kind == AnswerKind.NUMBER:
                pred = extract_number(prediction)
            elif rules.length_extractor is not None:
                pred = rules.length_extractor(prediction)
            else:
                pred = extract_quantity(prediction, rules.default_unit)
        except ValueError as err:
            return _result(item, prediction, "", False, f"unparseable: {err}")
        if pred is None:
            return _result(item, prediction, "", False, "unparseable: no number with a unit")
        ok = rules.numeric_for(item.category).check(pred, item.value)
        return _result(
            item,
            prediction,
            f"{pred:.4g}",
            ok,
            score_detail={"pred": pred, "gt": item.value, "abs_rel": abs_rel(pred, item.value)},
        )
    if item.kind == AnswerKind.VECTOR:
        if item.direction is None:
            return _result(item, prediction, "", False, "item has no ground-truth direction")
        vec = extract_vector(prediction)
        if vec is None:
            return _result(item, prediction, "", False, "unparseable: no xyz triple")
        angle = angle_deg(vec, item.direction)
        if math.isnan(angle):
            return _result(item, prediction, " ".join(f"{c:.3g}" for c in vec), False, "zero vector")
        ok = angle <= rules.angle_threshold_deg
        return _result(
            item, prediction, " ".join(f"{c:.3g}" for c in vec), ok, score_detail={"angle_deg": angle}
        )
    if item.kind == AnswerKind.CLOCK:
        hour = extract_clock(prediction)
        if hour is None or item.value is None:
            return _result(item, prediction, "", False, "unparseable: no clock direction")
        diff = clock_difference(hour, int(item.value))
        return _result(
            item,
            prediction,
            f"{hour} o'clock",
            diff <= rules.clock_tolerance_h,
            score_detail={"clock_diff": diff},
        )
    if item.kind == AnswerKind.POINT:
        try:
            polygon = [tuple(float(c) for c in p) for p in ast.literal_eval(item.answer)]
        except (SyntaxError, ValueError, TypeError):
            return _result(item, prediction, "", False, "ground truth is not a polygon")
        m = re.search(
            r"[\(\[]\s*([-+]?\d*\.?\d+)\s*,\s*([-+]?\d*\.?\d+)\s*[\)\]]", final_answer_region(prediction)
        )
        if m is None or len(polygon) < 3:
            return _result(item, prediction, "", False, "unparseable: no (x, y) point")
        x, y = float(m.group(1)), float(m.group(2))
        return _result(item, prediction, f"({x:g}, {y:g})", point_in_polygon(x, y, polygon))
    if item.kind == AnswerKind.JUDGED:
        if judge is None:
            return _result(item, prediction, "", False, "no judge configured")
        verdict = judge.judge(item, prediction)
        return _result(
            item,
            prediction,
            verdict.parsed,
            bool(verdict.correct),
            verdict.reason if verdict.correct is None else "",
            judge_model=verdict.model,
            judge_prompt=verdict.prompt,
            judge_raw=verdict.raw,
        )
    raise ValueError(f"unknown answer kind {item.kind}")


# ------------------------------------------------------------------------------------------ aggregates


def accuracy(results: Iterable[ItemResult]) -> tuple[float, int]:
    """Pooled accuracy (0..100) and count; (nan, 0) for nothing."""
    flags = [r.correct for r in results]
    return (100.0 * sum(flags) / len(flags) if flags else float("nan")), len(flags)


def accuracy_by(
    results: Sequence[ItemResult], key: Callable[[ItemResult], str]
) -> dict[str, dict[str, float]]:
    """{value of key: {"accuracy": 0..100, "count": n}} pooled over items."""
    buckets: dict[str, list[ItemResult]] = defaultdict(list)
    for r in results:
        buckets[key(r)].append(r)
    out = {}
    for name in sorted(buckets):
        acc, n = accuracy(buckets[name])
        out[name] = {"accuracy": acc, "count": n}
    return out


def group_correct(results: Sequence[ItemResult], group_of: Callable[[ItemResult], str]) -> dict[str, bool]:
    """A group is right only when every row in it is right."""
    groups: dict[str, bool] = {}
    for r in results:
        g = group_of(r)
        groups[g] = groups.get(g, True) and r.correct
    return groups


def group_accuracy(
    results: Sequence[ItemResult],
    group_of: Callable[[ItemResult], str],
    category_of: Callable[[ItemResult], str] | None = None,
) -> tuple[float, int, dict[str, dict[str, float]]]:
    """Accuracy over groups (0..100), the number of groups, and per-category accuracy over groups (a group takes
    its first row's category)."""
    verdicts = group_correct(results, group_of)
    overall = 100.0 * sum(verdicts.values()) / len(verdicts) if verdicts else float("nan")
    per_category: dict[str, dict[str, float]] = {}
    if category_of is not None:
        first_category: dict[str, str] = {}
        for r in results:
            first_category.setdefault(group_of(r), category_of(r))
        buckets: dict[str, list[bool]] = defaultdict(list)
        for g, ok in verdicts.items():
            buckets[first_category[g]].append(ok)
        per_category = {
            c: {"accuracy": 100.0 * sum(v) / len(v), "count": len(v)} for c, v in sorted(buckets.items())
        }
    return overall, len(verdicts), per_category


def yes_no_metrics(results: Sequence[ItemResult], truths: Sequence[bool]) -> dict[str, float]:
    """POPE's metrics: accuracy, precision, recall, F1 (positive = "yes") and the yes ratio. An unparseable
    prediction counts as neither yes nor no: wrong for accuracy, and a missed positive / no false positive."""
    said_yes = np.array([r.parsed == "yes" for r in results], dtype=bool)
    truth = np.asarray(truths, dtype=bool)
    correct = np.array([r.correct for r in results], dtype=bool)
    tp = int((said_yes & truth).sum())
    fp = int((said_yes & ~truth).sum())
    fn = int((~said_yes & truth).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(results)
    return {
        "accuracy": 100.0 * correct.mean() if n else float("nan"),
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * said_yes.mean() if n else float("nan"),
    }
