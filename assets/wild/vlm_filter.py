"""VLM image filter: the last of the paper's three web-image filters (paper 7.1, step 3 "VLM-based filtering").

The CLIP tag vote (`assets.wild.clip.ClipTagFilter`) and the pixel heuristics (`assets.filtering`) remove most
charts, forms, GUIs and code snippets; the paper then asks a VLM (Qwen2.5-VL, "following RoboRefer ... to identify
and remove images that still lack meaningful spatial information"). The paper does not print RoboRefer's template,
so `FILTER_PROMPT` spells out the paper's own criteria: keep natural photographs of real 3D scenes with objects one
can ask spatial questions about; reject non-natural images (the paper's charts, forms, GUIs, code snippets, tables,
blueprints) and photographs without meaningful spatial content. Any OpenAI-compatible endpoint serves it through
`assets.llm.LLMClient` (its retries, budget and prompt-hash cache apply).

Implements `assets.filtering.ImageFilter`: `filter(rgb, scene) -> (keep, reason)`; the VLM's reason is what
`check_scene` records on rejection ("vlm filter: <reason>").

Error policy: when the endpoint gives no valid reply (`LLMError`: outage, 4xx, malformed JSON after retries) or the
run's budget is spent (`BudgetExceeded`), the image is KEPT and counted as `unchecked`. This filter refines two
filters that already ran, so an outage must not delete a shard's data; and since `LLMClient` caches only validated
replies, re-materializing the shard later asks again for exactly the unchecked images (the checked ones are cache
hits and cost nothing). The asset reports `unchecked` so an operator sees when that is worth doing.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image
from pydantic import BaseModel

from assets.llm import BudgetExceeded, LLMClient, LLMError
from assets.records import Scene

FILTER_PROMPT = """You screen web images for a dataset of 3D spatial questions about real scenes (distances, sizes,
heights, left/right, in front of/behind, above/below between objects). Decide whether this image is usable.

Keep it only if it is a natural photograph of a real three-dimensional scene in which at least one physical object
is clearly visible, so that its position and size in the scene could be reasoned about.

Reject it if any of these holds:
1. not a natural photograph: a chart, plot, table, form, document or page of text, screenshot of a user interface
   or web page, code snippet, slide, poster, map, blueprint, diagram, logo, icon, drawing, cartoon, painting or
   computer-generated graphic;
2. a collage, grid or side-by-side of several pictures, or a picture dominated by overlaid text or watermarks;
3. no meaningful spatial information: an extreme close-up or macro shot, a texture or pattern, only sky, water or
   a plain background, or a single object cut out on a blank background (a product shot);
4. too blurry, dark or overexposed to make out the objects.

Set "keep" to true or false, and "reason" to a few words naming what decided it (for example "screenshot of a web
page", "collage of four photos", "kitchen with table and chairs")."""

MAX_REASON_CHARS = 200


class FilterVerdict(BaseModel):
    """The VLM's reply. `reason` may be empty (some models omit it when keeping); a rejection without one is
    recorded as "no reason given" rather than retried, since the verdict itself is valid."""

    keep: bool
    reason: str = ""


def fit_image(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """`rgb` scaled down (aspect kept) so its longer side is at most `max_side` pixels; unchanged when it fits.

    Web images reach 4000+ pixels and a VLM's token cost grows with area, while "is this a chart or a room" needs
    no detail; the scaled image is also what the cache key hashes, so it must be deterministic (PIL's is)."""
    height, width = rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return rgb
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).resize(size, Image.Resampling.BILINEAR)
    )


class VlmImageFilter:
    """Ask a VLM whether an image is usable for 3D spatial QA (paper 7.1, step 3). One instance per run.

    `stats` counts `checked` (valid verdicts, from the endpoint or the cache), `kept`, `rejected` and `unchecked`
    (kept without a verdict; `llm_failed` / `budget_exceeded` say why), for the asset's metadata.
    """

    def __init__(self, client: LLMClient, prompt: str = FILTER_PROMPT, max_side: int | None = 768) -> None:
        if max_side is not None and max_side < 16:
            raise ValueError("max_side must be at least 16 pixels (or None to send the full image)")
        self.client, self.prompt, self.max_side = client, prompt, max_side
        self.stats: Counter[str] = Counter()

    def __call__(self, rgb: np.ndarray, scene: Scene) -> tuple[bool, str]:
        image = fit_image(rgb, self.max_side)
        try:
            verdict = self.client.complete_json(
                [{"role": "user", "content": self.prompt}], FilterVerdict, images=[image]
            )
        except BudgetExceeded:
            self.stats["unchecked"] += 1
            self.stats["budget_exceeded"] += 1
            return True, "unchecked: LLM budget spent"
        except LLMError:
            self.stats["unchecked"] += 1
            self.stats["llm_failed"] += 1
            return True, "unchecked: no valid VLM reply"
        self.stats["checked"] += 1
        reason = " ".join(verdict.reason.split())[:MAX_REASON_CHARS] or "no reason given"
        self.stats["kept" if verdict.keep else "rejected"] += 1
        return verdict.keep, reason

    def metadata(self) -> dict[str, int]:
        """Counters for asset metadata: `vlm_filter_<count>` (the four main ones always present) and the
        client's `llm_*` counters (requests, cache hits, retries, tokens). No secret is among them."""
        counts = {key: 0 for key in ("checked", "kept", "rejected", "unchecked")} | dict(self.stats)
        return {**{f"vlm_filter_{k}": v for k, v in sorted(counts.items())}, **self.client.stats.as_dict()}
