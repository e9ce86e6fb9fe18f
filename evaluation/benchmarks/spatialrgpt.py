"""SpatialRGPT-Bench (a8cheng/SpatialRGPT-Bench, `SpatialRGPT-Bench_v1.json`): id, image_info{file_path, height,
width}, text_q, qa_info{type, category, class}, conversations (human turn with `<mask>` per region, gpt turn with
the answer), bbox, rle.

Quantitative categories (distance_data, horizontal_distance_data, vertical_distance_data, width_data, height_data):
success iff 0.75*gt <= pred <= 1.25*gt in meters; direction: clock-hour difference <= 1; qualitative: a judge mark.
The default score is the authors' script (evaluation.official.SpatialRGPTScorer): an LLM judge converts both
answers with the script's own prompts, and its score.json figures are reported (`Quan_overall_acc` pools the
quantitative categories, direction included). Without a judge endpoint our rule reading decides, labelled
"rule fallback". `quantitative_avg` (the five distance categories) is the paper's "Avg.". For a model without
region inputs each `<mask>` becomes "the {class} (highlighted by a {color} box)" and the boxes are drawn on the
image, as the authors do for such baselines.
"""

from __future__ import annotations

import re
from pathlib import Path

from evaluation.benchmarks.common import find_tables, is_missing, read_table
from evaluation.config import EvalConfig
from evaluation.extract import extract_clock, extract_quantity
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.official import spatialrgpt_aggregate
from evaluation.scoring import accuracy, accuracy_by

# The published category names (the authors' evaluate_spatial_with_gpt4.py); "direction" is quantitative too.
QUANTITATIVE = (
    "distance_data",
    "horizontal_distance_data",
    "vertical_distance_data",
    "width_data",
    "height_data",
)
BOX_COLORS = ("red", "blue", "green", "yellow", "purple")


def _region_prompt(text: str, classes: list[str]) -> str:
    counter = iter(range(len(classes) + 100))

    def repl(_: re.Match[str]) -> str:
        k = next(counter)
        name = classes[k] if k < len(classes) else "object"
        return f"the {name} (highlighted by a {BOX_COLORS[k % len(BOX_COLORS)]} box)"

    return re.sub(r"<mask>", repl, text.replace("<image>\n", "").replace("<image>", "")).strip()


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    tables = find_tables(source, ("*SpatialRGPT*.json", "*.json", "*.jsonl"))
    image_root = config.spatialrgpt_image_root or (source if source.is_dir() else source.parent)
    for table in tables:
        for row in read_table(table).to_dict("records"):
            info = row["qa_info"]
            category = str(info["category"])
            classes = [str(c) for c in (info.get("class") or [])]
            turns = list(row["conversations"])
            question = next(str(t["value"]) for t in turns if t["from"] == "human")
            answer = next(str(t["value"]) for t in turns if t["from"] == "gpt")
            prompt = _region_prompt(question, classes)
            image_path = Path(image_root) / str(row["image_info"]["file_path"])
            boxes = [] if is_missing(row.get("bbox")) else [list(b) for b in row["bbox"]]
            kind, value = AnswerKind.JUDGED, None
            if category in QUANTITATIVE:
                kind, value = AnswerKind.LENGTH, extract_quantity(answer, default_unit="m")
            elif category == "direction":
                kind, clock = AnswerKind.CLOCK, extract_clock(answer)
                value = None if clock is None else float(clock)
            items.append(
                EvalItem(
                    item_id=str(row["id"]),
                    benchmark="spatialrgpt",
                    prompt=prompt,
                    question=prompt,
                    kind=kind,
                    answer=answer,
                    value=value,
                    category=category,
                    split=str(info.get("type", "")),
                    image_path=image_path,
                    boxes=[
                        (*(float(v) for v in box[:4]), BOX_COLORS[k % len(BOX_COLORS)])
                        for k, box in enumerate(boxes)
                    ],
                    meta={"num_regions": len(boxes), "text_q": str(row.get("text_q") or prompt)},
                )
            )
        if items:
            break
    return items


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    per_category = accuracy_by(results, lambda r: r.category)
    metrics = {"accuracy": overall, "count": float(n), **spatialrgpt_aggregate(results)}
    quantitative = [r for r in results if r.category in QUANTITATIVE]
    qualitative = [r for r in results if r.split == "qualitative"]
    if quantitative:
        metrics["quantitative_avg"] = accuracy(quantitative)[0]
    if qualitative:
        metrics["qualitative_avg"] = accuracy(qualitative)[0]
    for category, stats in per_category.items():
        metrics[f"category/{category}"] = stats["accuracy"]
    return metrics, per_category
