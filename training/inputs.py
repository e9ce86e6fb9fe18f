"""The point-map half of the model-input contract: camera-frame points -> the (4, S, S) tensor the model reads,
and how a batch carries it to the model (`PointMapBatch`, `model_inputs`).

Data preparation, not model code: training (`training.data`), evaluation and inference (`evaluation.predictors`)
and the official-release checks all build the point map here, so none of them imports the model module. The
prompt half of the contract is `training.prompts.render_question` (our style's rule:
`assets.qa.formats.with_options_listed`). The depth clamp is `ModelConfig.max_depth` (default `MAX_DEPTH`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from training.config import MAX_DEPTH, PointMapInput, PointMapResize


def nearest_source_indices(source: int, target: int, method: PointMapResize = "cv2-nearest") -> np.ndarray:
    """For each of `target` output pixels along one axis, the source pixel a nearest-neighbour resize takes.

    `cv2-nearest` reproduces OpenCV's INTER_NEAREST (the official resize): floor(i * s) with s computed as
    OpenCV does, 1 / (target / source) in double precision, so ties land on the same side; `pixel-center`
    takes the pixel under the output pixel's centre, floor((i + 0.5) * source / target)."""
    i = np.arange(target, dtype=np.float64)
    if method == "cv2-nearest":
        index = np.floor(i * (1.0 / (target / source)))
    elif method == "pixel-center":
        index = np.floor((i + 0.5) * source / target)
    else:
        raise ValueError(f"unknown point-map resize {method!r}")
    return np.minimum(index.astype(np.int64), source - 1)


def prepare_point_map(
    points: np.ndarray,
    valid: np.ndarray,
    size: int,
    mode: PointMapInput = "xyz",
    max_depth: float = MAX_DEPTH,
    resize: PointMapResize = "cv2-nearest",
) -> np.ndarray:
    """Camera-frame point map (H, W, 3) meters + validity (H, W) -> model input (4, size, size) float32.

    Resized with nearest neighbour (interpolating xyz across a depth edge invents points in mid-air), by default
    taking the source pixels cv2 INTER_NEAREST takes (`nearest_source_indices`). As in the official release, values above `max_depth`, inf and NaN become `max_depth`; invalid pixels keep that value and
    a 0 in the mask channel. `rel_depth` replaces xyz by three copies of z normalised over the valid pixels and
    discretised to 0..255 (paper 6.3).
    """
    points = np.asarray(points, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    if points.ndim != 3 or points.shape[-1] != 3 or valid.shape != points.shape[:2]:
        raise ValueError(
            f"point map must be (H, W, 3) with an (H, W) mask, got {points.shape} / {valid.shape}"
        )
    height, width = valid.shape
    rows = nearest_source_indices(height, size, resize)
    cols = nearest_source_indices(width, size, resize)
    xyz = points[rows][:, cols]  # (size, size, 3)
    mask = valid[rows][:, cols] & np.isfinite(xyz).all(axis=-1)  # (size, size)
    if mode == "rel_depth":
        z = xyz[..., 2]
        if mask.any():
            lo, hi = float(z[mask].min()), float(z[mask].max())
            rel = np.round((z - lo) / max(hi - lo, 1e-6) * 255.0)
        else:
            rel = np.zeros_like(z)
        xyz = np.repeat(np.where(mask, np.clip(rel, 0, 255), 0.0)[..., None], 3, axis=-1).astype(np.float32)
    else:
        xyz = np.where(np.isfinite(xyz) & (xyz <= max_depth), xyz, np.float32(max_depth))
    return np.concatenate([xyz.transpose(2, 0, 1), mask[None].astype(np.float32)], axis=0).astype(np.float32)


class PointMapBatch:
    """A batch's (B, 4, S, S) point maps, kept float32 on their way through Lightning.

    Under `precision="bf16-true"` (and "16-true", FSDP/DeepSpeed half precision) Lightning's precision plugin
    casts every floating tensor of the batch (`convert_input`) before any module hook runs; a point map cast to
    bfloat16 is off by up to 1.6 cm at 0-6 m before the model's float32 encoder ever sees it. This holder is not a
    tensor and not a collection, so the cast passes it by, while `.to(device)` (what Lightning's batch transfer
    calls) moves it and never changes its dtype. `model_inputs` puts it back beside the RGB."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor.float()

    def to(
        self,
        device: torch.device | str | torch.dtype | None = None,
        *args: Any,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> PointMapBatch:
        """A move to `device`; a dtype is ignored (the point map stays float32)."""
        if isinstance(device, torch.dtype):
            device = None
        return PointMapBatch(self.tensor.to(device=device, non_blocking=non_blocking))


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")


def model_inputs(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model's keyword inputs from a collated batch: `pixel_values` becomes RGB + the float32 point map
    (B, 7, S, S); torch.cat promotes a bfloat16 RGB to float32, and the model casts RGB to the vision tower's
    dtype and feeds the point map to its float32 encoder. A batch without `point_map` passes through."""
    inputs = {key: batch[key] for key in MODEL_INPUTS}
    point_map = batch.get("point_map")
    if point_map is not None:
        rgb = inputs["pixel_values"]
        inputs["pixel_values"] = torch.cat([rgb, point_map.tensor.to(rgb.device)], dim=1)
    return inputs
