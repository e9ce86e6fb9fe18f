"""RoboSpatial-Home (chanhee-luke/RoboSpatial-Home): splits context / compatibility / configuration with fields
category, question, answer, img, depth_image, mask. Two published layouts are read:

- the Hugging Face parquet splits (images as HF image structs);
- the authors' download script (RoboSpatial-Eval download_benchmark.py): one `annotations.json` with every split
  and `img` / `depth_image` / `mask` as paths relative to that file's folder ("images/...png").

Compatibility and configuration are yes/no; context asks for a point and the answer is the polygon it must fall
in. The official reading (RoboSpatial-Eval evaluation.py, evaluation.official.robospatial) is the default score:
the reply starts with "yes"/"no", or the first point read lies in the polygon; the code pools every item. The
paper reports the configuration subset, also given per category.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import decode_image, find_tables, is_missing, one_copy_per_table, read_table
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by

CATEGORIES = ("context", "compatibility", "configuration")


def _image(value: object, folder: Path) -> tuple[bytes | None, Path | None]:
    """(bytes, None) for an embedded image, (None, path) for the download layout's relative path."""
    if isinstance(value, str) and not is_missing(value) and not value.startswith("data:"):
        path = folder / value
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            return None, path
    return decode_image(value), None


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    subsets = [s.lower() for s in config.robospatial_subsets]
    items: list[EvalItem] = []
    for table in one_copy_per_table(find_tables(source)):
        split = next((s for s in subsets if s in table.name.lower()), None)
        named_split = any(s in table.name.lower() for s in CATEGORIES)
        if named_split and split is None:
            continue
        frame = read_table(table)
        if not {"question", "answer"} <= set(frame.columns):
            continue
        for i, row in enumerate(frame.to_dict("records")):
            category = str(row.get("category") or split or "").lower()
            if category not in subsets:
                continue
            answer = str(row["answer"]).strip()
            image_bytes, image_path = _image(row.get("img"), table.parent)
            _, depth_path = _image(row.get("depth_image"), table.parent)
            yes_no = answer.lower() in ("yes", "no")
            items.append(
                EvalItem(
                    item_id=f"{split or category}-{i}",
                    benchmark="robospatial",
                    prompt=str(row["question"]),
                    question=str(row["question"]),
                    kind=AnswerKind.YES_NO if yes_no else AnswerKind.POINT,
                    answer=answer,
                    category=category,
                    split=category,
                    image_bytes=image_bytes,
                    image_path=image_path,
                    meta={
                        "has_depth": not is_missing(row.get("depth_image")),
                        "depth_image": str(depth_path) if depth_path else "",
                    },
                )
            )
    return items


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    per_category = accuracy_by(results, lambda r: r.category)
    metrics = {"accuracy": overall, "count": float(n)}
    for category, stats in per_category.items():
        metrics[f"category/{category}"] = stats["accuracy"]
    if per_category:  # the leaderboard averages categories; the code pools. Both are reported.
        metrics["category_mean"] = sum(v["accuracy"] for v in per_category.values()) / len(per_category)
    return metrics, per_category
