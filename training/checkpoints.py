"""Checkpoints: our own format (safetensors + JSON + processor) and the official HiSpatial release format.

Our checkpoint directory::

    model.safetensors      weights (tied lm_head stored once)
    config.json            {"paligemma": PaliGemmaConfig dict, "train": TrainConfig, "weights_sha256": ...,
                            "mlflow_run_id": ..., ...}
    processor files        tokenizer + image processor (PaliGemmaProcessor.save_pretrained)

The official release (`lhzzzzzy/HiSpatial-3B`) is `weights.pt` + `config.json` with the transformers-4.x PaliGemma
key layout (`vision_tower.vision_model.*`, `multi_modal_projector.linear.*`, `depth_encoder.conv.*`,
`language_model.model.*`, `language_model.lm_head.*`). It is read with `torch.load(weights_only=True)`, so
loading never unpickles arbitrary objects.

`load_checkpoint` checks `model.safetensors` against the sha256 recorded in config.json at save time, so a
corrupt or swapped weights file fails with its path instead of loading silently (a flipped bit inside a tensor is
valid safetensors). A sharded (FSDP) run is gathered with `full_state_dict` first, so every run, however many
processes trained it, writes this same single-file layout.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import AutoProcessor, PaliGemmaConfig, PaliGemmaProcessor

from assets.storage import atomic_dir, atomic_write_json, write_stage_manifest
from training.config import ModelConfig, TrainConfig
from training.model import HiSpatialForConditionalGeneration, with_point_map_fields

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# (official prefix, ours): transformers 4.x PaliGemma layout <-> 5.x layout of HiSpatialForConditionalGeneration.
# Order matters: the more specific prefix first.
_KEY_MAP: list[tuple[str, str]] = [
    ("language_model.lm_head.", "lm_head."),
    ("language_model.model.", "model.language_model."),
    ("vision_tower.vision_model.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
    ("depth_encoder.", "model.depth_encoder."),
]


def official_to_ours(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename official keys to ours; unknown keys raise (a silent partial load would look like a bad model)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = re.sub(r"^(module\.|_orig_mod\.)", "", key)
        for theirs, ours in _KEY_MAP:
            if key.startswith(theirs):
                out[ours + key[len(theirs) :]] = value
                break
        else:
            raise KeyError(f"unexpected key in official checkpoint: {key}")
    return out


def ours_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of official_to_ours; the tied lm_head is written explicitly, as the release has it."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for theirs, ours in _KEY_MAP:
            if key.startswith(ours):
                out[theirs + key[len(ours) :]] = value.detach().contiguous()  # a view, not a copy
                break
        else:
            raise KeyError(f"key with no official name: {key}")
    if (
        "language_model.lm_head.weight" not in out
    ):  # shares the embedding's storage: torch.save writes it once
        out["language_model.lm_head.weight"] = out["language_model.model.embed_tokens.weight"]
    return out


def _point_map_input_from_keys(state_dict: dict[str, torch.Tensor]) -> str:
    return "xyz" if any(k.startswith("depth_encoder.") for k in state_dict) else "none"


# ------------------------------------------------------------------------------------------ official format


def official_weights_path(path: Path | str) -> Path | None:
    """`weights.pt` of an official release directory (or the file itself), None when `path` is not one."""
    path = Path(path)
    candidate = path / "weights.pt" if path.is_dir() else path
    return candidate if candidate.is_file() and candidate.suffix == ".pt" else None


def read_official_config(config_dir: Path, point_map_input: str) -> PaliGemmaConfig:
    """The release's config.json (a transformers-4.x PaliGemmaConfig: `text_config`, `vision_config`,
    `image_token_index`, `projection_dim`) plus the two point-map fields our model reads."""
    if not (Path(config_dir) / "config.json").is_file():
        raise FileNotFoundError(f"{config_dir}: no config.json beside weights.pt (the release ships both)")
    pg = PaliGemmaConfig.from_pretrained(config_dir)
    if pg.model_type != "paligemma":
        raise ValueError(f"{config_dir}/config.json: model_type {pg.model_type!r}, expected 'paligemma'")
    pg.point_map_input = point_map_input
    pg.point_map_frequencies = getattr(pg, "point_map_frequencies", 32)
    pg.vision_config.projection_dim = pg.text_config.hidden_size
    return pg


def import_official(
    path: Path | str, point_map_input: str | None = None
) -> tuple[HiSpatialForConditionalGeneration, PaliGemmaProcessor | None]:
    """Load an official release directory (`weights.pt` + `config.json` [+ processor]) into our model.

    One copy of the weights at any time, at 3B as in the tests: `weights.pt` is memory-mapped
    (`torch.load(mmap=True, weights_only=True)`), the model is built with its parameters on the meta device (no
    storage), and `load_state_dict(assign=True)` makes the mapped tensors the parameters, so nothing is copied and
    pages are read as they are used. `point_map_input` defaults to "xyz" when the weights contain a depth encoder
    ("rel_depth" checkpoints look the same on disk, so say so explicitly for those).
    """
    from accelerate import init_empty_weights

    weights_path = official_weights_path(path)
    if weights_path is None:
        raise FileNotFoundError(f"{path}: no weights.pt (official release layout: weights.pt + config.json)")
    config_dir = weights_path.parent
    # torch.save's zip format can be memory-mapped; a legacy pickle file is read whole (still weights_only)
    mmap = zipfile.is_zipfile(weights_path)
    state = torch.load(weights_path, map_location="cpu", weights_only=True, mmap=mmap)
    if not isinstance(state, dict):
        raise ValueError(f"{weights_path}: expected a state dict, got {type(state).__name__}")
    if "state_dict" in state:  # some trainers nest the weights one level down
        state = state["state_dict"]
    pg = read_official_config(config_dir, point_map_input or _point_map_input_from_keys(state))
    with init_empty_weights(include_buffers=False):  # parameters on meta; buffers (rotary tables) real
        model = HiSpatialForConditionalGeneration(pg)
    ours = official_to_ours(state)
    del state
    missing, unexpected = model.load_state_dict(ours, strict=False, assign=True)
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise ValueError(f"official checkpoint does not fit: missing {missing}, unexpected {unexpected}")
    # assign=True gave lm_head the release's own tensor object; PaliGemma ties it to the embedding, so make them one
    # Parameter again (same values: the release writes the tied matrix twice, or once with shared storage)
    head, embed = ours.get("lm_head.weight"), model.get_input_embeddings().weight
    if head is not None and head.data_ptr() != embed.data_ptr() and not torch.equal(head, embed):
        raise ValueError(
            "official checkpoint has an lm_head that differs from the embedding; PaliGemma ties them"
        )
    model.tie_weights()
    on_meta = [name for name, p in model.named_parameters() if p.is_meta]
    if on_meta:
        raise ValueError(f"official checkpoint left parameters without weights: {on_meta[:5]}")
    processor = None
    if (config_dir / "tokenizer_config.json").exists() or (config_dir / "processor_config.json").exists():
        processor = AutoProcessor.from_pretrained(config_dir)
    return model.eval(), processor


def export_official(model: HiSpatialForConditionalGeneration, directory: Path | str) -> Path:
    """Write `weights.pt` (plain tensors only) + `config.json` in the official layout; tensors are written from
    the model's own storage (no second copy of the weights in memory)."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        torch.save(ours_to_official(model.state_dict()), tmp / "weights.pt")
        model.config.save_pretrained(tmp)
    return directory


# ------------------------------------------------------------------------------------------ our format


def save_checkpoint(
    directory: Path | str,
    model: HiSpatialForConditionalGeneration,
    processor: PaliGemmaProcessor,
    train_config: TrainConfig,
    extra: dict[str, object] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (a reader sees the old one or the new one, never half)."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        save_model(model, str(tmp / WEIGHTS_FILE))
        digest = file_sha256(tmp / WEIGHTS_FILE)
        processor.save_pretrained(tmp)
        # The processor writes no config.json of ours; ours goes last and names everything needed to rebuild.
        atomic_write_json(
            tmp / CONFIG_FILE,
            {
                "format": "hispatial-checkpoint-v1",
                "paligemma": model.config.to_dict(),
                "train": train_config.model_dump(mode="json"),
                "weights_sha256": digest,
                **(extra or {}),
            },
        )
        # The stage manifest every output directory carries (assets/storage.py), written last.
        write_stage_manifest(tmp, stage="checkpoint", shard=directory.name, num_in=1, num_out=1)
    return directory


def read_checkpoint_config(directory: Path | str) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a checkpoint: no {CONFIG_FILE}")
    meta = json.loads(path.read_text())
    if meta.get("format") != "hispatial-checkpoint-v1":
        raise ValueError(f"{path}: not a hispatial checkpoint (format={meta.get('format')!r})")
    return meta


def load_checkpoint(
    directory: Path | str, device: str | torch.device = "cpu"
) -> tuple[HiSpatialForConditionalGeneration, PaliGemmaProcessor, TrainConfig]:
    """Rebuild (model in eval mode, processor, train config) from a directory written by save_checkpoint."""
    directory = Path(directory)
    meta = read_checkpoint_config(directory)
    train_config = TrainConfig.model_validate(meta["train"])
    pg = PaliGemmaConfig.from_dict(meta["paligemma"])
    pg = with_point_map_fields(pg, ModelConfig.model_validate(meta["train"]["model"]))
    model = HiSpatialForConditionalGeneration(pg)
    weights = directory / WEIGHTS_FILE
    verify_weights(weights, meta.get("weights_sha256"))
    try:
        load_model(model, str(weights), strict=True, device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{weights}: cannot load checkpoint weights: {err}") from err
    processor = AutoProcessor.from_pretrained(directory)
    return model.to(device).eval(), processor, train_config


def load_for_inference(
    path: Path | str, device: str | torch.device = "cpu"
) -> tuple[HiSpatialForConditionalGeneration, PaliGemmaProcessor, TrainConfig, bool]:
    """(model in eval mode, processor, train config, is_official_release) for either checkpoint format.

    Ours (`model.safetensors` + our config.json) comes back with the config it was trained with. The official
    release (`weights.pt` + PaliGemma config.json + processor files) comes back with the `official` preset at the
    release's image size, so its preprocessing and prompt style (training.prompts) are the official ones."""
    path = Path(path)
    if (path / WEIGHTS_FILE).exists() or official_weights_path(path) is None:
        model, processor, train_config = load_checkpoint(path, device=device)
        return model, processor, train_config, False
    model, processor = import_official(path)
    if processor is None:
        raise FileNotFoundError(
            f"{path}: the official release needs its processor files (tokenizer_config.json, "
            "preprocessor_config.json) beside weights.pt"
        )
    return model.to(device).eval(), processor, official_train_config(model), True


def official_train_config(model: HiSpatialForConditionalGeneration) -> TrainConfig:
    """How an official release is fed and asked: the `official` preset at the release's own image size."""
    train_config = TrainConfig.preset("official")
    size = int(model.config.vision_config.image_size)
    train_config.model = train_config.model.model_copy(
        update={"image_size": size, "name": f"official-{size}"}
    )
    return train_config


# ------------------------------------------------------------------------------------------ digest and gather


def file_sha256(path: Path | str, chunk_bytes: int = 1 << 24) -> str:
    """sha256 of a file read in 16 MiB chunks (a 3B checkpoint is never held twice in memory to hash it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(path: Path, expected_sha256: str | None) -> None:
    """Raise naming `path` when it is missing or its bytes differ from the digest recorded at save time.

    Checkpoints written before the digest was recorded carry none; they are still loaded, and the safetensors
    header check (in load_model) is then the only check."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint weights file is missing")
    if expected_sha256 is None:
        return
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise ValueError(
            f"{path}: corrupt checkpoint weights: sha256 {actual} differs from {expected_sha256} recorded in "
            f"{path.parent / CONFIG_FILE} when it was saved"
        )


def gather_full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded CPU state dict of `module`, wherever its parameters live.

    Under torch.distributed this is a collective (every rank must call it): FSDP2-sharded DTensors are all-gathered
    and only rank 0 receives the tensors (the other ranks get an empty dict), so a 3B model is materialised once.
    Without a process group (single process, DDP's inner module) it is the plain state_dict on CPU."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
