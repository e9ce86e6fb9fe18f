"""3DSRBench (ccvl/3DSRBench, `3dsrbench_v1_vlmevalkit_circular.tsv`): index, qid, question, A-D, answer (letter),
category (subtype), image (base64), image_url.

Rows are variants of one question: circular option rotations and horizontally flipped images (`-flip` in the
qid). Group accuracy counts a group right only when every row in it is right. Groups per setting (BENCHMARKS.md):
- vanilla: the first non-flip row of each question, alone;
- flip: the first row of the original and of the flipped question, grouped by qid.replace('-flip', '');
- circular: every row, grouped by qid[:8] (qid[:13] for '-flip' ids, so flipped questions are their own group);
- flip+circular: every row, grouped by qid[:8] (the paper's CircularEval including the flips).
Per type and subtype accuracy is computed over groups, never rows.
"""

from __future__ import annotations

from collections.abc import Callable
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
from evaluation.scoring import accuracy_by, group_accuracy

SETTINGS = ("vanilla", "flip", "circular", "flip+circular")
# The paper's ablation subsets (sec. 6.4).
L2_SUBTYPES = (
    "height_higher", "location_above", "location_closer_to_camera", "location_next_to", "multi_object_closer_to",
    "multi_object_facing", "multi_object_parallel", "multi_object_same_direction",
)  # fmt: skip
L3_SUBTYPES = ("orientation_in_front_of", "orientation_on_the_left", "multi_object_viewpoint_towards_object")
BASE_LEN = 8


def subtype_type(subtype: str) -> str:
    return "multi_object" if subtype.startswith("multi_object") else subtype.split("_", 1)[0]


def circular_group(qid: str) -> str:
    return qid[: BASE_LEN + len("-flip")] if "-flip" in qid else qid[:BASE_LEN]


def load(source: Path, config: EvalConfig) -> list[EvalItem]:
    items: list[EvalItem] = []
    for table in find_tables(source, ("*3dsrbench*.tsv", "*.tsv")):
        frame = read_table(table)
        images = vlmevalkit_images(frame)
        for row in frame.to_dict("records"):
            options = [str(row[c]) for c in "ABCD" if c in row and not is_missing(row[c])]
            labels = [LETTERS[i] for i in range(len(options))]
            qid = str(row["qid"])
            subtype = str(row["category"])
            items.append(
                EvalItem(
                    item_id=str(row["index"]),
                    benchmark="3dsrbench",
                    prompt=format_options(str(row["question"]), options, labels),
                    question=str(row["question"]),
                    kind=AnswerKind.CHOICE,
                    answer=str(row["answer"]),
                    options=options,
                    labels=labels,
                    correct_index=letter_index(row["answer"], len(options)),
                    category=subtype_type(subtype),
                    subcategory=subtype,
                    group=qid,
                    image_bytes=decode_image(images.get(str(row["index"]), row.get("image"))),
                    meta={"qid": qid},
                )
            )
        if items:
            break
    return items


def setting_rows(results: list[ItemResult], setting: str) -> tuple[list[ItemResult], Callable[[ItemResult], str]]:
    """The rows a setting scores and the function naming each row's group (`group` holds the qid)."""
    if setting == "vanilla":
        first: dict[str, ItemResult] = {}
        for r in results:
            if "-flip" not in r.group:
                first.setdefault(circular_group(r.group), r)
        return list(first.values()), lambda r: r.group
    if setting == "flip":
        first = {}
        for r in results:
            first.setdefault(circular_group(r.group), r)
        return list(first.values()), lambda r: r.group[:BASE_LEN]
    if setting == "circular":
        return results, lambda r: circular_group(r.group)
    if setting == "flip+circular":
        return results, lambda r: r.group[:BASE_LEN]
    raise ValueError(f"unknown 3DSRBench setting {setting!r}")


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    metrics: dict[str, float] = {}
    headline_categories: dict[str, dict[str, float]] = {}
    for setting in SETTINGS:
        rows, group_of = setting_rows(results, setting)
        overall, n_groups, per_type = group_accuracy(rows, group_of, lambda r: r.category)
        _, _, per_subtype = group_accuracy(rows, group_of, lambda r: r.subcategory)
        metrics[f"{setting}/accuracy"] = overall
        metrics[f"{setting}/groups"] = float(n_groups)
        for name, stats in {**per_type, **per_subtype}.items():
            metrics[f"{setting}/{name}"] = stats["accuracy"]
        for subset, subtypes in (("3DSR-L2", L2_SUBTYPES), ("3DSR-L3", L3_SUBTYPES)):
            chosen = [r for r in rows if r.subcategory in subtypes]
            if chosen:
                metrics[f"{setting}/{subset}"] = group_accuracy(chosen, group_of)[0]
        if setting == config.threedsr_setting:
            headline_categories = {f"type/{k}": v for k, v in per_type.items()}
            headline_categories.update({f"subtype/{k}": v for k, v in per_subtype.items()})
            metrics["accuracy"] = overall
            metrics["groups"] = float(n_groups)
    metrics["row_accuracy"] = accuracy_by(results, lambda r: "all").get("all", {"accuracy": float("nan")})["accuracy"]
    metrics["count"] = float(len(results))
    return metrics, headline_categories
