"""3DSRBench (ccvl/3DSRBench, `3dsrbench_v1_vlmevalkit_circular.tsv`): index, qid, question, A-D, answer (letter),
category (subtype), image (base64), image_url.

Rows are variants of one question: circular option rotations and horizontally flipped images (`-flip` in the
qid). Rows are read by VLMEvalKit's exact matching (evaluation.official.vlmevalkit_mcq) and the settings are
VLMEvalKit's (`setting_rows`): vanilla = every row; flip = each row with its flipped copy; circular = all
rotations of a question (flipped questions apart); flip+circular = all rows of a question. Per subtype figures are
over each setting's reported rows.
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


SETTING_KEYS: dict[str, Callable[[str], str] | None] = {
    "vanilla": None,  # every row on its own
    "flip": lambda qid: qid.replace("-flip", ""),
    "circular": circular_group,
    "flip+circular": lambda qid: qid[:BASE_LEN],
}


def setting_rows(results: list[ItemResult], setting: str) -> tuple[list[ItemResult], list[bool]]:
    """VLMEvalKit's _3DSRBench.evaluate for one setting: the rows it reports and each one's hit. Vanilla: every row.
    Otherwise each row has a key (flip: qid without '-flip', so a row pairs with its flipped copy of the same
    rotation; circular: qid[:8], or qid[:13] for flipped ids; flip+circular: qid[:8]); the reported rows are those
    whose qid is itself a key, and each is right only if every row with its key is right. `group` holds the qid."""
    if setting not in SETTING_KEYS:
        raise ValueError(f"unknown 3DSRBench setting {setting!r}")
    key_of = SETTING_KEYS[setting]
    if key_of is None:
        return list(results), [r.correct for r in results]
    hits: dict[str, bool] = {}
    for r in results:
        hits[key_of(r.group)] = hits.get(key_of(r.group), True) and r.correct
    main = [r for r in results if r.group in hits]
    return main, [hits[r.group] for r in main]


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    """All four settings as VLMEvalKit reports them (`<setting>/accuracy`, and per subtype `<setting>/<subtype>`
    over that setting's rows), per type and the paper's L2/L3 subsets too; `accuracy` is `config.threedsr_setting`."""
    metrics: dict[str, float] = {}
    headline_categories: dict[str, dict[str, float]] = {}
    for setting in SETTINGS:
        rows, hits = setting_rows(results, setting)
        if not rows:
            continue
        buckets: dict[str, list[bool]] = {}
        for r, hit in zip(rows, hits, strict=True):
            buckets.setdefault(f"subtype/{r.subcategory}", []).append(hit)
            buckets.setdefault(f"type/{r.category}", []).append(hit)
            for subset, subtypes in (("3DSR-L2", L2_SUBTYPES), ("3DSR-L3", L3_SUBTYPES)):
                if r.subcategory in subtypes:
                    buckets.setdefault(subset, []).append(hit)
        overall = 100.0 * sum(hits) / len(hits)
        metrics[f"{setting}/accuracy"] = overall
        metrics[f"{setting}/rows"] = float(len(rows))
        per = {
            name: {"accuracy": 100.0 * sum(v) / len(v), "count": len(v)}
            for name, v in sorted(buckets.items())
        }
        for name, stats in per.items():
            metrics[f"{setting}/{name.split('/', 1)[-1]}"] = stats["accuracy"]
        if setting == config.threedsr_setting:
            headline_categories = {k: v for k, v in per.items() if k.startswith(("type/", "subtype/"))}
            metrics["accuracy"] = overall
            metrics["groups"] = float(len(rows))
    metrics["count"] = float(len(results))
    return metrics, headline_categories
