"""Where predictions come from: our model (batched greedy generation) or a file of another system's outputs.

`Predictor.predict(items) -> list[str | None]` is the whole contract; None means "no prediction for this item"
and the scorer counts it wrong with that reason, so nothing drops out of the denominator.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw

from assets.point_maps import PointMapEstimator
from assets.records import Intrinsics
from assets.stage import DataError
from assets.storage import load_point_map
from evaluation.items import EvalItem


class Predictor(Protocol):
    name: str

    def predict(self, items: Sequence[EvalItem]) -> list[str | None]: ...


class PredictionsFile:
    """Predictions from a JSONL file of {"id": ..., "prediction": ...}: score any external system.

    Malformed lines raise DataError naming the line (a silently skipped line would shrink the denominator), and so
    do a file with no predictions and an id given twice (which answer would count?). `check_ids` refuses a file
    written for other items. Items of the benchmark with no line get None (counted wrong, "no prediction").
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path.name}"
        self.predictions: dict[str, str] = {}
        first_line: dict[str, int] = {}
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    item_id = str(row["id"])
                    prediction = "" if row["prediction"] is None else str(row["prediction"])
                except (ValueError, KeyError, TypeError) as err:
                    raise DataError(f"{self.path}:{lineno}: expected {{id, prediction}}: {err}") from err
                if item_id in first_line:
                    raise DataError(
                        f"{self.path}:{lineno}: duplicate id {item_id!r} (first on line {first_line[item_id]})"
                    )
                first_line[item_id] = lineno
                self.predictions[item_id] = prediction
        if not self.predictions:
            raise DataError(f"{self.path}: no predictions in the file")

    def check_ids(self, item_ids: Sequence[str], subset: bool = False) -> None:
        """Refuse a predictions file that does not belong to these items: ids that are not items of the
        benchmark (unless `subset`: only part of the benchmark is scored, e.g. `limit`), or no id in common.
        Scoring such a file would report a real-looking 0.0."""
        known = set(item_ids)
        unknown = [i for i in self.predictions if i not in known]
        if len(unknown) == len(self.predictions):
            raise DataError(
                f"{self.path}: none of its {len(self.predictions)} ids is an item of this benchmark "
                f"(file ids like {unknown[:3]}, item ids like {list(item_ids)[:3]})"
            )
        if unknown and not subset:
            raise DataError(
                f"{self.path}: {len(unknown)} ids are not items of this benchmark, e.g. {unknown[:5]}"
            )

    def predict(self, items: Sequence[EvalItem]) -> list[str | None]:
        return [self.predictions.get(item.item_id) for item in items]


def item_image(item: EvalItem) -> Image.Image:
    """The item's RGB image with its referenced boxes drawn (as training draws them: 2 px outline, [x0, x1 - 1]);
    DataError when it is missing or unreadable."""
    try:
        if item.image_bytes is not None:
            with Image.open(io.BytesIO(item.image_bytes)) as img:
                image = img.convert("RGB")
        elif item.image_path is not None and Path(item.image_path).is_file():
            with Image.open(item.image_path) as img:
                image = img.convert("RGB")
        else:
            raise DataError(f"missing image for {item.item_id}")
    except OSError as err:
        raise DataError(f"unreadable image for {item.item_id}: {err}") from err
    if item.boxes:
        draw = ImageDraw.Draw(image)
        for x0, y0, x1, y1, color in item.boxes:
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=color, width=2)
    return image


class ModelPredictor:
    """Greedy batched generation with a checkpoint written by `training` (`training.checkpoints.load_checkpoint`).

    Point maps: with `point_maps="auto"` an item with ground-truth depth (`depth_path` + `intrinsics`) uses it,
    others use `estimator` (MoGe-2 in production); with no estimator they get an all-invalid point map (the
    validity channel tells the model there is no geometry), which is recorded in `point_map_sources`.
    """

    def __init__(
        self,
        checkpoint_dir: Path,
        batch_size: int = 8,
        max_new_tokens: int = 64,
        point_maps: str = "auto",
        estimator: PointMapEstimator | None = None,
        device: str = "cpu",
    ) -> None:
        from training.checkpoints import load_for_inference
        from training.prompts import style_for_checkpoint

        self.model, self.processor, self.train_config, official = load_for_inference(
            checkpoint_dir, device=device
        )
        # the official HiSpatial-3B is asked in its own formats; our checkpoints in the style they trained with
        self.prompt_style = style_for_checkpoint(self.train_config, official)
        self.name = f"checkpoint:{Path(checkpoint_dir).name}"
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.point_maps = point_maps
        self.estimator = estimator
        self.device = device
        self.point_map_sources: dict[str, int] = {"ground_truth": 0, "estimated": 0, "missing": 0}

    def _point_map(self, item: EvalItem, rgb: np.ndarray) -> np.ndarray:
        from training.inputs import prepare_point_map

        size = self.train_config.model.image_size
        points = valid = None
        if self.point_maps in ("auto", "ground_truth") and item.depth_path is not None and item.intrinsics:
            points, valid = load_point_map(item.depth_path, Intrinsics(**item.intrinsics))
            self.point_map_sources["ground_truth"] += 1
        elif self.point_maps in ("auto", "estimated") and self.estimator is not None:
            estimate = self.estimator.estimate(rgb)
            points, valid = estimate.points, estimate.valid
            self.point_map_sources["estimated"] += 1
        if points is None:
            self.point_map_sources["missing"] += 1
            points = np.full((*rgb.shape[:2], 3), np.nan, dtype=np.float32)
            valid = np.zeros(rgb.shape[:2], dtype=bool)
        mode = "xyz" if self.model.point_map_input == "none" else self.model.point_map_input
        return prepare_point_map(
            points,
            valid,
            size,
            mode,
            self.train_config.model.max_depth,
            self.train_config.data.point_map_resize,
        )

    def prompt(self, item: EvalItem) -> str:
        """The item's prompt in the checkpoint's style (training.prompts.render_question); ours is the loader's."""
        from evaluation.items import AnswerKind
        from training.prompts import render_question

        if self.prompt_style == "hispatial" or not item.question:
            return item.prompt
        fmt = "multiple_choice" if item.kind == AnswerKind.CHOICE else "free_form"
        return render_question(item.question, self.prompt_style, item.options, fmt)

    def predict(self, items: Sequence[EvalItem]) -> list[str | None]:
        """Inputs are built exactly as training builds them (training.data: Example, Collator.prompts with
        left padding and the "<image>" prefix, resize_rgb), then greedy decoding of the new tokens only."""
        import torch

        from training.data import Collator, Example, resize_rgb

        size = self.train_config.model.image_size
        collator = Collator(self.processor, self.model.point_map_input)
        out: list[str | None] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            examples = []
            for item in batch:
                rgb = np.asarray(item_image(item))
                image = resize_rgb(rgb, size, self.train_config.data.rgb_resize)
                examples.append(Example(image, self._point_map(item, rgb), self.prompt(item), "", "eval", ""))
            inputs = {k: v.to(self.device) for k, v in collator.prompts(examples).items()}
            with torch.inference_mode():
                generated = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            new_tokens = generated[:, inputs["input_ids"].shape[1] :]
            out += [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
        return out
