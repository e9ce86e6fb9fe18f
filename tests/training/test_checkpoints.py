"""Our safetensors checkpoints and the official HiSpatial release layout (import and export)."""

import json
import pickle

import numpy as np
import pytest
import torch

from training.checkpoints import (
    export_official,
    import_official,
    load_checkpoint,
    official_to_ours,
    ours_to_official,
    save_checkpoint,
)
from training.config import tiny_train_config
from training.inputs import prepare_point_map
from training.model import build_random_model
from training.tokenizer import build_processor


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    processor = build_processor(56)
    tok = processor.tokenizer
    config = tiny_train_config()
    model = build_random_model(config.model, len(tok), tok.convert_tokens_to_ids("<image>")).eval()
    with torch.no_grad():  # a "trained" point-map half, so a mapping mistake there would show
        model.model.multi_modal_projector.linear.weight[:, 32:].normal_(0, 0.1)
    return model, processor, config


def _logits(model, processor):
    rng = np.random.default_rng(0)
    enc = processor(
        text=["<image>How far is the box?"],
        images=[rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)],
        return_tensors="pt",
    )
    pm = torch.from_numpy(prepare_point_map(rng.uniform(0.5, 6, (20, 20, 3)), np.ones((20, 20), bool), 56))[
        None
    ]
    with torch.no_grad():
        return model(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            token_type_ids=enc["token_type_ids"],
            pixel_values=torch.cat([enc["pixel_values"], pm], 1),
        ).logits


def test_official_key_names_map_both_ways():
    t = torch.zeros(1)
    official = {
        "vision_tower.vision_model.embeddings.patch_embedding.weight": t,
        "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight": t,
        "vision_tower.vision_model.post_layernorm.bias": t,
        "multi_modal_projector.linear.weight": t,
        "multi_modal_projector.linear.bias": t,
        "depth_encoder.conv.weight": t,
        "depth_encoder.conv.bias": t,
        "language_model.model.embed_tokens.weight": t,
        "language_model.model.layers.3.mlp.down_proj.weight": t,
        "language_model.model.norm.weight": t,
        "language_model.lm_head.weight": t,
    }
    ours = official_to_ours(official)
    assert sorted(ours) == sorted(
        [
            "model.vision_tower.embeddings.patch_embedding.weight",
            "model.vision_tower.encoder.layers.0.self_attn.q_proj.weight",
            "model.vision_tower.post_layernorm.bias",
            "model.multi_modal_projector.linear.weight",
            "model.multi_modal_projector.linear.bias",
            "model.depth_encoder.conv.weight",
            "model.depth_encoder.conv.bias",
            "model.language_model.embed_tokens.weight",
            "model.language_model.layers.3.mlp.down_proj.weight",
            "model.language_model.norm.weight",
            "lm_head.weight",
        ]
    )
    assert sorted(ours_to_official(ours)) == sorted(official)
    with pytest.raises(KeyError, match="unexpected key"):
        official_to_ours({"text_encoder.weight": t})


def test_export_then_import_official_reproduces_the_model(tiny, tmp_path):
    model, processor, _ = tiny
    export_official(model, tmp_path / "release")
    state = torch.load(tmp_path / "release" / "weights.pt", weights_only=True)
    assert state["depth_encoder.conv.weight"].shape == (32, 193, 14, 14)
    assert state["multi_modal_projector.linear.weight"].shape == (64, 64)  # (D, 2 * Cv)
    assert "language_model.lm_head.weight" in state
    assert json.loads((tmp_path / "release" / "config.json").read_text())["model_type"] == "paligemma"
    imported, _ = import_official(tmp_path / "release")
    assert imported.point_map_input == "xyz"
    assert torch.equal(_logits(imported.eval(), processor), _logits(model, processor))


def test_import_hand_written_official_state_dict(tiny, tmp_path):
    """A state dict written directly in the release's layout (not by our exporter) loads weight for weight."""
    model, _, _ = tiny
    release = tmp_path / "hand"
    release.mkdir()
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("model.vision_tower."):
            key = "vision_tower.vision_model." + key.removeprefix("model.vision_tower.")
        elif key.startswith("model.language_model."):
            key = "language_model.model." + key.removeprefix("model.language_model.")
        elif key == "lm_head.weight":
            key = "language_model.lm_head.weight"
        else:
            key = key.removeprefix("model.")
        state[key] = value.clone()
    torch.save(state, release / "weights.pt")
    model.config.save_pretrained(release)
    imported, _ = import_official(release)
    for key, value in model.state_dict().items():
        assert torch.equal(imported.state_dict()[key], value), key


def test_import_refuses_pickled_objects(tmp_path):
    release = tmp_path / "evil"
    release.mkdir()

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(release / "weights.pt", "wb") as fh:
        pickle.dump({"x": Payload()}, fh)
    with pytest.raises(pickle.UnpicklingError):
        import_official(release)


def test_save_and_load_checkpoint_round_trip(tiny, tmp_path):
    model, processor, config = tiny
    directory = save_checkpoint(tmp_path / "ckpt", model, processor, config, extra={"mlflow_run_id": "abc"})
    assert (directory / "model.safetensors").exists()
    meta = json.loads((directory / "config.json").read_text())
    assert meta["mlflow_run_id"] == "abc" and meta["train"]["model"]["variant"] == "xyz"
    loaded, loaded_processor, loaded_config = load_checkpoint(directory)
    assert loaded_config == config
    assert len(loaded_processor.tokenizer) == len(processor.tokenizer)
    assert torch.equal(_logits(loaded, loaded_processor), _logits(model, processor))
    # the tie between lm_head and the embeddings survives the round trip
    assert loaded.lm_head.weight.data_ptr() == loaded.model.language_model.embed_tokens.weight.data_ptr()


def test_load_checkpoint_rejects_a_directory_that_is_not_ours(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    with pytest.raises(ValueError, match="not a hispatial checkpoint"):
        load_checkpoint(tmp_path)


def test_a_corrupt_weights_file_fails_on_load_naming_the_file(tiny, tmp_path):
    """Issue #19 (9): a flipped byte inside a tensor is still valid safetensors, so only the digest recorded at save
    time can catch it; a truncated file must name itself too."""
    model, processor, config = tiny
    directory = save_checkpoint(tmp_path / "ckpt", model, processor, config)
    weights = directory / "model.safetensors"
    meta = json.loads((directory / "config.json").read_text())
    assert len(meta["weights_sha256"]) == 64
    original = weights.read_bytes()

    flipped = bytearray(original)
    flipped[-100] ^= 0x01  # last tensor's data, far past the JSON header
    weights.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"ckpt/model\.safetensors: corrupt checkpoint weights: sha256"):
        load_checkpoint(directory)

    weights.write_bytes(original[: len(original) // 2])
    with pytest.raises(ValueError, match=r"ckpt/model\.safetensors"):
        load_checkpoint(directory)

    weights.write_bytes(original)  # restored: loads again
    load_checkpoint(directory)


def test_a_checkpoint_carries_the_stage_manifest(tiny, tmp_path):
    """The one manifest rule (README): every stage output directory, checkpoints included, has `_manifest.json`
    with its stage, counts and the content digest of everything else in it."""
    import json

    from assets.storage import directory_digest

    model, processor, config = tiny
    directory = save_checkpoint(tmp_path / "ckpt", model, processor, config)
    manifest = json.loads((directory / "_manifest.json").read_text())
    assert manifest["stage"] == "checkpoint" and manifest["shard"] == "ckpt"
    assert manifest["digest"] == directory_digest(directory)
