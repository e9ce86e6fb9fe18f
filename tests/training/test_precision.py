"""The point map stays float32 from the collator to the point encoder, whatever precision Lightning trains in.

Under `precision="bf16-true"` Lightning's precision plugin casts every floating tensor of a batch before any
module hook runs; a point map riding inside `pixel_values` was cast with it (xyz off by up to 1.6 cm at 0-6 m).
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from training.config import tiny_train_config
from training.data import Collator, Example
from training.inputs import PointMapBatch, model_inputs, prepare_point_map
from training.module import HiSpatialModule
from training.train import build_model_and_processor

SIZE = 56


def _examples(n: int = 4) -> list[Example]:
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(n):
        points = rng.uniform(0.0, 6.0, (SIZE, SIZE, 3)).astype(np.float32)  # mostly not representable in bf16
        point_map = prepare_point_map(points, np.ones((SIZE, SIZE), bool), SIZE)
        image = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        examples.append(Example(image, point_map, "how far is it?", "1.23 m", "localization", "L1"))
    return examples


def test_bf16_true_training_feeds_the_encoder_the_exact_fp32_point_map():
    L.seed_everything(0, verbose=False)
    config = tiny_train_config(max_steps=1, batch_size=4)
    model, processor = build_model_and_processor(config)
    collator = Collator(processor, config.model.point_map_input)
    examples = _examples()
    expected = torch.from_numpy(np.stack([e.point_map for e in examples]))
    # the test can fail: bfloat16 moves these coordinates by up to ~1.6 cm
    assert (expected[:, :3].to(torch.bfloat16).float() - expected[:, :3]).abs().max() > 5e-3

    seen: list[torch.Tensor] = []
    encoder = model.model.depth_encoder
    encoder.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=1,
        precision="bf16-true",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(HiSpatialModule(model, config), DataLoader(examples, batch_size=4, collate_fn=collator))

    assert seen, "the point encoder never ran"
    assert seen[0].dtype == torch.float32
    assert torch.equal(seen[0], expected)  # xyz and validity, bit for bit
    assert next(encoder.parameters()).dtype == torch.bfloat16  # the model itself did train in bf16-true


def test_the_precision_cast_passes_the_point_map_by_and_model_inputs_joins_it():
    from lightning.pytorch.plugins.precision import HalfPrecision

    processor = build_model_and_processor(tiny_train_config())[1]
    examples = _examples(2)
    batch = Collator(processor, "xyz")(examples)
    cast = HalfPrecision("bf16-true").convert_input(batch)
    assert cast["pixel_values"].dtype == torch.bfloat16  # the plugin did cast the RGB
    assert isinstance(cast["point_map"], PointMapBatch) and cast["point_map"].tensor.dtype == torch.float32
    assert cast["point_map"].to(torch.bfloat16).tensor.dtype == torch.float32  # a dtype move is ignored
    pixel_values = model_inputs(cast)["pixel_values"]
    assert pixel_values.shape == (2, 7, SIZE, SIZE) and pixel_values.dtype == torch.float32
    assert torch.equal(pixel_values[:, 3:], torch.from_numpy(np.stack([e.point_map for e in examples])))
    assert model_inputs(Collator(processor, "none")(examples))["pixel_values"].shape == (2, 3, SIZE, SIZE)
