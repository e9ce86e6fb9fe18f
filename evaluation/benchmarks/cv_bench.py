"""CV-Bench (nyu-visionx/CV-Bench): configs 2D (Count, Relation) and 3D (Depth, Distance), split test.

Released fields: idx, type ("2D"/"3D"), task, source (ADE20K/COCO/Omni3D), prompt (question + options +
instruction), choices (list), answer ("(A)"), image (HF image struct). The release holds test_2d/test_3d both as
parquet and as JSONL (without images): one copy of each is read. Items are read by Cambrian's per-source scripts
(evaluation.official.cv_bench). The official overall accuracy is ((ADE20K acc + COCO acc) / 2 + Omni3D acc) / 2
over all four tasks (Count included); the paper reports CV-Bench-3D (Depth + Distance pooled) and
CV-Bench-2D Relation separately, so both are reported too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.benchmarks.common import (
    LETTERS,
    decode_image,
    find_tables,
    is_missing,
    letter_index,
    one_copy_per_table,
    read_table,
)
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    tables = one_copy_per_table(find_tables(source))
    items: list[EvalItem] = []
    wanted = {(kind, task) for kind, tasks in config.cv_bench_tasks.items() for task in tasks}
    for table in tables:
        frame = read_table(table)
        for row in frame.to_dict("records"):
            kind, task = str(row.get("type", "")), str(row.get("task", ""))
            if (kind, task) not in wanted:
                continue
            choices = [str(c) for c in list(row["choices"])]
            labels = [f"({LETTERS[i]})" for i in range(len(choices))]
            items.append(
                EvalItem(
                    item_id=f"{kind}-{row['idx']}",
                    benchmark="cv_bench",
                    prompt=str(row["prompt"]),
                    question=str(row.get("question", row["prompt"])),
                    kind=AnswerKind.CHOICE,
                    answer=str(row["answer"]),
                    options=choices,
                    labels=labels,
                    correct_index=letter_index(row["answer"], len(choices)),
                    category=f"{kind} {task}",
                    split=str(row.get("source", "")),
                    image_bytes=decode_image(row.get("image")),
                    meta={
                        "source_filename": "" if is_missing(row.get("filename")) else str(row.get("filename"))
                    },
                )
            )
    return items


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    per_source = {k: v["accuracy"] for k, v in accuracy_by(results, lambda r: r.split).items()}
    metrics = {"accuracy": overall, "count": float(n)}
    two_d = [r for r in results if r.category == "2D Relation"]
    three_d = [r for r in results if r.category.startswith("3D")]
    if two_d:
        metrics["cv_bench_2d_relation"] = accuracy(two_d)[0]
    if three_d:
        metrics["cv_bench_3d"] = accuracy(three_d)[0]
    sources_2d = [per_source[s] for s in ("ADE20K", "COCO") if s in per_source]
    if sources_2d and "Omni3D" in per_source:
        metrics["official_overall"] = (float(np.mean(sources_2d)) + per_source["Omni3D"]) / 2
    for source, acc in per_source.items():
        metrics[f"source/{source}"] = acc
    return metrics, accuracy_by(results, lambda r: r.category)
