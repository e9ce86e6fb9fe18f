"""General VQA benchmarks in their VLMEvalKit TSV releases: MMBench (index, question, hint, A-D, answer, category,
l2-category, image), SEED-Bench and RealWorldQA (index, question, A-D, answer, category, image), POPE (index or
question_id, question, answer yes/no, category, image; the lmms-lab parquet release reads the same).

MMBench uses CircularEval: a question with n options is asked n times with its options rotated and counts only
if every rotation is right. POPE reports accuracy and F1 (positive = yes) per category and overall.
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
    items: list[EvalItem] = []
    for table in find_tables(source):
        frame = read_table(table)
        images = vlmevalkit_images(frame)
        for row in frame.to_dict("records"):
            options = [str(row[c]) for c in LETTERS if c in row and not is_missing(row[c])]
            correct = letter_index(row.get("answer"), len(options))
            index = str(row["index"])
            hint = "" if is_missing(row.get("hint")) else str(row["hint"])
            image = decode_image(images.get(index, row.get("image")))
            rotations = range(len(options)) if circular else range(1)
            for shift in rotations:
                order = options[shift:] + options[:shift]
                labels = [LETTERS[i] for i in range(len(order))]
                new_correct = None if correct is None else (correct - shift) % len(options)
                items.append(
                    EvalItem(
                        item_id=index if shift == 0 else f"{index}-c{shift}",
                        benchmark=benchmark,
                        prompt=format_options(str(row["question"]), order, labels, hint=hint),
                        question=str(row["question"]),
                        kind=AnswerKind.CHOICE,
                        answer="" if new_correct is None else LETTERS[new_correct],
                        options=order,
                        labels=labels,
                        correct_index=new_correct,
                        category=str(row.get("category", "")),
                        subcategory="" if is_missing(row.get("l2-category")) else str(row["l2-category"]),
                        group=index,
                        image_bytes=image,
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


def aggregate_mcq(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    metrics = {"accuracy": overall, "count": float(n)}
    per_category = accuracy_by(results, lambda r: r.category)
    if any(r.group != r.item_id for r in results):  # circular rotations present
        circ, n_groups, per_category = group_accuracy(results, lambda r: r.group, lambda r: r.category)
        metrics.update({"accuracy": circ, "row_accuracy": overall, "groups": float(n_groups)})
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
