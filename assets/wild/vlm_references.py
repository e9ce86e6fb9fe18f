"""VLM-written object references with grounding verification (paper 3.2 "Textual reference generation", 7.1).

For each object a VLM (Qwen2.5-VL in the paper; any OpenAI-compatible endpoint through `assets.llm.LLMClient`)
writes four references from simplest to most specific (the four levels of paper Fig. 9). Each is verified by
asking the VLM to ground it: more than one box, or none, means the reference is ambiguous and is dropped; exactly
one box is turned into a mask by SAM (when a segmenter and the object's mask are available, else the box itself
is compared with the object's 2D box) and kept when IoU > 0.7. The simplest passing level wins. Objects with no
passing reference are left out of the returned dict: `assets.references.assign_references` then gives them a
geometric reference or the "[category] (highlighted by the [color] box)" fallback.

Implements `assets.references.ReferenceWriter`: `write(scene, rgb) -> {instance_id: reference}`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from assets.geometry import box2d_iou
from assets.llm import BudgetExceeded, LLMClient, LLMError
from assets.records import Box2D, Scene, SceneObject
from assets.storage import decode_mask_png
from assets.wild.extractor import Segmenter

LEVELS = ("category", "attribute", "relation", "detailed")

WRITE_PROMPT = """You write referring expressions for one object in an image.
The object is a {category} inside the pixel box [x0, y0, x1, y1] = {box} of this {width}x{height} image.
Write four references, each a short noun phrase starting with "the", that a reader could use to find exactly this
object and no other:
1. category: the object's category only, if that alone is unambiguous (e.g. "the sofa");
2. attribute: category plus a visible attribute such as colour, material or size (e.g. "the red mug");
3. relation: category plus its relation to a nearby object or region (e.g. "the chair next to the window");
4. detailed: a detailed description combining attributes and relations.
Never mention the box or its coordinates."""

GROUND_PROMPT = """Locate every object in this {width}x{height} image that matches the description: "{reference}".
Return one pixel box [x0, y0, x1, y1] per matching object; return an empty list if nothing matches."""


class FourLevelReferences(BaseModel):
    category: str = Field(min_length=1)
    attribute: str = Field(min_length=1)
    relation: str = Field(min_length=1)
    detailed: str = Field(min_length=1)


class Grounding(BaseModel):
    boxes: list[list[float]]


class VlmReferenceWriter:
    """Write-then-verify references through one LLMClient (its budget, retries and cache apply).

    `root` is the data root, used to read the object masks the scene points at (`Scene.mask_file`); `stats`
    counts what happened, for asset metadata.
    """

    def __init__(
        self,
        client: LLMClient,
        segmenter: Segmenter | None = None,
        root: Path | None = None,
        iou_threshold: float = 0.7,
        max_objects: int = 20,
    ) -> None:
        self.client, self.segmenter, self.root = client, segmenter, root
        self.iou_threshold, self.max_objects = iou_threshold, max_objects
        self.stats: Counter[str] = Counter()

    def write(self, scene: Scene, rgb: np.ndarray) -> dict[int, str]:
        height, width = rgb.shape[:2]
        masks = self._instance_mask(scene)
        verified: dict[int, str] = {}
        for obj in scene.objects[: self.max_objects]:
            try:
                candidates = self._candidates(obj, rgb, width, height)
                for level, reference in zip(LEVELS, candidates, strict=True):
                    if self._verify(reference, obj, rgb, masks, width, height):
                        verified[obj.instance_id] = reference
                        self.stats[f"verified_{level}"] += 1
                        break
                else:
                    self.stats["unverified"] += 1
            except BudgetExceeded:
                self.stats["budget_exceeded"] += 1
                break  # the run's budget is spent: stop asking, the rest get geometric/fallback references
            except LLMError:
                self.stats["llm_failed"] += 1
        return verified

    def _instance_mask(self, scene: Scene) -> np.ndarray | None:
        if self.segmenter is None or self.root is None or scene.mask_file is None:
            return None
        return decode_mask_png(Path(self.root) / scene.mask_file)

    def _candidates(self, obj: SceneObject, rgb: np.ndarray, width: int, height: int) -> list[str]:
        box = [round(v) for v in obj.box2d.as_list()]
        prompt = WRITE_PROMPT.format(category=obj.category, box=box, width=width, height=height)
        reply = self.client.complete_json(
            [{"role": "user", "content": prompt}], FourLevelReferences, images=[rgb]
        )
        return [" ".join(getattr(reply, level).split()) for level in LEVELS]

    def _verify(
        self,
        reference: str,
        obj: SceneObject,
        rgb: np.ndarray,
        masks: np.ndarray | None,
        width: int,
        height: int,
    ) -> bool:
        prompt = GROUND_PROMPT.format(reference=reference, width=width, height=height)
        reply = self.client.complete_json([{"role": "user", "content": prompt}], Grounding, images=[rgb])
        boxes = [b for b in reply.boxes if len(b) == 4]
        if len(boxes) != 1:
            self.stats["ambiguous" if len(boxes) > 1 else "not_found"] += 1
            return False
        x0, y0, x1, y1 = boxes[0]
        x0, x1 = max(0.0, min(x0, x1)), min(float(width), max(x0, x1))
        y0, y1 = max(0.0, min(y0, y1)), min(float(height), max(y0, y1))
        if x1 <= x0 or y1 <= y0:
            self.stats["not_found"] += 1
            return False
        grounded = Box2D(x0=x0, y0=y0, x1=x1, y1=y1)
        if masks is not None and self.segmenter is not None:
            predicted = self.segmenter.segment(rgb, [grounded])[0][0]
            target = masks == obj.instance_id
            union = np.logical_or(predicted, target).sum()
            iou = float(np.logical_and(predicted, target).sum() / union) if union else 0.0
        else:
            iou = box2d_iou(grounded, obj.box2d)
        if iou <= self.iou_threshold:
            self.stats["low_iou"] += 1
            return False
        return True
