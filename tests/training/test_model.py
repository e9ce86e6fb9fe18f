"""The point-map branch: encoding values, input preparation, zero-initialised fusion, wiring into PaliGemma."""

import math

import numpy as np
import pytest
import torch
from transformers import PaliGemmaForConditionalGeneration

from training.config import MODEL_PRESETS, ModelConfig
from training.inputs import prepare_point_map
from training.model import (
    HiSpatialForConditionalGeneration,
    PointMapEncoder,
    build_random_model,
    from_paligemma,
    paligemma_config,
    sinusoidal_encoding,
)
from training.tokenizer import build_processor

TINY = MODEL_PRESETS["tiny"]


def test_sinusoidal_encoding_pins_channel_order_and_frequencies():
    xyz = torch.tensor([1.0, 2.0, 0.0]).reshape(1, 3, 1, 1)
    enc = sinusoidal_encoding(xyz, 32)[0, :, 0, 0]
    assert enc.shape == (192,)
    # x block: sin(1 * w_k) for k = 0..31, then cos; w_0 = 1, w_1 = 10000^(-1/32) = 0.74989...
    assert enc[0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert enc[1].item() == pytest.approx(math.sin(10000 ** (-1 / 32)), abs=1e-6)
    assert enc[31].item() == pytest.approx(math.sin(10000 ** (-31 / 32)), abs=1e-6)
    assert enc[32].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    # y block starts at 64
    assert enc[64].item() == pytest.approx(math.sin(2.0), abs=1e-6)
    assert enc[97].item() == pytest.approx(math.cos(2.0 * 10000 ** (-1 / 32)), abs=1e-6)
    # z = 0: sines 0, cosines 1
    assert torch.allclose(enc[128:160], torch.zeros(32), atol=1e-7)
    assert torch.allclose(enc[160:192], torch.ones(32), atol=1e-7)


def test_prepare_point_map_clamps_like_the_release_and_resizes_nearest():
    points = np.zeros((4, 4, 3), np.float32)
    points[..., 2] = np.arange(16, dtype=np.float32).reshape(4, 4) + 1
    points[0, 0] = (np.nan, 1.0, 2.0)
    points[0, 1] = (np.inf, -np.inf, 3.0)
    points[0, 2] = (300.0, -300.0, 1.0)
    valid = np.ones((4, 4), bool)
    valid[3, 3] = False
    pm = prepare_point_map(points, valid, size=8)
    assert pm.shape == (4, 8, 8) and pm.dtype == np.float32
    # nearest: output pixel (r, c) reads input (r // 2, c // 2)
    assert pm[2, 7, 0] == pytest.approx(13.0)
    assert pm[2, 4, 6] == pytest.approx(12.0)
    # NaN, +inf, -inf and > 250 become 250; large negative values stay (official release behaviour)
    assert pm[0, 0, 0] == 250.0 and pm[1, 0, 0] == 1.0
    assert pm[0, 0, 2] == 250.0 and pm[1, 0, 2] == 250.0
    assert pm[0, 0, 4] == 250.0 and pm[1, 0, 4] == -300.0
    # mask channel: invalid input pixel and non-finite points are 0
    assert pm[3, 7, 7] == 0.0 and pm[3, 0, 0] == 0.0 and pm[3, 0, 2] == 0.0 and pm[3, 2, 2] == 1.0


def test_relative_depth_is_three_copies_discretised_to_0_255():
    points = np.zeros((2, 2, 3), np.float32)
    points[..., 2] = [[1.0, 2.0], [3.0, 5.0]]
    pm = prepare_point_map(points, np.ones((2, 2), bool), size=2, mode="rel_depth")
    assert np.array_equal(pm[0], [[0.0, 64.0], [128.0, 255.0]])
    assert np.array_equal(pm[0], pm[1]) and np.array_equal(pm[1], pm[2])


def test_point_map_encoder_maps_to_the_siglip_grid():
    encoder = PointMapEncoder(vision_hidden=32, patch_size=14)
    assert encoder.conv.in_channels == 193
    features = encoder(torch.rand(2, 4, 56, 56))
    assert features.shape == (2, 16, 32)
    # Kaiming (fan-in, linear gain): std = 1 / sqrt(193 * 14 * 14)
    assert encoder.conv.weight.std().item() == pytest.approx(1 / math.sqrt(193 * 196), rel=0.05)


def _inputs(processor, batch: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (56, 56, 3), dtype=np.uint8) for _ in range(batch)]
    enc = processor(text=["<image>Which point is closer?"] * batch, images=images, return_tensors="pt")
    return enc


def _point_map(seed: int, batch: int = 2) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    maps = [
        prepare_point_map(rng.uniform(-3, 8, (30, 30, 3)), rng.random((30, 30)) > 0.1, 56)
        for _ in range(batch)
    ]
    return torch.from_numpy(np.stack(maps))


def test_untrained_point_map_half_changes_nothing():
    """Paper 6.2: from pretrained PaliGemma, the fused model answers exactly as before, whatever the point map."""
    torch.manual_seed(0)
    processor = build_processor(56)
    tok = processor.tokenizer
    plain = PaliGemmaForConditionalGeneration(
        paligemma_config(
            TINY.model_copy(update={"variant": "rgb"}), len(tok), tok.convert_tokens_to_ids("<image>")
        )
    ).eval()
    fused = from_paligemma(plain, TINY).eval()
    proj = fused.model.multi_modal_projector.linear.weight
    assert proj.shape == (64, 64)
    assert torch.equal(proj[:, :32], plain.model.multi_modal_projector.linear.weight)
    assert torch.count_nonzero(proj[:, 32:]) == 0

    enc = _inputs(processor)
    args = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc["token_type_ids"],
    }
    with torch.no_grad():
        reference = plain(pixel_values=enc["pixel_values"], **args).logits
        no_map = fused(pixel_values=enc["pixel_values"], **args).logits
        map_a = fused(pixel_values=torch.cat([enc["pixel_values"], _point_map(1)], 1), **args).logits
        map_b = fused(pixel_values=torch.cat([enc["pixel_values"], _point_map(2)], 1), **args).logits
        # a trained point-map half does change the answer: the branch is really wired in
        fused.model.multi_modal_projector.linear.weight[:, 32:].normal_(0, 0.5)
        trained = fused(pixel_values=torch.cat([enc["pixel_values"], _point_map(1)], 1), **args).logits
    assert torch.equal(no_map, reference)
    assert torch.equal(map_a, reference)
    assert torch.equal(map_b, reference)
    assert (trained - reference).abs().max() > 1e-3


def test_random_model_has_zero_point_half_and_generates_with_a_point_map():
    processor = build_processor(56)
    tok = processor.tokenizer
    model = build_random_model(TINY, len(tok), tok.convert_tokens_to_ids("<image>")).eval()
    assert torch.count_nonzero(model.model.multi_modal_projector.linear.weight[:, 32:]) == 0
    enc = _inputs(processor)
    out = model.generate(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        token_type_ids=enc["token_type_ids"],
        pixel_values=torch.cat([enc["pixel_values"], _point_map(3)], 1),
        max_new_tokens=4,
        do_sample=False,
    )
    assert out.shape == (2, enc["input_ids"].shape[1] + 4)
    with pytest.raises(ValueError, match="3 or 7 channels"):
        model(input_ids=enc["input_ids"], pixel_values=torch.zeros(2, 5, 56, 56))


def test_rgb_variant_is_plain_paligemma_shaped():
    processor = build_processor(56)
    tok = processor.tokenizer
    model = build_random_model(ModelConfig(variant="rgb"), len(tok), tok.convert_tokens_to_ids("<image>"))
    assert isinstance(model, HiSpatialForConditionalGeneration)
    assert not hasattr(model.model, "depth_encoder")
    assert model.model.multi_modal_projector.linear.weight.shape == (64, 32)


def test_freeze_vision_tower_leaves_the_rest_trainable():
    processor = build_processor(56)
    tok = processor.tokenizer
    model = build_random_model(TINY, len(tok), tok.convert_tokens_to_ids("<image>"))
    model.freeze_vision_tower()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("model.vision_tower.") for n in trainable)
    assert "model.depth_encoder.conv.weight" in trainable
    assert "model.multi_modal_projector.linear.weight" in trainable
    assert "model.language_model.layers.0.self_attn.q_proj.weight" in trainable
