"""CLIP for two jobs: the include/exclude tag-voting image filter (paper 7.1 step 1) and an open-vocabulary tagger
(our stand-in for RAM's "what is in this image": the categories later handed to the detector).

Production: `ClipScorer.from_pretrained("openai/clip-vit-large-patch14")`. Tests: `ClipScorer.tiny(texts)`, a
random-initialised `transformers.CLIPModel` of a small config with an in-memory tokenizer
(assets/wild/offline.py). Text embeddings are computed once per tag set and cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

from assets.records import Scene

PRODUCTION_MODEL_ID = "openai/clip-vit-large-patch14"

# Following SpatialVLM: tags describing natural photographs vs non-natural images.
INCLUDE_TAGS: tuple[str, ...] = (
    "a photo of an indoor room",
    "a photo of a living room",
    "a photo of a kitchen",
    "a photo of an office",
    "a photo of a street",
    "a photo of a city",
    "a photo of a landscape",
    "a photo of people",
    "a photo of furniture",
    "a photo of a table with objects",
    "a photo of a car",
    "a photo of animals",
    "a photo of a garden",
    "a photo of a shop",
    "a photo taken with a phone camera",
)
EXCLUDE_TAGS: tuple[str, ...] = (
    "a chart",
    "a plot",
    "a table of numbers",
    "a form",
    "a screenshot of a user interface",
    "a web page",
    "source code",
    "a document with text",
    "a diagram",
    "a blueprint",
    "a logo",
    "a cartoon",
    "a drawing",
    "a poster with text",
    "a slide",
    "an icon",
    "a map",
)
# A small indoor/outdoor object vocabulary for the tagger (RAM's role); extend per dataset.
OBJECT_VOCABULARY: tuple[str, ...] = (
    "chair",
    "table",
    "sofa",
    "bed",
    "desk",
    "cabinet",
    "shelf",
    "television",
    "monitor",
    "laptop",
    "lamp",
    "plant",
    "cup",
    "bottle",
    "book",
    "bowl",
    "vase",
    "pillow",
    "box",
    "trash can",
    "microwave",
    "keyboard",
    "door",
    "window",
    "picture frame",
    "car",
    "bicycle",
    "person",
    "dog",
    "cat",
    "bench",
    "traffic light",
)


class ClipScorer:
    """Cosine similarities between images and texts with a CLIP model."""

    def __init__(
        self, model: CLIPModel, tokenizer: Any, image_processor: CLIPImageProcessor, device: str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self._text_cache: dict[tuple[str, ...], torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str = PRODUCTION_MODEL_ID, device: str = "cpu") -> ClipScorer:
        from transformers import AutoTokenizer

        return cls(
            CLIPModel.from_pretrained(name_or_path),
            AutoTokenizer.from_pretrained(name_or_path),
            CLIPImageProcessor.from_pretrained(name_or_path),
            device,
        )

    @classmethod
    def tiny(cls, texts: Sequence[str], seed: int = 0, image_size: int = 32) -> ClipScorer:
        from assets.wild.offline import bpe_tokenizer

        tokenizer = bpe_tokenizer(texts)
        torch.manual_seed(seed)
        special = {
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        config = CLIPConfig(
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "max_position_embeddings": 77,
                **special,
            },
            vision_config={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": image_size,
                "patch_size": 8,
            },
            projection_dim=16,
        )
        processor = CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
        return cls(CLIPModel(config), tokenizer, processor)

    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        key = tuple(texts)
        if key not in self._text_cache:
            tokens = self.tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt").to(
                self.device
            )
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            )
            features = getattr(features, "pooler_output", features)
            self._text_cache[key] = torch.nn.functional.normalize(features.float(), dim=-1)
        return self._text_cache[key]

    @torch.inference_mode()
    def similarities(self, images: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """(num_images, num_texts) cosine similarities."""
        pixels = self.image_processor(images=[np.ascontiguousarray(i) for i in images], return_tensors="pt")[
            "pixel_values"
        ]
        features = self.model.get_image_features(pixel_values=pixels.to(self.device))
        features = getattr(features, "pooler_output", features)
        image_emb = torch.nn.functional.normalize(features.float(), dim=-1)
        return (image_emb @ self.text_embeddings(texts).T).cpu().numpy()


class ClipTagFilter:
    """`assets.filtering.ImageFilter`: keep an image when more than half of its top-k most similar tags come
    from the include set (paper 7.1, following SpatialVLM).

    `min_include_votes` replaces "more than half" (None): smoke runs with random weights set it to 0, so every
    image is scored and passed on while the vote is still recorded (assets.wild.smoke)."""

    def __init__(
        self,
        scorer: ClipScorer,
        include: Sequence[str] = INCLUDE_TAGS,
        exclude: Sequence[str] = EXCLUDE_TAGS,
        top_k: int = 5,
        min_include_votes: int | None = None,
    ) -> None:
        if top_k < 1 or top_k > len(include) + len(exclude):
            raise ValueError(f"top_k must lie in 1..{len(include) + len(exclude)}")
        if min_include_votes is not None and not 0 <= min_include_votes <= top_k:
            raise ValueError(f"min_include_votes must lie in 0..{top_k}")
        self.scorer, self.top_k = scorer, top_k
        self.min_include_votes = top_k // 2 + 1 if min_include_votes is None else min_include_votes
        self.tags = list(include) + list(exclude)
        self.is_include = np.array([True] * len(include) + [False] * len(exclude))

    def votes(self, rgb: np.ndarray) -> tuple[int, list[str]]:
        scores = self.scorer.similarities([rgb], self.tags)[0]
        top = np.argsort(-scores, kind="stable")[: self.top_k]
        return int(self.is_include[top].sum()), [self.tags[i] for i in top]

    def __call__(self, rgb: np.ndarray, scene: Scene) -> tuple[bool, str]:
        include_votes, top = self.votes(rgb)
        keep = include_votes >= self.min_include_votes
        return (
            keep,
            f"clip tags: {include_votes}/{self.top_k} natural-photo tags in top {self.top_k} ({'; '.join(top)})",
        )


class ClipTagger:
    """Open-vocabulary image tagger: the vocabulary entries scoring highest for an image (RAM's role in the
    paper's detect-then-segment chain). `min_margin` drops tags scoring far below the best one."""

    def __init__(
        self,
        scorer: ClipScorer,
        vocabulary: Sequence[str] = OBJECT_VOCABULARY,
        top_k: int = 8,
        prompt: str = "a photo of a {}",
        min_margin: float = 0.1,
    ) -> None:
        self.scorer, self.vocabulary, self.top_k, self.min_margin = (
            scorer,
            list(vocabulary),
            top_k,
            min_margin,
        )
        self.prompts = [prompt.format(v) for v in self.vocabulary]

    def tag(self, rgb: np.ndarray) -> list[str]:
        scores = self.scorer.similarities([rgb], self.prompts)[0]
        order = np.argsort(-scores, kind="stable")[: self.top_k]
        return [self.vocabulary[i] for i in order if scores[i] >= scores[order[0]] - self.min_margin]
