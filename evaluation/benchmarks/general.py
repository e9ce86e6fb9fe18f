"""General VQA benchmarks in their VLMEvalKit TSV releases: MMBench (index, question, hint, A-D, answer, category,
l2-category, image), SEED-Bench and RealWorldQA (index, question, A-D, answer, category, image), POPE (index or
question_id, question, answer yes/no, category, image; the lmms-lab parquet release reads the same).

MMBench uses CircularEval: its TSV holds each question n times with the options rotated (index % 1e6 names the
question) and a question counts only if every rotation is right (VLMEvalKit, exact matching:
evaluation.official.vlmevalkit_mcq). POPE reports accuracy and F1 (positive = yes) per category and overall.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import (
    LETTERS,
    decode_image,
    find_tables,
    format_options,
    is_missing,
    letter_index,
    read_table,
    vlmevalkit_images,
)
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by, group_accuracy, yes_no_metrics


def _mcq_items(source: Path, benchmark: str, circular: bool) -> list[EvalItem]:
    """One item per TSV row. VLMEvalKit's circular TSVs (MMBench) already hold the rotated copies of each
    question (index = k * 1e6 + g): with `circular` every row's group is `index % 1e6`, as in VLMEvalKit's
    mcq_circular_eval; nothing is rotated here."""
    items: list[EvalItem] = []
    for table in find_tables(source):
        frame = read_table(table)
        images = vlmevalkit_images(frame)
        for row in frame.to_dict("records"):
            options = [str(row[c]) for c in LETTERS if c in row and not is_missing(row[c])]
            labels = [LETTERS[i] for i in range(len(options))]
            correct = letter_index(row.get("answer"), len(options))
            index = str(row["index"])
            hint = "" if is_missing(row.get("hint")) else str(row["hint"])
            items.append(
                EvalItem(
                    item_id=index,
                    benchmark=benchmark,
                    prompt=format_options(str(row["question"]), options, labels, hint=hint),
                    question=str(row["question"]),
                    kind=AnswerKind.CHOICE,
                    answer="" if correct is None else LETTERS[correct],
                    options=options,
                    labels=labels,
                    correct_index=correct,
                    category=str(row.get("category", "")),
                    subcategory="" if is_missing(row.get("l2-category")) else str(row["l2-category"]),
                    group=str(int(float(index)) % 1_000_000) if circular else index,
                    image_bytes=decode_image(images.get(index, row.get("image"))),
                )
            )
    return items


def load_mmbench(source: Path, config: EvalConfig) -> list[EvalItem]:
    return _mcq_items(source, "mmbench", config.mmbench_circular)


def load_seed(source: Path, config: EvalConfig) -> list[EvalItem]:
    return _mcq_items(source, "seed", False)


def load_realworldqa(source: Path, config: EvalConfig) -> list[EvalItem]:
    return _mcq_items(source, "realworldqa", False)


def load_pope(source: Path, config: EvalConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    for table in find_tables(source):
        frame = read_table(table)
        images = vlmevalkit_images(frame)
        for i, row in enumerate(frame.to_dict("records")):
            index = str(row.get("index", row.get("question_id", i)))
            category = str(row.get("category", ""))
            items.append(
                EvalItem(
                    item_id=f"{category}-{index}" if "index" not in row else index,
                    benchmark="pope",
                    prompt=str(row["question"]),
                    question=str(row["question"]),
                    kind=AnswerKind.YES_NO,
                    answer=str(row["answer"]).strip().lower(),
                    category=category,
                    image_bytes=decode_image(images.get(index, row.get("image"))),
                )
            )
    return items


# VLMEvalKit's report names for MMBench's l2-categories.
MMB_ABBREVIATIONS = {
    "coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
    "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR", "relation_reasoning": "RR",
    "attribute_reasoning": "AR",
}  # fmt: skip


def aggregate_mcq(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    """Row accuracy; for circular TSVs VLMEvalKit's CircularEval: a group (index % 1e6) counts only if every row
    in it is right, and `category/<name>` is over groups for both category and l2-category (abbreviated)."""
    overall, n = accuracy(results)
    metrics = {"accuracy": overall, "count": float(n)}
    per_category = accuracy_by(results, lambda r: r.category)
    if any(r.group != r.item_id for r in results):  # circular rotations present
        circ, n_groups, per_category = group_accuracy(results, lambda r: r.group, lambda r: r.category)
        _, _, per_l2 = group_accuracy(results, lambda r: r.group, lambda r: r.subcategory)
        metrics.update({"accuracy": circ, "row_accuracy": overall, "groups": float(n_groups)})
        for name, stats in {
            **per_category,
            **{MMB_ABBREVIATIONS.get(k, k): v for k, v in per_l2.items() if k},
        }.items():
            metrics[f"category/{name}"] = stats["accuracy"]
    return metrics, per_category


def aggregate_pope(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    truths = {it.item_id: it.answer == "yes" for it in items}
    metrics = yes_no_metrics(results, [truths[r.item_id] for r in results])
    metrics["count"] = float(len(results))
    per_category: dict[str, dict[str, float]] = {}
    for category in sorted({r.category for r in results}):
        rows = [r for r in results if r.category == category]
        stats = yes_no_metrics(rows, [truths[r.item_id] for r in rows])
        per_category[category] = {"accuracy": stats["accuracy"], "f1": stats["f1"], "count": len(rows)}
        metrics[f"{category}/f1"] = stats["f1"]
    return metrics, per_category
