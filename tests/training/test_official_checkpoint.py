"""The official release's checkpoint layout, imported without a second copy of the weights.

`tests/fixtures/official_hispatial/tiny_release/` was written by microsoft/HiSpatial's own `HiSpatialVLM` under the
transformers version it pins (4.50.0): `config.json` from `config.save_pretrained`, `weights.pt` from
`torch.save(model.state_dict())` (make_fixtures_c.py; provenance.json lists every tensor's shape and sum)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import training.checkpoints as checkpoints
from training.checkpoints import _KEY_MAP, import_official

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "official_hispatial" / "tiny_release"


def _ours(key: str) -> str:
    for theirs, ours in _KEY_MAP:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    raise KeyError(key)


def test_release_written_by_the_official_class_imports_tensor_for_tensor():
    provenance = json.loads((RELEASE / "provenance.json").read_text())
    assert provenance["transformers"] == "4.50.0"
    model, _ = import_official(RELEASE)
    state = model.state_dict()
    for key, shape in provenance["keys"].items():
        value = state[_ours(key)]
        assert list(value.shape) == shape, key
        assert value.double().sum().item() == pytest.approx(provenance["sums"][key], rel=1e-6, abs=1e-6), key
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied again after assign
    assert not any(p.is_meta for p in model.parameters()) and not any(b.is_meta for b in model.buffers())
    assert model.config.vision_config.image_size == 28 and model.point_map_input == "xyz"


def test_import_uses_the_loaded_tensors_as_parameters_without_copying(monkeypatch):
    """The weights exist once: the parameters are the memory-mapped tensors torch.load returned."""
    loaded: dict[str, torch.Tensor] = {}
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        state = real_load(*args, **kwargs)
        loaded.update(state)
        return state

    monkeypatch.setattr(checkpoints.torch, "load", spy)
    model, _ = import_official(RELEASE)
    assert calls and calls[0]["mmap"] is True and calls[0]["weights_only"] is True
    params = dict(model.named_parameters(remove_duplicate=False))
    for key, tensor in loaded.items():
        assert params[_ours(key)].data_ptr() == tensor.data_ptr(), key


@pytest.mark.slow
def test_import_peak_memory_holds_one_copy(tmp_path):
    """A ~200 MB release in the official layout: the importing process's peak RSS rises above its resident size
    before the import by less than 0.5 copies (building a random model and then loading the file, as before,
    needs two copies). About 30 s."""
    script = textwrap.dedent(f"""
        import json, resource, sys, torch
        from transformers import Gemma2Config, PaliGemmaConfig, SiglipVisionConfig
        from training.checkpoints import export_official, import_official
        from training.model import HiSpatialForConditionalGeneration
        pg = PaliGemmaConfig(vision_config=SiglipVisionConfig(hidden_size=256, intermediate_size=512,
                             num_hidden_layers=2, num_attention_heads=4, image_size=56, patch_size=14,
                             projection_dim=1024, vision_use_head=False),
                             text_config=Gemma2Config(hidden_size=1024, intermediate_size=4096, num_hidden_layers=2,
                             num_attention_heads=8, num_key_value_heads=4, head_dim=128, vocab_size=16384),
                             image_token_index=16383, projection_dim=1024)
        pg.point_map_input = "xyz"; pg.point_map_frequencies = 32
        if sys.argv[1] == "write":
            export_official(HiSpatialForConditionalGeneration(pg), "{tmp_path}/release")
        else:
            with open("/proc/self/statm") as fh:  # resident pages now, in KB
                base = int(fh.read().split()[1]) * resource.getpagesize() // 1024
            model, _ = import_official("{tmp_path}/release")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            size = sum(p.numel() * p.element_size() for p in model.parameters())
            print(json.dumps({{"grew_kb": peak - base, "size_kb": size // 1024}}))
    """)
    run = [sys.executable, "-c", script]
    env = {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HF_HUB_OFFLINE": "1",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run([*run, "write"], check=True, env=env, timeout=300)
    out = subprocess.run([*run, "read"], check=True, env=env, capture_output=True, text=True, timeout=300)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print("import peak memory", figures)
    assert figures["size_kb"] > 150_000
    assert figures["grew_kb"] < 0.5 * figures["size_kb"], figures
