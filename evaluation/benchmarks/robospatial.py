"""RoboSpatial-Home (chanhee-luke/RoboSpatial-Home): splits context / compatibility / configuration with fields
category, question, answer, img, depth_image, mask. The paper reports the configuration subset (yes/no
questions, official reading: the reply starts with yes/no; ours also accepts "The answer is yes")."""

from __future__ import annotations

from pathlib import Path

from evaluation.benchmarks.common import decode_image, find_tables, read_table
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    subsets = [s.lower() for s in config.robospatial_subsets]
    items: list[EvalItem] = []
    for table in find_tables(source):
        split = next((s for s in subsets if s in table.name.lower()), None)
        named_split = any(s in table.name.lower() for s in ("context", "compatibility", "configuration"))
        if named_split and split is None:
            continue
        for i, row in enumerate(read_table(table).to_dict("records")):
            category = str(row.get("category", split or "")).lower()
            if split is None and category not in subsets:
                continue
            answer = str(row["answer"]).strip()
            items.append(
                EvalItem(
                    item_id=f"{split or category}-{i}",
                    benchmark="robospatial",
                    prompt=str(row["question"]),
                    question=str(row["question"]),
                    kind=AnswerKind.YES_NO,
                    answer="yes" if answer.lower().startswith("yes") else "no",
                    category=split or category,
                    split=split or category,
                    image_bytes=decode_image(row.get("img")),
                    meta={"has_depth": row.get("depth_image") is not None},
                )
            )
    return items


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    per_category = accuracy_by(results, lambda r: r.category)
    metrics = {"accuracy": overall, "count": float(n)}
    if per_category:  # the leaderboard averages categories; the code pools. Both are reported.
        metrics["category_mean"] = sum(v["accuracy"] for v in per_category.values()) / len(per_category)
    return metrics, per_category
