"""SAM-2 masks prompted by 2D boxes (detector boxes, or a dataset's ground-truth boxes: paper 3.2 / 7.2).

Production: `Sam2Segmenter.from_pretrained("facebook/sam2.1-hiera-large")` (sam2's own hub loader). Tests and
CPU benchmarks: `Sam2Segmenter.tiny()`, the real SAM-2.1 Hiera-T architecture at 256 px with random weights
(INSTALL-NOTES: the predictor's feature sizes must then be set for 256 px).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from assets.records import Box2D

PRODUCTION_MODEL_ID = "facebook/sam2.1-hiera-large"


class Sam2Segmenter:
    def __init__(self, predictor: object) -> None:
        self.predictor = predictor

    @classmethod
    def from_pretrained(cls, model_id: str = PRODUCTION_MODEL_ID, device: str = "cpu") -> Sam2Segmenter:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        return cls(SAM2ImagePredictor.from_pretrained(model_id, device=device))

    @classmethod
    def tiny(cls, seed: int = 0, image_size: int = 256, device: str = "cpu") -> Sam2Segmenter:
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        torch.manual_seed(seed)
        model = build_sam2(
            "configs/sam2.1/sam2.1_hiera_t.yaml",
            ckpt_path=None,
            device=device,
            hydra_overrides_extra=[f"++model.image_size={image_size}"],
        )
        predictor = SAM2ImagePredictor(model)
        stride = image_size // 4
        predictor._bb_feat_sizes = [(stride, stride), (stride // 2, stride // 2), (stride // 4, stride // 4)]
        return cls(predictor)

    @torch.inference_mode()
    def segment(self, rgb: np.ndarray, boxes: Sequence[Box2D]) -> tuple[list[np.ndarray], list[float]]:
        """One boolean (H, W) mask and SAM's predicted IoU per box, in the order of `boxes`."""
        if not boxes:
            return [], []
        self.predictor.set_image(np.ascontiguousarray(rgb))
        prompts = np.array([b.as_list() for b in boxes], dtype=np.float32)
        masks, scores, _ = self.predictor.predict(box=prompts, multimask_output=False)
        masks = np.asarray(masks).reshape(len(boxes), -1, *rgb.shape[:2])[:, 0] > 0
        return list(masks), [float(s) for s in np.asarray(scores).reshape(len(boxes), -1)[:, 0]]
