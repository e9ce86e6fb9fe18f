"""EmbSpatial-Bench in its two published layouts:

- the authors' `embspatial_bench.json` (HF Phineas476/EmbSpatial-Bench): data_source, scene_id, question_id,
  question, relation, image (base64), answer_options (4), answer (int index), objects;
- VLMEvalKit's `EmbSpatialBench.tsv`: index, question, options (a JSON / Python list), answer (letter),
  data_source, image (base64).

There is no official scoring code from the authors; the reference is VLMEvalKit's rule path (the letter its
`can_match_option` reads, never the option text; evaluation.official.embspatial). Accuracy pooled and per
data_source.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from evaluation.benchmarks.common import (
    LETTERS,
    decode_image,
    find_tables,
    format_options,
    letter_index,
    one_copy_per_table,
    read_table,
    vlmevalkit_images,
)
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by


def _options(value: object) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = ast.literal_eval(value)
    return [str(o) for o in list(value)]


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    patterns = ("*embspatial*", "*EmbSpatial*", "*.json", "*.tsv")
    for table in one_copy_per_table(find_tables(source, patterns)):
        frame = read_table(table)
        images = vlmevalkit_images(frame)
        for row in frame.to_dict("records"):
            if "answer_options" in row:  # the authors' JSON
                options = _options(row["answer_options"])
                correct, item_id = int(row["answer"]), str(row["question_id"])
                image = row.get("image")
            elif "options" in row:  # VLMEvalKit TSV
                options = _options(row["options"])
                correct, item_id = letter_index(row["answer"], len(options)), str(row["index"])
                image = images.get(item_id, row.get("image"))
            else:
                continue
            labels = [LETTERS[i] for i in range(len(options))]
            items.append(
                EvalItem(
                    item_id=item_id,
                    benchmark="embspatial",
                    prompt=format_options(str(row["question"]), options, labels),
                    question=str(row["question"]),
                    kind=AnswerKind.CHOICE,
                    answer="" if correct is None else options[correct],
                    options=options,
                    labels=labels,
                    correct_index=correct,
                    category=str(row.get("relation", "") or ""),
                    split=str(row.get("data_source", "")),
                    image_bytes=decode_image(image),
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
