"""The custom benchmark of paper sec. 8, built by our own pipeline from held-out ground-truth scenes.

- L1 object-to-camera distance: free-form `localization` questions whose ground truth is |center| of the one
  object asked about (docs/CONVENTIONS.md); scored with the SpatialRGPT rule (0.75*gt <= pred <= 1.25*gt).
- L2 relative direction: free-form `relative_direction` questions with a `direction` unit vector (camera frame);
  correct when the predicted xyz is within `angle_threshold_deg` (default 30) of it.
- L3 problem solving: every `problem_solving` question; judgement questions must match, numeric ones must fall
  within `l3_relative_error` of the value. Judged like the paper (LLM judge), or by the rule fallback.

Ground truth is re-derived from the scene records rather than trusted from the QA text: an L1/L2 row whose value
does not match its scene's geometry is rejected with the reason (it would otherwise score models against a wrong
answer). Held-out = whole shards (`heldout_shards`) and/or single scenes (`heldout_scenes`) that training excluded.
Any ground-truth source works: point `root` at a data root laid out by our pipeline (`object_references/<shard>/
scenes.jsonl` + `qa_shards/<shard>/qa.parquet`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from assets.qa.shards import row_to_pair, shard_parquet, written_shards
from assets.records import QAFormat, QAPair, Scene, Task
from assets.stage import DataError, StageReport, process_items
from assets.storage import read_scenes
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.scoring import accuracy, accuracy_by
from evaluation.units import canonical_unit, to_meters
from training.prompts import render_question

L1, L2, L3 = "L1 object-to-camera distance", "L2 object direction", "L3 spatial problem solving"
SCENES_STAGE = "object_references"
# Relative mismatch allowed between a QA row's value and the geometry (answers are rounded to two decimals).
GT_TOLERANCE = 0.05


_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")


def option_labels(answer: str, n: int, correct_index: int | None) -> list[str]:
    """The option labels in the style the QA generator used for this question ("C. 0.57 m" -> A, B, C, ...;
    "II. 24.1 in" -> I, II, III; "3. 0" -> 1, 2, 3; "(b) ..." -> a, b), read off the answer's own label, so the
    extractor looks for the labels the model actually saw. Falls back to A, B, C when the answer has none."""
    m = re.match(r"^\s*\(?([A-Za-z]+|\d+)[).:]\s", answer or "")
    token = m.group(1) if m else ""
    candidates = [
        [str(i + 1) for i in range(n)],
        list(_ROMAN[:n]),
        [chr(ord("A") + i) for i in range(n)],
        [chr(ord("a") + i) for i in range(n)],
    ]
    for labels in candidates:
        if correct_index is not None and correct_index < len(labels) and labels[correct_index] == token:
            return labels
    return [chr(ord("A") + i) for i in range(n)]


def _item(root: Path, scene: Scene, qa: QAPair, config: EvalConfig) -> EvalItem | None:

    common = dict(
        item_id=qa.qa_id,
        benchmark="custom",
        prompt=render_question(qa.question, "hispatial", qa.options, qa.format),
        question=qa.question,
        answer=qa.answer,
        split=qa.shard,
        subcategory=qa.subtask,
        image_path=root / scene.image_file,
        boxes=[(*box.box2d.as_list(), box.color) for box in qa.draw_boxes],
        depth_path=(root / scene.depth_file) if scene.depth_file else None,
        intrinsics=scene.intrinsics.model_dump(),
        meta={"scene_id": scene.scene_id, "unit": qa.unit or ""},
    )
    if qa.task == Task.LOCALIZATION and qa.format == QAFormat.FREE_FORM and qa.value is not None:
        if len(qa.object_ids) != 1 or not canonical_unit(qa.unit or "m"):
            return None
        truth = float(np.linalg.norm(scene.object_by_id(qa.object_ids[0]).box3d.center_cam))
        stated = to_meters(qa.value, qa.unit or "m")
        if abs(stated - truth) > GT_TOLERANCE * truth:
            return None  # a localization question about something else than distance to the camera
        return EvalItem(kind=AnswerKind.LENGTH, value=truth, category=L1, **common)
    if qa.task == Task.RELATIVE_DIRECTION and qa.format == QAFormat.FREE_FORM and qa.direction is not None:
        if len(qa.object_ids) != 2:
            raise DataError(f"{qa.qa_id}: a direction question needs two objects, has {qa.object_ids}")
        a, b = (np.asarray(scene.object_by_id(i).box3d.center_cam) for i in qa.object_ids)
        truth = (b - a) / np.linalg.norm(b - a)
        stated = np.asarray(qa.direction, dtype=np.float64)
        if np.degrees(np.arccos(np.clip(stated.dot(truth) / np.linalg.norm(stated), -1, 1))) > 5.0:
            raise DataError(f"{qa.qa_id}: stated direction disagrees with the scene's boxes")
        return EvalItem(kind=AnswerKind.VECTOR, direction=tuple(truth.tolist()), category=L2, **common)
    if qa.task == Task.PROBLEM_SOLVING:
        labels = option_labels(qa.answer, len(qa.options), qa.correct_index)
        return EvalItem(
            kind=AnswerKind.JUDGED,
            value=qa.value,
            options=list(qa.options),
            labels=labels,
            correct_index=qa.correct_index,
            category=L3,
            **common,
        )
    return None


def _heldout_scene(scene_id: str, listed: set[str], config: EvalConfig) -> bool:
    if scene_id in listed:
        return True
    if config.heldout_val_fraction is None:
        return False
    from training.data import is_validation_scene  # the very split training used

    return is_validation_scene(scene_id, config.heldout_val_fraction)


def build_custom_benchmark(root: Path, config: EvalConfig) -> tuple[list[EvalItem], StageReport]:
    """EvalItems of the held-out shards/scenes, and a report of what was rejected and why."""
    root = Path(root)
    shards = written_shards(root)
    if config.heldout_shards:
        missing = sorted(set(config.heldout_shards) - set(shards))
        if missing:
            raise DataError(f"held-out shards without qa.parquet: {missing}")
        shards = list(config.heldout_shards)
    elif not config.heldout_scenes and config.heldout_val_fraction is None:
        raise DataError(
            "the custom benchmark needs held-out shards or scenes "
            "(EvalConfig.heldout_shards, heldout_scenes or heldout_val_fraction)"
        )
    heldout_scenes = set(config.heldout_scenes)
    report = StageReport(stage="custom_benchmark", shard="+".join(shards), output_dir=root)
    items: list[EvalItem] = []
    for shard in shards:
        scenes = {s.scene_id: s for s in read_scenes(root / SCENES_STAGE / shard / "scenes.jsonl")}
        rows = pq.read_table(shard_parquet(root, shard)).to_pylist()
        if not config.heldout_shards:
            rows = [r for r in rows if _heldout_scene(str(r.get("scene_id")), heldout_scenes, config)]

        def build(row: dict, scenes: dict[str, Scene] = scenes) -> EvalItem | None:
            qa = row_to_pair(row)
            if qa.scene_id not in scenes:
                raise DataError(f"scene {qa.scene_id} not in {SCENES_STAGE}/{qa.shard}")
            return _item(root, scenes[qa.scene_id], qa, config)

        items += process_items(rows, build, report, lambda r: str(r.get("qa_id", "?")))
    if config.custom_max_per_level:
        items = sample_per_level(items, config.custom_max_per_level)
    report.num_out = len(items)
    report.metadata = {level: sum(i.category == level for i in items) for level in (L1, L2, L3)}
    report.metadata |= {
        f"{level.split(' ')[0]} scenes": len({i.meta["scene_id"] for i in items if i.category == level})
        for level in (L1, L2, L3)
    }
    return items, report


def sample_per_level(items: list[EvalItem], per_level: int) -> list[EvalItem]:
    """At most `per_level` items per level, chosen by a hash of the item id: the same items whatever the shard
    order, spread over all held-out scenes (the first N rows would come from the first few scenes, and questions
    of one scene are correlated, so they would say less than N items spread out). Order is kept.

    Size: a 95% interval of +-2.5 points near 50% accuracy needs 1537 items
    (evaluation.intervals.items_for_half_width), more where one scene's questions agree (its design effect)."""

    def rank(item: EvalItem) -> bytes:
        return hashlib.sha256(item.item_id.encode()).digest()

    chosen: set[int] = set()
    for level in sorted({i.category for i in items}):
        of_level = sorted(
            (i for i, item in enumerate(items) if item.category == level), key=lambda i: rank(items[i])
        )
        chosen.update(of_level[:per_level])
    return [item for i, item in enumerate(items) if i in chosen]


def aggregate(items: list[EvalItem], results: list[ItemResult], config: EvalConfig):
    overall, n = accuracy(results)
    per_level = accuracy_by(results, lambda r: r.category)
    metrics = {"accuracy": overall, "count": float(n)}
    for level, stats in per_level.items():
        metrics[level.split(" ")[0]] = stats["accuracy"]
    return metrics, per_level
