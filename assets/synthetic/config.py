"""What decides a synthetic shard's content: `SyntheticConfig`, the per-scene generator and scene ids, and
the in-memory `RenderedScene` (the package overview is in `assets/synthetic/__init__.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from assets.records import Scene

STAGE = "source_images"
SOURCE = "synthetic"
GENERATOR_VERSION = "synthetic-v1"


class SyntheticConfig(BaseModel):
    """Everything that decides a synthetic shard's content; two equal configs give byte-identical shards."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(default=448, ge=448, le=2048, description="Square image side in pixels.")
    num_scenes: int = Field(default=64, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0)
    tabletop_fraction: float = Field(default=0.35, ge=0.0, le=1.0, description="Share of tabletop close-ups.")
    objects_per_scene: tuple[int, int] = Field(
        default=(5, 12), description="Objects placed (before visibility)."
    )
    repeat_probability: float = Field(
        default=0.45, ge=0.0, le=1.0, description="Chance that a chosen category comes as 2-4 instances."
    )
    min_visible_pixels: int = Field(
        default=150, ge=1, description="Objects with fewer visible pixels are dropped."
    )
    min_visible_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    hfov_deg: tuple[float, float] = Field(default=(50.0, 75.0), description="Horizontal field of view range.")
    roll_deg: tuple[float, float] = Field(default=(0.5, 6.0), description="Absolute camera roll range.")
    jpeg_quality: int = Field(default=90, ge=50, le=100)
    depth_png_level: int = Field(
        default=6,
        ge=1,
        le=9,
        description="zlib level of the depth PNG: 6 is ~5x faster than 9 for ~7% more bytes.",
    )
    sensor_noise: float = Field(
        default=1.5, ge=0.0, le=20.0, description="Gaussian pixel noise, 0-255 scale."
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="Layouts tried before a scene is rejected."
    )

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticConfig:
        lo, hi = self.objects_per_scene
        if not 1 <= lo <= hi <= 60:
            raise ValueError(
                f"objects_per_scene must satisfy 1 <= lo <= hi <= 60, got {self.objects_per_scene}"
            )
        f0, f1 = self.hfov_deg
        if not 20.0 <= f0 <= f1 <= 110.0:
            raise ValueError(f"hfov_deg must lie within 20-110 and be ordered, got {self.hfov_deg}")
        r0, r1 = self.roll_deg
        if not 0.0 <= r0 <= r1 <= 30.0:
            raise ValueError(f"roll_deg must lie within 0-30 and be ordered, got {self.roll_deg}")
        return self


@dataclass
class RenderedScene:
    """One rendered scene in memory: pixels, exact depth, instance ids, the record, and the camera pose.

    `depth` is camera-frame z in meters (every pixel hits the closed room, so all are valid); `instance_mask` holds
    `SceneObject.instance_id` per pixel (0 = room or an object too hidden to be recorded). `cam_to_world` (4x4) maps
    camera-frame points to the world frame (z up, floor at z = 0); tests use it to check the geometry.
    """

    rgb: np.ndarray
    depth: np.ndarray
    instance_mask: np.ndarray
    scene: Scene
    cam_to_world: np.ndarray
    room_size: tuple[float, float, float]


def scene_id_for(shard: str, index: int) -> str:
    return f"{shard}-{index:04d}"


def scene_rng(seed: int, shard: str, index: int) -> np.random.Generator:
    """Per-scene generator from a stable hash of (seed, shard, index): never Python's salted `hash()`."""
    digest = hashlib.sha256(f"{GENERATOR_VERSION}\0{seed}\0{shard}\0{index}".encode()).digest()
    return np.random.default_rng(np.random.SeedSequence(int.from_bytes(digest[:16], "little")))
