"""A tiny random checkpoint of the real model class (shared by the inference tests) and a small test image."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_tiny_checkpoint(directory: Path, variant: str = "xyz") -> Path:
    from training.checkpoints import save_checkpoint
    from training.config import tiny_train_config
    from training.model import build_random_model
    from training.tokenizer import build_processor

    processor = build_processor(56)
    tok = processor.tokenizer
    config = tiny_train_config()
    config = config.model_copy(update={"model": config.model.model_copy(update={"variant": variant})})
    model = build_random_model(config.model, len(tok), tok.convert_tokens_to_ids("<image>")).eval()
    return save_checkpoint(directory, model, processor, config)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-xyz")


@pytest.fixture(scope="session")
def tiny_asker(tiny_checkpoint: Path):
    from inference import SpatialAsker

    return SpatialAsker.from_checkpoint(tiny_checkpoint, point_map_model="tiny", max_new_tokens=8)


@pytest.fixture(scope="session")
def plain_asker(tiny_asker):
    """The same loaded model without MoGe-2 (all-invalid point maps), for tests about everything else."""
    from inference import SpatialAsker

    return SpatialAsker(tiny_asker.loaded, estimator=None, max_new_tokens=8)


@pytest.fixture
def room_image(tmp_path: Path) -> Path:
    """A 160x120 picture: a floor gradient with two coloured blocks (any real-looking RGB will do)."""
    rng = np.random.default_rng(0)
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[:] = np.linspace(60, 200, 120, dtype=np.uint8)[:, None, None]
    rgb[30:80, 20:60] = (180, 40, 40)
    rgb[50:100, 100:140] = (40, 60, 180)
    rgb = np.clip(rgb.astype(int) + rng.integers(-8, 8, rgb.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "room.png"
    Image.fromarray(rgb).save(path)
    return path
