"""The point-map half of the model-input contract: camera-frame points -> the (4, S, S) tensor the model reads.

Data preparation, not model code: training (`training.data`), evaluation and inference (`evaluation.predictors`)
and the official-release checks all build the point map here, so none of them imports the model module. The
prompt half of the contract is `training.prompts.render_question` (our style's rule:
`assets.qa.formats.with_options_listed`). The depth clamp is `ModelConfig.max_depth` (default `MAX_DEPTH`).
"""

from __future__ import annotations

import numpy as np

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
        raise ValueError(f"point map must be (H, W, 3) with an (H, W) mask, got {points.shape} / {valid.shape}")
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
