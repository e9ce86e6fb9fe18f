"""Open-vocabulary 2D detection (GroundingDINO) and the clean-up between detector and segmenter.

Production: `GroundingDinoDetector.from_pretrained("IDEA-Research/grounding-dino-base")`. Tests: `.tiny(words)`,
a random-initialised `GroundingDinoForObjectDetection` (tiny Swin backbone, 1-layer BERT text encoder, 32-wide
transformer) with an in-memory WordPiece tokenizer. Random weights find garbage boxes; the tests prove plumbing.

Post-processing (pure functions, tested on numbers): class-agnostic NMS (torchvision.ops.nms), area and
confidence filters, and contained-mask subtraction so a table's mask does not include the cup standing on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import nms

from assets.records import Box2D

PRODUCTION_MODEL_ID = "IDEA-Research/grounding-dino-base"


@dataclass(frozen=True)
class Detection:
    box: Box2D
    category: str
    score: float


def phrase_category(text_label: str, categories: Sequence[str]) -> str | None:
    """Map GroundingDINO's predicted phrase (sub-tokens of the prompt, possibly spanning several phrases) to the
    prompt category it names first; None when it names none."""
    text = text_label.lower()
    hits = [(text.find(c.lower()), -len(c), c) for c in categories if c.lower() in text]
    return min(hits)[2] if hits else None


class GroundingDinoDetector:
    def __init__(
        self,
        model: torch.nn.Module,
        processor: object,
        device: str = "cpu",
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.box_threshold, self.text_threshold = box_threshold, text_threshold

    @classmethod
    def from_pretrained(
        cls, name_or_path: str = PRODUCTION_MODEL_ID, device: str = "cpu", **kwargs: float
    ) -> GroundingDinoDetector:
        from transformers import AutoProcessor, GroundingDinoForObjectDetection

        return cls(
            GroundingDinoForObjectDetection.from_pretrained(name_or_path),
            AutoProcessor.from_pretrained(name_or_path),
            device,
            **kwargs,
        )

    @classmethod
    def tiny(cls, words: Sequence[str], seed: int = 0, **kwargs: float) -> GroundingDinoDetector:
        from transformers import (
            BertConfig,
            GroundingDinoConfig,
            GroundingDinoForObjectDetection,
            GroundingDinoImageProcessor,
            GroundingDinoProcessor,
            SwinConfig,
        )

        from assets.wild.offline import wordpiece_tokenizer

        tokenizer = wordpiece_tokenizer([" . ".join(words) + " ."])
        backbone = SwinConfig(
            image_size=64,
            patch_size=4,
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 1, 1],
            window_size=4,
            out_features=["stage2", "stage3", "stage4"],
        )
        text = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=256,
        )
        config = GroundingDinoConfig(
            backbone_config=backbone,
            text_config=text,
            d_model=32,
            encoder_layers=1,
            decoder_layers=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            num_queries=20,
            max_text_len=64,
        )  # decoder_layers >= 2: the box heads of layers 1.. are tied to layer 0's
        torch.manual_seed(seed)
        processor = GroundingDinoProcessor(
            image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
            tokenizer=tokenizer,
        )
        kwargs = {"box_threshold": 0.0, "text_threshold": 0.0, **kwargs}
        return cls(GroundingDinoForObjectDetection(config), processor, **kwargs)

    @torch.inference_mode()
    def detect(self, rgb: np.ndarray, categories: Sequence[str]) -> list[Detection]:
        """Boxes for the given categories, prompted as GroundingDINO expects ("chair. table. cup.")."""
        if not categories:
            return []
        height, width = rgb.shape[:2]
        prompt = " ".join(f"{c.lower()}." for c in categories)
        inputs = self.processor(images=np.ascontiguousarray(rgb), text=prompt, return_tensors="pt").to(
            self.device
        )
        outputs = self.model(**inputs)
        result = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[(height, width)],
        )[0]
        labels = result["text_labels"] if "text_labels" in result else result["labels"]
        detections = []
        for box, score, label in zip(
            result["boxes"].tolist(), result["scores"].tolist(), labels, strict=True
        ):
            category = phrase_category(str(label), categories)
            x0, y0 = max(0.0, box[0]), max(0.0, box[1])
            x1, y1 = min(float(width), box[2]), min(float(height), box[3])
            if category is None or x1 <= x0 or y1 <= y0:
                continue
            detections.append(Detection(Box2D(x0=x0, y0=y0, x1=x1, y1=y1), category, float(score)))
        return detections


def filter_detections(
    detections: Sequence[Detection],
    image_area: float,
    min_score: float = 0.3,
    min_area_fraction: float = 0.001,
    max_area_fraction: float = 0.9,
    iou_threshold: float = 0.7,
) -> list[Detection]:
    """Confidence and area filters (specks and whole-image boxes are not objects to ask about), then
    class-agnostic NMS: GroundingDINO often returns one object under two phrases."""
    kept = [
        d
        for d in detections
        if d.score >= min_score and min_area_fraction <= d.box.area / image_area <= max_area_fraction
    ]
    if not kept:
        return []
    boxes = torch.tensor([d.box.as_list() for d in kept], dtype=torch.float32)
    scores = torch.tensor([d.score for d in kept], dtype=torch.float32)
    return [kept[i] for i in nms(boxes, scores, iou_threshold).tolist()]


def subtract_contained(masks: Sequence[np.ndarray], containment: float = 0.9) -> list[np.ndarray]:
    """When most of mask A (>= `containment` of its pixels) lies inside a larger mask B, remove A's pixels from B:
    box-prompted SAM masks of a container (a table, a shelf) swallow what stands on it, and the container's
    cloud would then include the cup."""
    masks = [np.asarray(m, dtype=bool).copy() for m in masks]
    areas = [int(m.sum()) for m in masks]
    originals = [m.copy() for m in masks]
    for a, mask_a in enumerate(originals):
        for b, mask_b in enumerate(originals):
            if (
                a != b
                and areas[a]
                and areas[a] < areas[b]
                and (mask_a & mask_b).sum() >= containment * areas[a]
            ):
                masks[b] &= ~mask_a
    return masks
