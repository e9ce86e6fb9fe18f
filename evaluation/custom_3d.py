"""The paper's custom benchmark (sec. 4.1) built straight from any 3D-annotated test split (Omni3D family, CA-1M).

Paper: "a custom benchmark spanning levels 1-3 using 3D-annotated Omni3D data and the CA-1M test set": L1
object-to-camera distance scored as in SpatialRGPT, L2 relative direction between two objects as a camera-frame
unit vector, correct within an angle, L3 spatial problem solving. `evaluation.custom` draws the same three levels
from our own QA shards of held-out scenes; this module needs no QA shard: point it at a test split imported
with `assets.omni3d` / `assets.ca1m` and run through `object_references` (labelled boxes, references, masks),
and it writes the questions itself from the labels:

- L1: "How far is <ref> from the camera?"; ground truth |center_cam| of the labelled box (docs/CONVENTIONS.md),
  scored with the SpatialRGPT rule (0.75 * gt <= pred <= 1.25 * gt).
- L2: the unit vector from A's center to B's, camera frame (x right, y down, z forward); correct within
  `EvalConfig.angle_threshold_deg` (the paper elides its number; 30 degrees by default). Pairs whose centers
  are closer than `min_pair_distance_m` are skipped (their direction is not a property a viewer can see).
- L3: the rule-based problem-solving questions of `assets.qa.l3` on the same scene (judged: exact for
  judgements, `EvalConfig.l3_relative_error` for numbers, as `evaluation.custom`).

Only askable objects (`SceneObject.askable`) are asked about; every labelled object still shapes the references.
Objects named by a numbered mark (crowded scenes, past the colour palette) are skipped: the evaluation
predictors draw coloured boxes but not numbers yet. The items use `evaluation.custom`'s categories, rules
(`evaluation.benchmarks._custom_rules`) and aggregate, so scoring and reports are shared.

As a registered benchmark (`--benchmark custom_3d`): `EvalConfig.data["custom_3d"]` names the test split's
`<root>/object_references/<shard>` directory (`load`).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.qa.config import QAConfig
from assets.qa.context import QAContext, refer
from assets.qa.l3 import generate_l3
from assets.records import DrawBox, QAFormat, Scene, Task
from assets.stage import DataError, StageReport
from assets.storage import read_scenes
from evaluation.config import EvalConfig
from evaluation.custom import L1, L2, L3, option_labels
from evaluation.items import AnswerKind, EvalItem
from training.prompts import render_question

SCENES_STAGE = "object_references"
DIRECTION_FRAME = "the camera's frame (x to the right, y down, z forward)"


@dataclass(frozen=True)
class Custom3DConfig:
    """How many questions per scene and level (the paper has 307 L1, 302 L2 and 78 L3 questions in all)."""

    l1_per_scene: int = 3
    l2_per_scene: int = 3
    l3_per_scene: int = 2
    min_pair_distance_m: float = 0.3
    seed: int = 0


def _rng(scene_id: str, seed: int) -> np.random.Generator:
    digest = hashlib.blake2b(f"custom3d|{seed}|{scene_id}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _boxes(drawn: list[DrawBox]) -> list[tuple[float, float, float, float, str]]:
    return [(*box.box2d.as_list(), box.color) for box in drawn]


def _common(
    root: Path, scene: Scene, item_id: str, question: str, answer: str, references: list[str]
) -> dict:
    """The fields every item shares; `meta["references"]` lists the object phrases the question uses, so a check
    can resolve them against the source's labels."""
    return dict(
        item_id=item_id,
        benchmark="custom_3d",
        prompt=render_question(question, "hispatial", [], QAFormat.FREE_FORM),
        question=question,
        answer=answer,
        split=scene.shard,
        image_path=root / scene.image_file,
        depth_path=(root / scene.depth_file) if scene.depth_file else None,
        intrinsics=scene.intrinsics.model_dump(),
        meta={"scene_id": scene.scene_id, "source": scene.source, "references": references},
    )


def scene_items(root: Path, scene: Scene, config: Custom3DConfig = Custom3DConfig()) -> list[EvalItem]:
    """The L1-L3 items of one labelled scene (module docstring)."""
    if not scene.has_ground_truth_3d:
        raise DataError(
            f"scene {scene.scene_id} has no 3D labels: the custom 3D benchmark needs a labelled split"
        )
    ctx = QAContext.build(scene, QAConfig(seed=config.seed))
    named = {}
    for obj in ctx.objects:
        text, drawn = refer(obj, ctx)
        if not any(box.label for box in drawn):
            named[obj.instance_id] = (text, drawn)
    rng = _rng(scene.scene_id, config.seed)
    objects = [o for o in ctx.objects if o.instance_id in named]
    items: list[EvalItem] = []
    for index in rng.permutation(len(objects))[: config.l1_per_scene]:
        obj = objects[int(index)]
        text, drawn = named[obj.instance_id]
        distance = float(np.linalg.norm(obj.box3d.center_cam))
        question = f"How far is {text} from the camera? Answer in meters."
        items.append(
            EvalItem(
                kind=AnswerKind.LENGTH,
                value=distance,
                category=L1,
                subcategory="distance",
                boxes=_boxes(drawn),
                **_common(
                    root,
                    scene,
                    f"{scene.scene_id}/L1/{obj.instance_id}",
                    question,
                    f"{distance:.2f} m",
                    [text],
                ),
            )
        )
    pairs = [
        (a, b)
        for a, b in itertools.permutations(objects, 2)
        if np.linalg.norm(np.subtract(b.box3d.center_cam, a.box3d.center_cam)) >= config.min_pair_distance_m
    ]
    for index in rng.permutation(len(pairs))[: config.l2_per_scene]:
        a, b = pairs[int(index)]
        (text_a, drawn_a), (text_b, drawn_b) = named[a.instance_id], named[b.instance_id]
        delta = np.subtract(b.box3d.center_cam, a.box3d.center_cam)
        direction = tuple(float(c) for c in delta / np.linalg.norm(delta))
        question = (
            f"In {DIRECTION_FRAME}, what is the unit vector pointing from {text_a} to {text_b}? "
            "Answer as three numbers x y z."
        )
        answer = " ".join(f"{c:.2f}" for c in direction)
        items.append(
            EvalItem(
                kind=AnswerKind.VECTOR,
                direction=direction,
                category=L2,
                subcategory="direction",
                boxes=_boxes(drawn_a + drawn_b),
                **_common(
                    root,
                    scene,
                    f"{scene.scene_id}/L2/{a.instance_id}-{b.instance_id}",
                    question,
                    answer,
                    [text_a, text_b],
                ),
            )
        )
    if ctx.frame is not None and config.l3_per_scene > 0:
        problems = [
            qa
            for qa in generate_l3(ctx)
            if qa.task == Task.PROBLEM_SOLVING and not any(box.label for box in qa.draw_boxes)
        ]
        for qa in problems[: config.l3_per_scene]:
            common = _common(
                root, scene, f"{scene.scene_id}/L3/{qa.qa_id}", qa.question, qa.answer, list(qa.references)
            )
            common["meta"]["unit"] = qa.unit or ""
            common["prompt"] = render_question(qa.question, "hispatial", qa.options, qa.format)
            items.append(
                EvalItem(
                    kind=AnswerKind.JUDGED,
                    value=qa.value,
                    options=list(qa.options),
                    labels=option_labels(qa.answer, len(qa.options), qa.correct_index),
                    correct_index=qa.correct_index,
                    category=L3,
                    subcategory=qa.subtask,
                    boxes=_boxes(qa.draw_boxes),
                    **common,
                )
            )
    return items


def build_custom_3d_benchmark(
    root: Path, shards: list[str], config: Custom3DConfig = Custom3DConfig()
) -> tuple[list[EvalItem], StageReport]:
    """Items from `<root>/object_references/<shard>/scenes.jsonl` of each test-split shard, and a report whose
    rejections name every scene that gave none and why."""
    root = Path(root)
    if not shards:
        raise DataError("the custom 3D benchmark needs at least one test-split shard")
    report = StageReport(stage="custom_3d_benchmark", shard="+".join(shards), output_dir=root)
    items: list[EvalItem] = []
    for shard in shards:
        path = root / SCENES_STAGE / shard / "scenes.jsonl"
        if not path.exists():
            raise DataError(f"{path} does not exist: run the test split through object_references first")
        for scene in read_scenes(path):
            report.num_in += 1
            try:
                got = scene_items(root, scene, config)
            except DataError as err:
                report.reject(scene.scene_id, f"DataError: {err}")
                continue
            if not got:
                report.reject(scene.scene_id, "DataError: no askable object to ask about")
            items += got
    report.num_out = len(items)
    report.metadata = {level: sum(i.category == level for i in items) for level in (L1, L2, L3)}
    return items, report


def load(path: Path, config: EvalConfig) -> list[EvalItem]:
    """The registry's loader: `path` is `<root>/object_references/<shard>` (or its scenes.jsonl)."""
    path = Path(path)
    shard_dir = path.parent if path.name == "scenes.jsonl" else path
    if shard_dir.parent.name != SCENES_STAGE:
        raise DataError(
            f"custom_3d data must be a {SCENES_STAGE}/<shard> directory of a data root, got {path}"
        )
    items, _ = build_custom_3d_benchmark(shard_dir.parent.parent, [shard_dir.name])
    if config.custom_max_per_level:
        kept: dict[str, int] = {}
        limited = []
        for item in items:
            kept[item.category] = kept.get(item.category, 0) + 1
            if kept[item.category] <= config.custom_max_per_level:
                limited.append(item)
        items = limited
    return items
