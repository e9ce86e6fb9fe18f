"""MoGe-2 as the project's `PointMapEstimator` (assets/point_maps.py): metric point map, validity mask, intrinsics.

Production: `MoGeEstimator.from_pretrained("Ruicheng/moge-2-vitl-normal")` (a hub id, or a local `model.pt`
holding {"model_config", "model"}; loaded by dlr-moge with `torch.load(weights_only=True)`). Tests and CPU
benchmarks: `MoGeEstimator.tiny()`, the same `moge.model.v2.MoGeModel` class built from a small config with
random weights (DINOv2 ViT-S/14 backbone, 32-64 wide convolution stacks); its outputs are garbage but have the
real shapes, dtypes and post-processing (focal/shift recovery, metric scale, mask).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from assets.point_maps import PointMapEstimate
from assets.records import Intrinsics
from assets.stage import DataError

PRODUCTION_MODEL_ID = "Ruicheng/moge-2-vitl-normal"


def tiny_moge_config() -> dict[str, Any]:
    """A small MoGe-2 config of the real architecture (widths multiples of 32 for GroupNorm)."""
    levels = 5
    return {
        "encoder": {"backbone": "dinov2_vits14", "intermediate_layers": 4, "dim_out": 64},
        # level 0: encoder features + 2 uv channels; levels 1-4: uv only (see MoGeModel.forward)
        "neck": {
            "dim_in": [64 + 2] + [2] * (levels - 1),
            "dim_res_blocks": [64, 64, 32, 32, 32],
            "dim_out": [None] * levels,
            "resamplers": ["bilinear"] * (levels - 1),
            "num_res_blocks": 1,
        },
        "points_head": {
            "dim_in": [64, 64, 32, 32, 32],
            "dim_res_blocks": [32] * levels,
            "dim_out": [None] * (levels - 1) + [3],
            "resamplers": ["bilinear"] * (levels - 1),
        },
        "mask_head": {
            "dim_in": [64, 64, 32, 32, 32],
            "dim_res_blocks": [32] * levels,
            "dim_out": [None] * (levels - 1) + [1],
            "resamplers": ["bilinear"] * (levels - 1),
        },
        "scale_head": {"dims": [384, 32, 1]},  # 384 = ViT-S class-token width
        "remap_output": "exp",
        "num_tokens_range": [64, 256],
    }


class MoGeEstimator:
    """Batched MoGe-2 inference. fp16 autocast on CUDA only (on CPU it is ~14x slower, INSTALL-NOTES).

    `num_tokens` trades accuracy for speed (the paper's default range is 1200-3600 for the ViT-L model);
    None uses the model's own default (its `num_tokens_range` at resolution level 9).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        device: str = "cpu",
        num_tokens: int | None = None,
        batch_size: int = 4,
        fov_x_deg: float | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.num_tokens = num_tokens
        self.batch_size = batch_size
        self.use_fp16 = self.device.type == "cuda"
        self.fov_x_deg = (
            fov_x_deg  # known horizontal FOV (EXIF, a calibrated rig): MoGe then fits only the shift
        )

    @classmethod
    def from_pretrained(
        cls, name_or_path: str = PRODUCTION_MODEL_ID, device: str = "cpu", **kwargs: Any
    ) -> MoGeEstimator:
        from moge.model.v2 import MoGeModel

        return cls(MoGeModel.from_pretrained(name_or_path), device=device, **kwargs)

    @classmethod
    def tiny(cls, seed: int = 0, device: str = "cpu", num_tokens: int = 64, **kwargs: Any) -> MoGeEstimator:
        from moge.model.v2 import MoGeModel

        torch.manual_seed(seed)
        model = MoGeModel(**tiny_moge_config())  # never init_weights(): it downloads pretrained DINOv2
        return cls(model, device=device, num_tokens=num_tokens, **kwargs)

    def estimate(self, rgb: np.ndarray, known: Intrinsics | None = None) -> PointMapEstimate:
        """With `known` (a ground-truth camera), MoGe-2 is given its horizontal FOV and fits only the shift, so the
        metric points are in that camera's frame."""
        fov_x = None if known is None else math.degrees(2 * math.atan(known.width / (2 * known.fx)))
        result = self.estimate_batch([rgb], fov_x_deg=fov_x)[0]
        if isinstance(result, DataError):
            raise result
        return result

    @torch.inference_mode()
    def estimate_batch(
        self, images: Sequence[np.ndarray], fov_x_deg: float | None = None
    ) -> list[PointMapEstimate | DataError]:
        """Estimate many images; same-sized images share a forward pass, results keep the input order. An image
        the model cannot handle gets a DataError in its slot instead of failing its batch. `fov_x_deg` overrides
        the estimator's own (None: the constructor's, which is None unless the rig is known)."""
        fov_x_deg = self.fov_x_deg if fov_x_deg is None else fov_x_deg
        results: list[PointMapEstimate | DataError | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, rgb in enumerate(images):
            rgb = np.asarray(rgb)
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise DataError(f"expected an (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
            by_size.setdefault(rgb.shape[:2], []).append(index)
        for (height, width), indices in by_size.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = torch.from_numpy(np.stack([np.asarray(images[i]) for i in chunk])).to(self.device)
                batch = batch.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
                out = self.model.infer(
                    batch, num_tokens=self.num_tokens, use_fp16=self.use_fp16, fov_x=fov_x_deg
                )
                points = out["points"].float().cpu().numpy()  # (B, H, W, 3), inf where masked
                mask = out["mask"].cpu().numpy() if "mask" in out else np.ones(points.shape[:3], dtype=bool)
                normalised = out["intrinsics"].float().cpu().numpy()  # (B, 3, 3), in image-size units
                for j, index in enumerate(chunk):
                    valid = mask[j] & np.isfinite(points[j]).all(axis=-1) & (points[j][..., 2] > 0)
                    xyz = np.where(valid[..., None], points[j], np.nan).astype(np.float32)
                    try:
                        intrinsics = _pixel_intrinsics(normalised[j], width, height)
                    except DataError as err:
                        results[index] = err
                        continue
                    results[index] = PointMapEstimate(xyz, valid, intrinsics)
        return [r for r in results if r is not None]


def _pixel_intrinsics(normalised: np.ndarray, width: int, height: int) -> Intrinsics:
    """MoGe's intrinsics are normalised (fx / W, cx / W, ...), with pixel centres at (u + 0.5) / W like ours."""
    fx, fy = float(normalised[0, 0]) * width, float(normalised[1, 1]) * height
    if not (np.isfinite(fx) and np.isfinite(fy) and fx > 0 and fy > 0):
        raise DataError(f"estimator returned unusable focal lengths fx={fx}, fy={fy}")
    return Intrinsics(
        fx=fx,
        fy=fy,
        cx=float(normalised[0, 2]) * width,
        cy=float(normalised[1, 2]) * height,
        width=width,
        height=height,
    )
