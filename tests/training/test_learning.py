"""A learning test that can fail: the point map must make held-out depth ordering answerable.

Scenes: two walls (left and right half of the image) at independent random depths of 1-8 m, each quadrant painted a
random colour unrelated to depth, so RGB carries no depth cue. Questions: the QA engineer's online L0 sampler
(`assets.qa.l0.sample_l0`, true/false pairwise depth ordering named by `<loc>` tokens). We keep the statements that
say "closer" and name a left-wall pixel first: a tiny model cannot learn to ground 1,024 location tokens in a few CPU
minutes, so the test isolates what the branch is for, reading metric depth from the point map, with the answer
balanced between True and False. The tiny RGB+XYZ model and the RGB-only model get the same data, seed and budget.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from assets.qa.l0 import sample_l0
from assets.records import QAFormat, Task
from training.config import ModelConfig, tiny_train_config
from training.data import Collator, Example
from training.inputs import prepare_point_map
from training.module import HiSpatialModule
from training.train import build_model_and_processor, evaluate_examples

from .blocks import block_points, block_scene

SIZE = 56
PATCH_CENTRES = np.zeros((SIZE, SIZE), bool)
PATCH_CENTRES[7::14, 7::14] = True  # question pixels: one per SigLIP patch


def two_wall_examples(rng: np.random.Generator, num_scenes: int, per_scene: int = 2) -> list[Example]:
    out = []
    while len(out) < num_scenes * per_scene:
        rgb, depth, intrinsics = block_scene(rng, SIZE, grid=2)
        depth[:, : SIZE // 2] = depth[0, 0]
        depth[:, SIZE // 2 :] = depth[0, -1]
        points = block_points(depth, intrinsics)
        point_map = prepare_point_map(points, np.ones((SIZE, SIZE), bool), SIZE)
        items = sample_l0(
            points, PATCH_CENTRES, rng, 8 * per_scene, tasks=[Task.DEPTH_ORDER], formats=[QAFormat.TRUE_FALSE]
        )
        kept = [it for it in items if it["subtask"] == "closer" and it["pixels"][0][0] < SIZE // 2]
        out += [
            Example(rgb, point_map, it["question"], it["answer"], Task.DEPTH_ORDER.value, "L0")
            for it in kept[:per_scene]
        ]
    return out


class FreshScenes(IterableDataset):
    def __init__(self, seed: int):
        self.seed = seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            yield from two_wall_examples(rng, 8)


def train_and_score(variant: str, steps: int, held_out: list[Example]) -> float:
    L.seed_everything(0, verbose=False)
    config = tiny_train_config(
        model=ModelConfig(variant=variant),
        max_steps=steps,
        batch_size=16,
        learning_rate=2e-3,
        warmup_steps=50,
    )
    model, processor = build_model_and_processor(config)
    collator = Collator(processor, config.model.point_map_input)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(
        HiSpatialModule(model, config), DataLoader(FreshScenes(seed=1), batch_size=16, collate_fn=collator)
    )
    metrics, _, _ = evaluate_examples(model, collator, held_out, max_new_tokens=3)
    return metrics["val/accuracy/all"]


@pytest.mark.slow
def test_point_map_makes_depth_ordering_learnable():
    held_out = two_wall_examples(np.random.default_rng(12345), num_scenes=60)
    answers = [e.answer for e in held_out]
    assert 0.35 < sum(a in ("True", "Yes") for a in answers) / len(answers) < 0.65  # chance is about 50%
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine one thread is faster than two fighting
    try:
        xyz = train_and_score("xyz", steps=900, held_out=held_out)
        rgb = train_and_score("rgb", steps=900, held_out=held_out)
    finally:
        torch.set_num_threads(threads)
    print(
        f"held-out depth-ordering accuracy: RGB+XYZ {xyz:.3f}, RGB only {rgb:.3f} ({len(held_out)} questions)"
    )
    assert xyz >= 0.8
    assert xyz - rgb >= 0.2
