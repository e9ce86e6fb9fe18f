"""filtered_images: keep the scenes worth asking spatial questions about (paper section 7.1).

The cheap pixel heuristics always run: an image whose shorter side is under `min_image_side` pixels (a 1x1
tracking pixel, a 1x640 rule line) has nothing to ask about and breaks the models' patch grids; more than 35% pure
white or pure black pixels marks a chart, form or GUI
screenshot, and more than 50% invalid depth (when a depth map exists) means there is little 3D to ask about. The
CLIP tag filter and the VLM filter of the paper are model calls owned by the in-the-wild path; they plug in through
the `ImageFilter` protocol and run only on images that survived the heuristics (they are the expensive ones).

Images are not copied: the output records point at the source stage's files (paths are relative to the data root).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assets.records import Scene
from assets.scene_stage import load_scene_rgb, run_scene_stage
from assets.stage import DataError, StageReport, model_errors
from assets.storage import decode_depth_png

STAGE = "filtered_images"
UPSTREAM = "source_images"


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the pixel heuristics (paper 7.1).

    `extreme_tolerance`: a pixel counts as pure white/black when every channel is within this many levels of
    255/0. The paper says "pure"; a tolerance of 2 absorbs JPEG ringing on flat white backgrounds without letting
    photographic near-whites through.
    """

    max_extreme_fraction: float = 0.35
    max_invalid_depth_fraction: float = 0.50
    extreme_tolerance: int = 2
    min_image_side: int = 32  # shorter side, pixels; 1 keeps every decodable image

    def __post_init__(self) -> None:
        if self.min_image_side < 1:
            raise ValueError("min_image_side must be at least 1")
        for name in ("max_extreme_fraction", "max_invalid_depth_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if not 0 <= self.extreme_tolerance < 128:
            raise ValueError("extreme_tolerance must lie in [0, 128)")


@runtime_checkable
class ImageFilter(Protocol):
    """A model-based filter (CLIP tags, a VLM prompt): returns (keep, reason); the reason is recorded on rejection."""

    def __call__(self, rgb: np.ndarray, scene: Scene) -> tuple[bool, str]: ...


def extreme_pixel_fraction(rgb: np.ndarray, tolerance: int = 2) -> float:
    """Fraction of pixels whose channels are all >= 255 - tolerance (white) or all <= tolerance (black)."""
    rgb = np.asarray(rgb)
    white = np.all(rgb >= 255 - tolerance, axis=-1)
    black = np.all(rgb <= tolerance, axis=-1)
    return float(np.mean(white | black))


def invalid_depth_fraction(depth: np.ndarray) -> float:
    """Fraction of pixels without a usable depth (NaN, inf, or <= 0)."""
    depth = np.asarray(depth)
    return float(np.mean(~(np.isfinite(depth) & (depth > 0))))


def check_scene(
    root: Path,
    scene: Scene,
    config: FilterConfig,
    clip_filter: ImageFilter | None = None,
    vlm_filter: ImageFilter | None = None,
) -> Scene:
    """Return the scene annotated with its filter statistics, or raise DataError with the reason to reject it."""
    rgb = load_scene_rgb(root, scene)
    height, width = rgb.shape[:2]
    if (width, height) != (scene.intrinsics.width, scene.intrinsics.height):
        raise DataError(
            f"image size mismatch: {width}x{height} image, intrinsics say "
            f"{scene.intrinsics.width}x{scene.intrinsics.height}"
        )
    if min(width, height) < config.min_image_side:
        raise DataError(
            f"image too small: {width}x{height}, shorter side < min_image_side {config.min_image_side}"
        )
    extreme = extreme_pixel_fraction(rgb, config.extreme_tolerance)
    if extreme > config.max_extreme_fraction:
        raise DataError(f"too many pure white/black pixels: {extreme:.3f} > {config.max_extreme_fraction}")
    metadata: dict[str, float | int | str | bool] = {"extreme_pixel_fraction": round(extreme, 4)}
    if scene.depth_file is not None:
        try:
            depth = decode_depth_png(Path(root) / scene.depth_file)
        except (OSError, KeyError, ValueError, SyntaxError) as err:
            raise DataError(f"unreadable depth: {scene.depth_file}: {err}") from err
        invalid = invalid_depth_fraction(depth)
        # lidar depth is sparse by nature: its holes are unmeasured pixels, not bad ones (assets/omni3d.py)
        if invalid > config.max_invalid_depth_fraction and scene.metadata.get("depth_density") != "sparse":
            raise DataError(f"too much invalid depth: {invalid:.3f} > {config.max_invalid_depth_fraction}")
        metadata["invalid_depth_fraction"] = round(invalid, 4)
    for name, image_filter in (("clip filter", clip_filter), ("vlm filter", vlm_filter)):
        if image_filter is None:
            continue
        with model_errors(name):
            keep, reason = image_filter(rgb, scene)
        if not keep:
            raise DataError(f"{name}: {reason or 'rejected'}")
    return scene.model_copy(update={"metadata": {**scene.metadata, **metadata}})


def filter_shard(
    root: Path,
    shard: str,
    config: FilterConfig | None = None,
    clip_filter: ImageFilter | None = None,
    vlm_filter: ImageFilter | None = None,
) -> StageReport:
    """Filter `source_images/<shard>` into `filtered_images/<shard>` (scenes.jsonl, rejected.jsonl, _manifest.json).

    Every rejected scene, and every malformed record line, appears in rejected.jsonl with its reason.
    """
    config = config or FilterConfig()
    metadata: dict[str, object] = {
        "max_extreme_fraction": config.max_extreme_fraction,
        "max_invalid_depth_fraction": config.max_invalid_depth_fraction,
        "min_image_side": config.min_image_side,
        "clip_filter": clip_filter is not None,
        "vlm_filter": vlm_filter is not None,
    }

    def keep(scene: Scene, report: StageReport, tmp: Path) -> Scene:
        try:
            return check_scene(root, scene, config, clip_filter, vlm_filter)
        finally:  # a model filter's own counters (VLM verdicts, LLM usage) go into the manifest with the rest
            for image_filter in (clip_filter, vlm_filter):
                counters = getattr(image_filter, "metadata", None)
                if callable(counters):
                    metadata.update(counters())

    report = run_scene_stage(
        root,
        STAGE,
        shard,
        UPSTREAM,
        keep,
        extra_preview=lambda s: {"extreme_pixel_fraction": s.metadata.get("extreme_pixel_fraction", "")},
        metadata=metadata,
    )
    return report
