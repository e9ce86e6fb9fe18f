"""Training data: QA rows + scenes -> a stream mixed per paper Table 7 -> padded batches.

    qa_shards/*/qa.parquet ─┐                     ┌─ task draw (Table 7, 1:7 general) ─┐
    object_references/*/    ├─ pools per task ────┤                                    ├─ Example ─ Collator ─ batch
      scenes.jsonl (images, │  (train scenes)     └─ excluded level -> general sample ─┘
      point maps)          ─┘  + online L0 + general VQA

Split: a scene is held out for validation by a stable hash of its id, so no image is in both splits.
Level ablation (paper 6.3): a draw that falls on an excluded level is replaced by a general VQA sample, so the
remaining tasks' absolute frequencies stay exactly those of the full mixture (same seed -> same draws).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import IterableDataset, get_worker_info

from assets.qa.dataset import read_qa_pairs as load_qa_pairs  # the QA table's one reader (verifies shards)
from assets.qa.formats import METERS_PER_UNIT, to_meters
from assets.qa.l0 import sample_l0
from assets.records import TASK_LEVEL, Level, QAFormat, QAPair, Scene, Task
from assets.stage import DATA_ERRORS, DataError
from assets.storage import load_point_map, load_rgb, read_scenes
from training.config import MAX_DEPTH, DataConfig, PointMapInput, PointMapResize, PromptStyle, RgbResize
from training.inputs import PointMapBatch, model_inputs, prepare_point_map
from training.prompts import official_point_query, pick_format, render_training_pair

GENERAL = "general"
SCENE_STAGE = "object_references"
L0_TASKS = frozenset(t for t, lv in TASK_LEVEL.items() if lv == Level.L0)


@dataclass
class Example:
    """One training example before tokenization."""

    image: np.ndarray  # (S, S, 3) uint8, boxes already drawn
    point_map: np.ndarray  # (4, S, S) float32: xyz (or relative depth) + validity
    prompt: str
    answer: str
    task: str  # a Task value or "general"
    level: str  # "L0".."L3" or "general"
    # validation only: which item this is (per-item results, intervals over scenes) and, for a free-form length
    # question, its ground truth in meters (scored by the SpatialRGPT 25% rule besides exact match)
    item_id: str = ""
    scene_id: str = ""
    value_m: float | None = None


# ------------------------------------------------------------------------------------------ reading inputs


def is_validation_scene(scene_id: str, val_fraction: float) -> bool:
    """Stable (not Python-hash-salted) split of scenes into train / validation."""
    bucket = int.from_bytes(hashlib.sha256(scene_id.encode()).digest()[:4], "little") % 10_000
    return bucket < val_fraction * 10_000


class SceneStore:
    """Scenes of `<root>/object_references/*/scenes.jsonl` and their pixels, with a small decoded-input cache."""

    def __init__(self, root: Path, image_size: int, stage: str = SCENE_STAGE, cache_size: int = 256):
        self.root = Path(root)
        self.image_size = image_size
        self.scenes: dict[str, Scene] = {}
        for path in sorted(self.root.glob(f"{stage}/*/scenes.jsonl")):
            for scene in read_scenes(path):
                self.scenes[scene.scene_id] = scene
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = cache_size

    def raw(self, scene_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, points (H, W, 3) float32 meters, valid (H, W) bool) at the stored resolution."""
        if scene_id in self._cache:
            self._cache.move_to_end(scene_id)
            return self._cache[scene_id]
        scene = self.scenes.get(scene_id)
        if scene is None:
            raise DataError(f"no scene record for {scene_id}")
        rgb = load_rgb(self.root / scene.image_file)
        if scene.depth_file is not None:
            points, valid = load_point_map(self.root / scene.depth_file, scene.intrinsics)
        else:
            points = np.full((*rgb.shape[:2], 3), np.nan, np.float32)
            valid = np.zeros(rgb.shape[:2], bool)
        if points.shape[:2] != rgb.shape[:2]:
            raise DataError(f"{scene_id}: point map {points.shape[:2]} does not match image {rgb.shape[:2]}")
        self._cache[scene_id] = (rgb, points, valid)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return rgb, points, valid


# ------------------------------------------------------------------------------------------ prompts and images


def draw_boxes(rgb: np.ndarray, boxes: Sequence, width: int = 2) -> np.ndarray:
    """Outline QAPair.draw_boxes (pixel coordinates of `rgb`) in their named colours; a numbered mark (`label`,
    past the colour palette) is written on a tag at the box's top-left corner."""
    if not boxes:
        return rgb
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    for box in boxes:
        b = box.box2d
        draw.rectangle([b.x0, b.y0, b.x1 - 1, b.y1 - 1], outline=box.color, width=width)
        label = getattr(box, "label", "")
        if label:
            left, top, right, bottom = draw.textbbox((b.x0, b.y0), label)
            draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=box.color)
            draw.text((b.x0, b.y0), label, fill="black")
    return np.array(image)


def resize_rgb(rgb: np.ndarray, size: int, method: RgbResize = "cv2-bilinear") -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8. `cv2-bilinear` is the official resize (cv2.resize with its
    default INTER_LINEAR: no antialiasing, so a large downscale aliases exactly as the official model saw it);
    `pil-antialias` is PIL's bilinear filter, which widens its support when shrinking."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if method == "cv2-bilinear":
        return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR)
    if method != "pil-antialias":
        raise ValueError(f"unknown RGB resize {method!r}")
    if rgb.shape[:2] == (size, size):
        return np.array(rgb)  # writable copy: torch warns on read-only arrays
    return np.array(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


# ------------------------------------------------------------------------------------------ general VQA


@dataclass
class GeneralItem:
    question: str
    answer: str
    scene_id: str | None = None  # image + point map from a scene
    image_path: Path | None = None  # or an image file (no point map: all invalid)


_CAPTION_QUESTIONS = (
    "Describe the image.",
    "What does this picture show?",
    "Give a short caption for this image.",
    "What is in this image?",
)


def caption_general_items(scenes: Sequence[Scene]) -> list[GeneralItem]:
    """The demo's general VQA: caption questions about the synthetic scenes (stands in for LLaVA data)."""
    return [
        GeneralItem(_CAPTION_QUESTIONS[i % len(_CAPTION_QUESTIONS)], scene.caption, scene_id=scene.scene_id)
        for i, scene in enumerate(scenes)
        if scene.caption.strip()
    ]


def load_llava_items(path: Path) -> list[GeneralItem]:
    """LLaVA-format JSON (list of {"image", "conversations": [{"from": "human"|"gpt", "value"}...]}): every
    human/gpt turn pair becomes one item; image paths are relative to the JSON's directory."""
    path = Path(path)
    records = json.loads(path.read_text())
    if not isinstance(records, list):
        raise DataError(f"{path}: LLaVA data is a JSON list")
    items: list[GeneralItem] = []
    for record in records:
        image = record.get("image")
        turns = record.get("conversations", [])
        for human, gpt in zip(turns[::2], turns[1::2], strict=False):
            if human.get("from") != "human" or gpt.get("from") != "gpt":
                continue
            question = str(human["value"]).replace("<image>", "").strip()
            items.append(
                GeneralItem(question, str(gpt["value"]), image_path=path.parent / image if image else None)
            )
    return items


# ------------------------------------------------------------------------------------------ the task mixture


class TaskMixture:
    """Draws a source per example: general with probability g, else a task by its ratio; excluded levels -> general.

    Ratios are renormalised over the tasks that have data (`available`), which does not depend on the excluded
    levels, so every ablation arm draws the very same sequence up to the replacement.
    """

    def __init__(
        self,
        task_ratios: dict[Task, float],
        general_fraction: float,
        excluded_levels: Sequence[Level] = (),
        available: set[Task] | None = None,
    ):
        tasks = [t for t, r in task_ratios.items() if r > 0 and (available is None or t in available)]
        if not tasks:
            raise DataError("no task of the mixture has data")
        ratios = np.array([task_ratios[t] for t in tasks], dtype=np.float64)
        self.sources: list[str] = [GENERAL, *[t.value for t in tasks]]
        self.probs = np.concatenate([[general_fraction], (1 - general_fraction) * ratios / ratios.sum()])
        self.excluded = {t.value for t in tasks if TASK_LEVEL[t] in set(excluded_levels)}

    def draw(self, rng: np.random.Generator, n: int) -> list[str]:
        picks = rng.choice(len(self.sources), size=n, p=self.probs)
        return [GENERAL if self.sources[i] in self.excluded else self.sources[i] for i in picks]

    def expected_frequencies(self) -> dict[str, float]:
        freq = {s: 0.0 for s in self.sources if s not in self.excluded}
        for source, p in zip(self.sources, self.probs, strict=True):
            freq[GENERAL if source in self.excluded else source] += float(p)
        return freq


# ------------------------------------------------------------------------------------------ examples


@dataclass
class ExampleFactory:
    """Turns a source draw into an Example: a stored QA pair, an online L0 question, or a general item."""

    store: SceneStore
    image_size: int
    point_map_input: PointMapInput
    max_depth: float = MAX_DEPTH  # ModelConfig.max_depth
    rgb_resize: RgbResize = "cv2-bilinear"
    point_map_resize: PointMapResize = "cv2-nearest"
    prompt_style: PromptStyle = "hispatial"
    pairs_by_task: dict[str, list[QAPair]] = field(default_factory=dict)
    l0_scenes: list[str] = field(default_factory=list)
    general: list[GeneralItem] = field(default_factory=list)

    def scene_example(
        self, scene_id: str, prompt: str, answer: str, task: str, level: str, boxes: Sequence = ()
    ) -> Example:
        rgb, points, valid = self.store.raw(scene_id)
        rgb = resize_rgb(draw_boxes(rgb, boxes), self.image_size, self.rgb_resize)
        point_map = self._point_map(points, valid)
        return Example(rgb, point_map, prompt, answer, task, level)

    def _point_map(self, points: np.ndarray, valid: np.ndarray) -> np.ndarray:
        mode = "xyz" if self.point_map_input == "none" else self.point_map_input
        return prepare_point_map(points, valid, self.image_size, mode, self.max_depth, self.point_map_resize)

    def from_pair(self, pair: QAPair, rng: np.random.Generator | None = None) -> Example:
        # without a generator (validation) the official rewrites are seeded by the pair, so they are stable
        rng = rng or np.random.default_rng(
            int.from_bytes(hashlib.sha256(pair.qa_id.encode()).digest()[:8], "little")
        )
        prompt, answer = render_training_pair(
            pair.question, pair.answer, pair.format, self.prompt_style, rng, pair.options, pair.correct_index
        )
        return self.scene_example(
            pair.scene_id, prompt, answer, pair.task.value, pair.level.value, pair.draw_boxes
        )

    def online_l0(self, scene_id: str, task: Task, rng: np.random.Generator) -> Example | None:
        if self.prompt_style == "official" and task == Task.POINT_QUERY:
            # the official L0: a pixel of the model-input point map, named by loc tokens, answered with its xyz
            example = self.scene_example(scene_id, "", "", task.value, Level.L0.value)
            query = official_point_query(example.point_map, rng)
            if query is None:
                return None
            example.prompt, example.answer, _ = query
            return example
        _, points, valid = self.store.raw(scene_id)
        items = sample_l0(points, valid, rng, 1, loc_tokens=True, tasks=[task])
        if not items:
            return None
        item = items[0]
        prompt, answer = render_training_pair(
            item["question"],
            item["answer"],
            item["format"],
            self.prompt_style,
            rng,
            item.get("options", []),
            item.get("correct_index"),
        )
        return self.scene_example(scene_id, prompt, answer, task.value, Level.L0.value)

    def from_general(self, item: GeneralItem) -> Example:
        if item.scene_id is not None:
            return self.scene_example(item.scene_id, item.question, item.answer, GENERAL, GENERAL)
        rgb = (
            resize_rgb(load_rgb(item.image_path), self.image_size, self.rgb_resize)
            if item.image_path
            else None
        )
        if rgb is None:
            raise DataError("general item without an image")
        empty = np.full((self.image_size, self.image_size, 3), np.nan, np.float32)
        point_map = prepare_point_map(
            empty, np.zeros(empty.shape[:2], bool), self.image_size, "xyz", self.max_depth
        )
        return Example(rgb, point_map, item.question, item.answer, GENERAL, GENERAL)

    def make(self, source: str, rng: np.random.Generator) -> Example | None:
        if source == GENERAL:
            return self.from_general(self.general[rng.integers(len(self.general))])
        task = Task(source)
        pool = self.pairs_by_task.get(source, [])
        if task in L0_TASKS and self.l0_scenes and (not pool or rng.random() < 0.5):
            return self.online_l0(self.l0_scenes[rng.integers(len(self.l0_scenes))], task, rng)
        if (
            self.prompt_style == "official"
        ):  # the official format mix: text / MCQ / true-false at 0.3 / 0.4 / 0.3
            fmt = pick_format([p.format for p in pool], self.prompt_style, rng)
            pool = [p for p in pool if p.format == fmt]
        return self.from_pair(pool[rng.integers(len(pool))], rng)

    def available_tasks(self) -> set[Task]:
        tasks = {Task(t) for t, pool in self.pairs_by_task.items() if pool}
        if self.l0_scenes:
            tasks |= set(L0_TASKS)
        return tasks


class MixtureStream(IterableDataset):
    """Endless stream of Examples drawn by the TaskMixture; each worker/rank gets its own seeded generator."""

    def __init__(self, factory: ExampleFactory, mixture: TaskMixture, seed: int, rank: int = 0):
        super().__init__()
        self.factory, self.mixture, self.seed, self.rank = factory, mixture, seed, rank

    def __iter__(self) -> Iterator[Example]:
        worker = get_worker_info()
        # DDP/FSDP: every rank must draw different examples; the rank is known only once the process group exists
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else self.rank
        rng = np.random.default_rng([self.seed, rank, worker.id if worker else 0])
        failures = 0
        while True:
            source = self.mixture.draw(rng, 1)[0]
            try:
                example = self.factory.make(source, rng)
            except DATA_ERRORS:
                # a broken image/point map costs one draw, not the run; a dataset that is all broken stops it
                failures += 1
                if failures > 1000:
                    raise
                continue
            if example is not None:
                yield example


# ------------------------------------------------------------------------------------------ building it all


@dataclass
class TrainingData:
    train: MixtureStream
    val: list[Example]
    mixture: TaskMixture
    stats: dict[str, object]


def build_training_data(
    root: Path,
    config: DataConfig,
    image_size: int,
    point_map_input: PointMapInput,
    seed: int,
    max_depth: float = MAX_DEPTH,
) -> TrainingData:
    """Read the QA dataset and scenes under `root`, split by scene, and build the train stream + val examples."""
    root = Path(root)
    store = SceneStore(root, image_size)
    if not store.scenes:
        raise DataError(f"no scenes under {root}/{SCENE_STAGE}/*/scenes.jsonl")
    pairs, problems = load_qa_pairs(root)
    known = [p for p in pairs if p.scene_id in store.scenes]
    unknown_scene = len(pairs) - len(known)
    train_pairs = [p for p in known if not is_validation_scene(p.scene_id, config.val_fraction)]
    val_pairs = [p for p in known if is_validation_scene(p.scene_id, config.val_fraction)]
    with_depth = [s.scene_id for s in store.scenes.values() if s.depth_file is not None]
    train_scenes = [s for s in with_depth if not is_validation_scene(s, config.val_fraction)]
    val_scenes = [s for s in with_depth if is_validation_scene(s, config.val_fraction)]

    pairs_by_task: dict[str, list[QAPair]] = {}
    for pair in train_pairs:
        pairs_by_task.setdefault(pair.task.value, []).append(pair)
    if config.general_path:
        general = load_llava_items(Path(config.general_path))
    else:
        general = caption_general_items(
            [s for s in store.scenes.values() if not is_validation_scene(s.scene_id, config.val_fraction)]
        )
    if not general and (config.general_fraction > 0 or config.excluded_levels):
        raise DataError("the mixture needs general VQA samples but none were found")
    resizes = {
        "rgb_resize": config.rgb_resize,
        "point_map_resize": config.point_map_resize,
        "prompt_style": config.prompt_style,
        "max_depth": max_depth,
    }
    factory = ExampleFactory(
        store,
        image_size,
        point_map_input,
        **resizes,
        pairs_by_task=pairs_by_task,
        l0_scenes=train_scenes if config.online_l0 else [],
        general=general,
    )
    mixture = TaskMixture(
        config.task_ratios, config.general_fraction, config.excluded_levels, factory.available_tasks()
    )

    val_factory = ExampleFactory(store, image_size, point_map_input, **resizes)
    val = validation_examples(val_factory, val_pairs, val_scenes if config.online_l0 else [], config)
    stats = {
        "num_pairs": len(pairs),
        "num_bad_rows": len(problems),
        "num_pairs_unknown_scene": unknown_scene,
        "num_train_pairs": len(train_pairs),
        "num_val_examples": len(val),
        "num_val_scenes": len({e.scene_id for e in val}),
        "val_items_per_task": {t: sum(e.task == t for e in val) for t in sorted({e.task for e in val})},
        "num_scenes": len(store.scenes),
        "num_train_scenes_l0": len(train_scenes),
        "num_general_items": len(general),
        "mixture": mixture.expected_frequencies(),
        "bad_rows_sample": problems[:5],
    }
    return TrainingData(MixtureStream(factory, mixture, seed), val, mixture, stats)


# ------------------------------------------------------------------------------------------ validation


def split_quota(total: int, available: dict[str, int]) -> dict[str, int]:
    """`total` split as evenly as possible over the keys, none given more than it has; what a short key cannot
    take goes to the others (so a level's quota is met whenever its tasks have enough items together)."""
    quota: dict[str, int] = {}
    remaining = total
    ordered = sorted(available, key=lambda k: (available[k], k))
    for i, key in enumerate(ordered):
        share = -(-remaining // (len(ordered) - i))  # ceil: the remainder goes to the larger pools
        quota[key] = min(available[key], share)
        remaining -= quota[key]
    return quota


def length_truth_m(pair: QAPair) -> float | None:
    """Ground truth in meters of a free-form length question (value + length unit), else None."""
    if pair.format != QAFormat.FREE_FORM or pair.value is None or pair.unit not in METERS_PER_UNIT:
        return None
    return to_meters(float(pair.value), str(pair.unit))


@dataclass(frozen=True)
class _Candidate:
    """A possible validation item: a stored held-out pair, or the `index`-th online L0 question of a scene."""

    task: str
    scene_id: str
    pair: QAPair | None = None
    index: int = 0


def validation_examples(
    factory: ExampleFactory, pairs: Sequence[QAPair], l0_scenes: Sequence[str], config: DataConfig
) -> list[Example]:
    """The held-out examples, each tagged with item and scene id; chosen by `config.val_seed` alone, so every
    training seed and every ablation arm is scored on the very same items (paired comparisons).

    With `val_items_per_level` every level gets that many items (as far as the held-out scenes have them), split
    evenly over its tasks; L0 draws from stored L0 pairs and `val_l0_per_scene` online questions per held-out
    scene and task. Without it: `max_val_items` random pairs plus online L0 on `max_val_items // 4` scenes."""
    rng = np.random.default_rng([config.val_seed, 12345])
    stored = [_Candidate(p.task.value, p.scene_id, p) for p in pairs]
    l0_tasks = sorted(t.value for t in L0_TASKS)
    if config.val_items_per_level is None:
        chosen = [stored[i] for i in rng.permutation(len(stored))[: config.max_val_items]]
        chosen += [
            _Candidate(task, scene_id, None, j)
            for j, scene_id in enumerate(l0_scenes[: max(1, config.max_val_items // 4)])
            for task in l0_tasks
        ]
    else:
        online = [
            _Candidate(task, scene_id, None, j * config.val_l0_per_scene + k)
            for j, scene_id in enumerate(l0_scenes)
            for k in range(config.val_l0_per_scene)
            for task in l0_tasks
        ]
        by_task: dict[str, list[_Candidate]] = {}
        for candidate in stored + online:
            by_task.setdefault(candidate.task, []).append(candidate)
        chosen = []
        for level in Level:
            sizes = {t: len(c) for t, c in by_task.items() if TASK_LEVEL[Task(t)] == level}
            for task, n in split_quota(config.val_items_per_level, sizes).items():
                chosen += [by_task[task][i] for i in sorted(rng.permutation(len(by_task[task]))[:n])]
        chosen += _more_length_questions(stored, chosen, config.val_quantitative_items, rng)
    val: list[Example] = []
    for candidate in chosen:
        try:
            example = _validation_example(factory, candidate, config.val_seed)
        except DATA_ERRORS:
            continue
        if example is not None:
            val.append(example)
    return val


def _more_length_questions(
    stored: Sequence[_Candidate], chosen: Sequence[_Candidate], target: int, rng: np.random.Generator
) -> list[_Candidate]:
    """Held-out L1/L2 free-form length questions not yet chosen, enough to bring their number up to `target`."""

    def is_length(c: _Candidate) -> bool:
        return (
            c.pair is not None and c.pair.level in (Level.L1, Level.L2) and length_truth_m(c.pair) is not None
        )

    have = {id(c) for c in chosen}
    missing = target - sum(is_length(c) for c in chosen)
    pool = [c for c in stored if is_length(c) and id(c) not in have]
    return [pool[i] for i in sorted(rng.permutation(len(pool))[: max(0, missing)])]


def _validation_example(factory: ExampleFactory, candidate: _Candidate, val_seed: int) -> Example | None:
    if candidate.pair is not None:
        example = factory.from_pair(candidate.pair)
        example.item_id, example.value_m = candidate.pair.qa_id, length_truth_m(candidate.pair)
    else:
        task = Task(candidate.task)
        rng = np.random.default_rng([val_seed, candidate.index, 7, sorted(L0_TASKS).index(task)])
        example = factory.online_l0(candidate.scene_id, task, rng)
        if example is None:
            return None
        example.item_id = f"{candidate.scene_id}:online-l0:{task.value}:{candidate.index}"
    example.scene_id = candidate.scene_id
    return example


# ------------------------------------------------------------------------------------------ batching


class Collator:
    """Examples -> model batch. Prompt tokens (image, BOS, question, "\\n") are the bidirectional prefix with label
    -100; answer tokens + EOS are the causal suffix and the only ones with a loss. Padding gets -100 too.

    `pixel_values` is the (B, 3, S, S) RGB; `point_map` the (B, 4, S, S) float32 point maps as a
    `training.inputs.PointMapBatch` (None for RGB-only models); `training.inputs.model_inputs` makes the model's
    (B, 7, S, S) `pixel_values` of them. `prompts` (generation, outside Lightning) returns model inputs directly."""

    def __init__(self, processor, point_map_input: PointMapInput, max_length: int | None = None):
        self.processor = processor
        self.point_map_input = point_map_input
        self.max_length = max_length

    def __call__(self, examples: Sequence[Example]) -> dict[str, object]:
        batch = self.processor(
            text=["<image>" + e.prompt for e in examples],
            images=[e.image for e in examples],
            suffix=[e.answer for e in examples],
            return_tensors="pt",
            padding="longest",
        )
        labels = batch["labels"].clone()
        labels[batch["attention_mask"] == 0] = -100
        return {
            "input_ids": batch["input_ids"],
            "attention_mask": batch["attention_mask"],
            "token_type_ids": batch["token_type_ids"],
            "pixel_values": batch["pixel_values"],
            # apart from the RGB, out of reach of whole-batch precision casts (training.inputs.model_inputs joins them)
            "point_map": None
            if self.point_map_input == "none"
            else PointMapBatch(self._point_maps(examples)),
            "labels": labels,
            "tasks": [e.task for e in examples],
        }

    @staticmethod
    def _point_maps(examples: Sequence[Example]) -> torch.Tensor:
        return torch.from_numpy(np.stack([e.point_map for e in examples])).float()  # (B, 4, S, S)

    def prompts(self, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Inputs for generation: prompts only, left-padded so every answer starts at the same position."""
        tokenizer = self.processor.tokenizer
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        try:
            batch = self.processor(
                text=["<image>" + e.prompt for e in examples],
                images=[e.image for e in examples],
                return_tensors="pt",
                padding="longest",
            )
        finally:
            tokenizer.padding_side = side
        point_map = None if self.point_map_input == "none" else PointMapBatch(self._point_maps(examples))
        return model_inputs({**batch, "point_map": point_map})


def normalize_answer(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower().rstrip("."))
