"""Q-Spatial Bench (andrewliao11/Q-Spatial-Bench): splits QSpatial_plus (101) and QSpatial_scannet (170); fields
question, answer_value, answer_unit, question_type, image_path, image.

Success iff max(pred/gt, gt/pred) < 2 (strict), both in centimetres. The default score is the authors' notebook
evaluator (evaluation.official.qspatial: last `scalar{}` with or without its backslash, its digit runs averaged,
last `distance_unit{}`, unknown unit x1); our `lenient` reading also takes free-text answers. The paper's "Avg."
pools both splits.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import decode_image, find_tables, is_missing, one_copy_per_table, read_table
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by
from evaluation.units import to_meters

SPLITS = ("QSpatial_plus", "QSpatial_scannet")
OFFICIAL_FORMAT = " Use the format \\scalar{value} \\distance_unit{unit} in your answer, e.g. \\scalar{3} \\distance_unit{meters}."


def _split_of(path: Path, row: dict) -> str:
    for split in SPLITS:
        if split.lower() in str(path).lower().replace("-", "_"):
            return split
    return str(row.get("split", "QSpatial"))


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    for table in one_copy_per_table(find_tables(source)):
        frame = read_table(table)
        if "answer_value" not in frame.columns:
            continue
        for i, row in enumerate(frame.to_dict("records")):
            split = _split_of(table, row)
            value_m = to_meters(float(row["answer_value"]), str(row["answer_unit"]))
            question = str(row["question"])
            image = decode_image(row.get("image"))  # QSpatial_scannet: none; rendered by the authors' script
            items.append(
                EvalItem(
                    item_id=f"{split}-{i}",
                    benchmark="qspatial",
                    prompt=question + (OFFICIAL_FORMAT if config.qspatial_official_prompt else ""),
                    question=question,
                    kind=AnswerKind.LENGTH,
                    answer=f"{row['answer_value']} {row['answer_unit']}",
                    value=value_m,
                    category=str(row.get("question_type", "")),
                    split=split,
                    image_bytes=image,
                    image_path=(
                        Path(config.qspatial_image_root) / str(row["image_path"])
                        if image is None
                        and config.qspatial_image_root
                        and not is_missing(row.get("image_path"))
                        else None
                    ),
                    meta={
                        "image_path": str(row.get("image_path", "")),
                        "answer_value": float(row["answer_value"]),
                        "answer_unit": str(row["answer_unit"]),
                    },
                )
            )
    return items


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    metrics = {"accuracy": overall, "count": float(n)}
    for split, stats in accuracy_by(results, lambda r: r.split).items():
        metrics[f"split/{split}"] = stats["accuracy"]
    return metrics, accuracy_by(results, lambda r: f"{r.split}/{r.category}")
