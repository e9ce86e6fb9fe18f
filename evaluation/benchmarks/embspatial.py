"""EmbSpatial-Bench (`embspatial_bench.json`): data_source, scene_id, question_id, question, relation, image (base64),
answer_options (4), answer (int index), objects. Accuracy pooled, per relation and per data_source."""

from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import LETTERS, decode_image, find_tables, format_options, read_table
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    for table in find_tables(source, ("*embspatial*", "*.json")):
        for row in read_table(table).to_dict("records"):
            options = [str(o) for o in list(row["answer_options"])]
            labels = [LETTERS[i] for i in range(len(options))]
            items.append(
                EvalItem(
                    item_id=str(row["question_id"]),
                    benchmark="embspatial",
                    prompt=format_options(str(row["question"]), options, labels),
                    question=str(row["question"]),
                    kind=AnswerKind.CHOICE,
                    answer=options[int(row["answer"])],
                    options=options,
                    labels=labels,
                    correct_index=int(row["answer"]),
                    category=str(row.get("relation", "")),
                    split=str(row.get("data_source", "")),
                    image_bytes=decode_image(row.get("image")),
                    meta={"scene_id": str(row.get("scene_id", ""))},
                )
            )
        if items:
            break
    return items


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    metrics = {"accuracy": overall, "count": float(n)}
    for source, stats in accuracy_by(results, lambda r: r.split).items():
        metrics[f"data_source/{source}"] = stats["accuracy"]
    return metrics, accuracy_by(results, lambda r: r.category)
