"""What a model could learn from the QA data instead of geometry, counted and kept in bounds.

- **Leaks** (`leak_counts`): a question that refers to an object by the quantity or relation it asks about
  ("Among the stool and the largest sofa, which is the largest?", "Is the rightmost cabinet right of the
  leftmost cabinet?", "How many tables are left of the leftmost table?"). What a reference names is read by
  `assets.references.reference_quantities`; what a question asks about by `asked_quantities`. The generators
  avoid such references (`assets.qa.context.refer_neutral`); this module counts what still slips through.
- **Answer classes** (`answer_class`, `balance_pairs`): free-form answers that come from a small set (facings,
  in front/behind, left/right, counts) are kept within the bound the true/false answers are held to: no class
  more than `BALANCE_MARGIN` above the uniform share 1/k of its k classes. `balance_pairs` drops whole
  questions (all formats) of over-represented classes, deterministically.
- **The quality report** (`quality_report`) over a dataset table: answer distribution per task, leak counts,
  duplicate questions, ambiguous items, each compared with `THRESHOLDS`.

Plain Python on rows (`QA_SCHEMA` dicts or `QAPair`s); the Dagster layer only stores the report.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from assets.references import reference_quantities

# Free-form answer classes may exceed the uniform share 1/k of their k classes by at most this much: the same
# +-0.15 the true/false answers are held to per axis (tests/assets/qa/test_levels.py).
BALANCE_MARGIN = 0.15
COUNT_TOP_CLASS = 3  # counts of 3 and more form one class "3+" when balancing

# What a question asks about -> the quantities no reference in it may name. Distance to the camera and in
# front/behind go together ("the closest chair" already says which of two is in front).
AXIS_QUANTITIES: dict[str, frozenset[str]] = {
    "right": frozenset({"right"}),
    "forward": frozenset({"forward", "near"}),
    "up": frozenset({"up"}),
}
ATTRIBUTE_QUANTITIES: dict[str, frozenset[str]] = {
    "distance": frozenset({"near", "forward"}),
    "volume": frozenset({"volume"}),
    "height": frozenset({"height"}),
    "width": frozenset({"width"}),
    "length": frozenset({"length"}),
}
COUNT_RELATION_AXIS = {
    "left": "right",
    "right": "right",
    "front": "forward",
    "behind": "forward",
    "above": "up",
    "below": "up",
}

# Report thresholds: an asset check fails when a count is above its limit.
THRESHOLDS: dict[str, float] = {
    "leaks_total": 0,
    "duplicate_questions": 0,
    "ambiguous_items": 0,
    "unbalanced_classes": 0,
}


def _get(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, Mapping) else getattr(row, key, None)


def _text(value: Any) -> str:
    return str(getattr(value, "value", value))


def asked_quantities(task: str, subtask: str) -> tuple[str, frozenset[str]] | None:
    """(leak kind, quantities) a question of this task/subtask asks about, or None when it asks about none."""
    if task == "relational_comparison":
        head, _, attribute = subtask.partition("_")
        if head in ("max", "min") and attribute in ATTRIBUTE_QUANTITIES:
            return "comparison", ATTRIBUTE_QUANTITIES[attribute]
        if head == "order" and attribute in ATTRIBUTE_QUANTITIES:
            return "ordering", ATTRIBUTE_QUANTITIES[attribute]
        if head == "pair" and attribute in ATTRIBUTE_QUANTITIES:
            return "comparison", ATTRIBUTE_QUANTITIES[attribute]
        return None
    if task == "relative_direction" and subtask in AXIS_QUANTITIES:
        return "direction", AXIS_QUANTITIES[subtask]
    if task == "relative_direction" and subtask == "clock":
        return "direction", AXIS_QUANTITIES["right"] | AXIS_QUANTITIES["forward"]
    if task == "spatial_counting" and subtask in COUNT_RELATION_AXIS:
        return "counting", AXIS_QUANTITIES[COUNT_RELATION_AXIS[subtask]]
    return None


def row_leaks(row: Any) -> list[str]:
    """The leak kinds of one row: `comparison_correct` / `comparison_wrong` (the correct / a wrong candidate is
    named by the compared quantity), `ordering`, `direction_both` / `direction_one`, `counting_anchor`."""
    asked = asked_quantities(_text(_get(row, "task")), str(_get(row, "subtask") or ""))
    if asked is None:
        return []
    kind, quantities = asked
    references = list(_get(row, "references") or [])
    leaking = [r for r in references if reference_quantities(r) & quantities]
    if not leaking:
        return []
    if kind == "comparison":
        answer = str(_get(row, "answer") or "").lower()
        return ["comparison_correct" if r.lower() in answer else "comparison_wrong" for r in leaking][:1]
    if kind == "direction":
        return ["direction_both" if len(leaking) >= 2 else "direction_one"]
    if kind == "counting":
        return ["counting_anchor"] if reference_quantities(references[0]) & quantities else []
    return [kind]


LEAK_KINDS = (
    "comparison_correct",
    "comparison_wrong",
    "ordering",
    "direction_both",
    "direction_one",
    "counting_anchor",
)


def leak_counts(rows: Iterable[Any]) -> dict[str, int]:
    """Rows per leak kind (`row_leaks`), every kind present (0 when none), plus `leaks_total`."""
    counts = dict.fromkeys(LEAK_KINDS, 0)
    total = 0
    for row in rows:
        kinds = row_leaks(row)
        total += bool(kinds)
        for kind in kinds:
            counts[kind] += 1
    counts["leaks_total"] = total
    return counts


# ---------------------------------------------------------------------------------------------- answer classes

_FACING = re.compile(r" is facing (.+?)\.?$")
_DIRECTION = re.compile(r" is (to the left of|to the right of|in front of|behind|above|below) ")


def answer_class(task: str, subtask: str, fmt: str, answer: str) -> tuple[str, str] | None:
    """(family, class) of a free-form answer drawn from a small set, None for open answers (numbers, names,
    coordinates). The family is what the class is balanced within (a task, or task + subtask)."""
    if fmt != "free_form":
        return None
    answer = answer.strip()
    if task == "orientation":
        match = _FACING.search(answer)
        return ("orientation", match.group(1)) if match else None
    if task == "perspective_taking" and subtask.split("_")[0] in ("side", "depth"):
        return f"perspective_taking/{subtask}", answer.rstrip(".").lower()
    if task == "spatial_counting" and answer.isdigit():
        return "spatial_counting", answer if int(answer) < COUNT_TOP_CLASS else f"{COUNT_TOP_CLASS}+"
    if task == "relative_direction" and subtask in AXIS_QUANTITIES:
        match = _DIRECTION.search(answer)
        return (f"relative_direction/{subtask}", match.group(1)) if match else None
    if task == "relative_direction" and subtask == "clock":
        return "relative_direction/clock", answer
    if task == "relational_comparison" and subtask.startswith("orientation_"):
        return f"relational_comparison/{subtask.split('_')[0]}", answer.rstrip(".").lower()
    if task == "depth_order":
        return "depth_order", answer.rstrip(".").lower()
    return None


# Families whose answer set is known: balance against all of its classes even where a shard lacks some (so the
# union of shards has the same bound as each shard). Others: the classes observed, at least two.
FAMILY_CLASSES: dict[str, int] = {
    "orientation": 4,
    "spatial_counting": COUNT_TOP_CLASS + 1,
    "relational_comparison/orientation": 3,
}


def family_classes(family: str, observed: int) -> int:
    """k for a family's bound: its known number of classes (horizontal facings, counts 0/1/2/3+, similar/
    orthogonal/opposite), or two (binary answers), or more when more were observed."""
    return max(observed, FAMILY_CLASSES.get(family, 2))


def class_bound(k: int) -> float:
    """Largest share one of k answer classes may have: uniform 1/k plus `BALANCE_MARGIN` (0.65 for two classes,
    the true/false bound)."""
    return min(1.0, 1.0 / max(k, 1) + BALANCE_MARGIN)


def _row_class(row: Any) -> tuple[str, str] | None:
    return answer_class(
        _text(_get(row, "task")),
        str(_get(row, "subtask") or ""),
        _text(_get(row, "format")),
        str(_get(row, "answer") or ""),
    )


def question_key(row: Any) -> tuple[str, str, str, tuple[int, ...]]:
    """What the formats of one question share: scene, task, subtask and objects."""
    return (
        str(_get(row, "scene_id")),
        _text(_get(row, "task")),
        str(_get(row, "subtask") or ""),
        tuple(int(i) for i in (_get(row, "object_ids") or [])),
    )


def _stable_rank(key: tuple) -> str:
    return hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()


def balance_pairs(rows: Sequence[Any], margin: float = BALANCE_MARGIN) -> tuple[list[Any], dict[str, object]]:
    """Drop whole questions (all their formats) of over-represented free-form answer classes until every class of
    every family is within 1/k + `margin` of its family's k classes, or report why it cannot be.

    Deterministic (questions dropped in the order of a hash of their key) and per call: applied to each shard,
    the union of shards stays within the bound too (a share bounded in every part is bounded in the whole).
    Returns the kept rows in their order and a summary: dropped questions per family/class, and the families
    left out of bounds with the reason (a single class: nothing to balance against).
    """
    classes: dict[tuple, tuple[str, str]] = {}
    for row in rows:
        found = _row_class(row)
        if found is not None:
            classes.setdefault(question_key(row), found)
    by_family: dict[str, dict[str, list[tuple]]] = defaultdict(lambda: defaultdict(list))
    for key, (family, cls) in classes.items():
        by_family[family][cls].append(key)
    dropped: set[tuple] = set()
    summary: dict[str, object] = {}
    unbalanceable: dict[str, str] = {}
    for family, members in sorted(by_family.items()):
        if len(members) < 2:
            unbalanceable[family] = f"only one answer class ({next(iter(members))})"
            continue
        k = family_classes(family, len(members))
        bound = min(1.0, 1.0 / k + margin)
        counts = {cls: len(keys) for cls, keys in members.items()}
        for _ in range(4 * k):
            total = sum(counts.values())
            cls, n = max(counts.items(), key=lambda item: (item[1], item[0]))
            if n <= bound * total + 1e-9:
                break
            allowed = int(bound * (total - n) / (1.0 - bound)) if bound < 1.0 else n
            counts[cls] = max(allowed, 1)
        for cls, keys in members.items():
            excess = len(keys) - counts[cls]
            if excess > 0:
                victims = sorted(keys, key=_stable_rank)[:excess]
                dropped.update(victims)
                summary[f"{family}={cls}"] = excess
    kept = [row for row in rows if question_key(row) not in dropped]
    return kept, {"dropped_questions": len(dropped), "dropped": summary, "unbalanceable": unbalanceable}


def answer_distribution(rows: Iterable[Any]) -> dict[str, dict[str, int]]:
    """family -> class -> free-form answers (the distribution the manifest records and plots)."""
    dist: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        found = _row_class(row)
        if found is not None:
            dist[found[0]][found[1]] += 1
    return {family: dict(sorted(c.items())) for family, c in sorted(dist.items())}


def truth_distribution(rows: Iterable[Any]) -> dict[str, dict[str, int]]:
    """task -> {"true", "false"} -> true/false-format answers."""
    dist: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        if _text(_get(row, "format")) == "true_false":
            answer = str(_get(row, "answer") or "")
            dist[_text(_get(row, "task"))]["true" if answer in ("True", "Yes") else "false"] += 1
    return {task: dict(sorted(c.items())) for task, c in sorted(dist.items())}


def out_of_bounds(
    distribution: Mapping[str, Mapping[str, int]], margin: float = BALANCE_MARGIN, min_answers: int = 20
) -> dict[str, str]:
    """Families (with at least `min_answers`) whose largest class exceeds 1/k + margin: family -> why."""
    bad = {}
    for family, counts in distribution.items():
        total = sum(counts.values())
        if total < min_answers or len(counts) < 2:
            continue
        cls, n = max(counts.items(), key=lambda item: item[1])
        bound = min(1.0, 1.0 / family_classes(family, len(counts)) + margin)
        if n / total > bound + 1e-9:
            bad[family] = f"{cls}: {n / total:.2f} of {total} > {bound:.2f}"
    return bad


def quality_report(rows: Sequence[Any], thresholds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Answer distributions, leak counts, duplicate questions and ambiguous items over a dataset, with the
    thresholds each is checked against and whether all hold (`passed`).

    Duplicates: the same question text with the same answer on the same image and format more than once.
    Ambiguous: a question whose references are not distinct, a multiple-choice item whose options repeat or
    whose correct option is not among them, or a question asked twice on one image with different answers.
    """
    thresholds = dict(THRESHOLDS if thresholds is None else thresholds)
    seen: Counter = Counter()
    answers: dict[tuple, set] = defaultdict(set)
    ambiguous = 0
    for row in rows:
        key = (_get(row, "scene_id"), _text(_get(row, "format")), _get(row, "question"))
        seen[(*key, _get(row, "answer"))] += 1
        answers[key].add(_get(row, "answer"))
        refs = list(_get(row, "references") or [])
        options = list(_get(row, "options") or [])
        index = _get(row, "correct_index")
        if (
            len(set(refs)) != len(refs)
            or len(set(options)) != len(options)
            or (options and (index is None or not 0 <= int(index) < len(options)))
        ):
            ambiguous += 1
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    ambiguous += sum(1 for found in answers.values() if len(found) > 1)
    answers = answer_distribution(rows)
    unbalanced = out_of_bounds(answers)
    leaks = leak_counts(rows)
    measured = {
        "leaks_total": leaks["leaks_total"],
        "duplicate_questions": duplicates,
        "ambiguous_items": ambiguous,
        "unbalanced_classes": len(unbalanced),
    }
    failures = {k: v for k, v in measured.items() if k in thresholds and v > thresholds[k]}
    return {
        "num_rows": len(rows),
        "leaks": leaks,
        "answer_distribution": answers,
        "true_false": truth_distribution(rows),
        "unbalanced": unbalanced,
        "duplicate_questions": duplicates,
        "ambiguous_items": ambiguous,
        "thresholds": thresholds,
        "failures": failures,
        "passed": not failures,
    }


# What each asset check of the release compares: check name -> the report's measured counts it covers.
CHECKS: dict[str, tuple[str, ...]] = {
    "no_leaks": ("leaks_total",),
    "answers_balanced": ("unbalanced_classes",),
    "no_duplicates_or_ambiguous": ("duplicate_questions", "ambiguous_items"),
}


def check_report(report: Mapping[str, Any], check: str) -> tuple[bool, dict[str, Any]]:
    """(passed, metadata) of one release check (`CHECKS`) on a `quality_report`: each covered count against its
    threshold; the metadata names the counts, the thresholds and what crossed them."""
    measured = {
        "leaks_total": report["leaks"]["leaks_total"],
        "unbalanced_classes": len(report["unbalanced"]),
        "duplicate_questions": report["duplicate_questions"],
        "ambiguous_items": report["ambiguous_items"],
    }
    thresholds = report["thresholds"]
    metadata: dict[str, Any] = {}
    passed = True
    for key in CHECKS[check]:
        metadata[key] = measured[key]
        metadata[f"{key}_threshold"] = thresholds.get(key, 0)
        passed &= measured[key] <= thresholds.get(key, 0)
    if check == "no_leaks":
        metadata.update({f"leaks_{k}": v for k, v in report["leaks"].items() if k != "leaks_total"})
    if check == "answers_balanced":
        metadata["unbalanced"] = "; ".join(f"{k}: {v}" for k, v in report["unbalanced"].items()) or "none"
    return passed, metadata
