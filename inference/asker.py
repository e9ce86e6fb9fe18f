"""`SpatialAsker`: ask a checkpoint a question about any image, as training showed it questions.

    asker = SpatialAsker.from_checkpoint("latest", point_map_model="tiny")
    answer = asker.ask("room.jpg", "How far is {b1} from {b2}?", boxes=["10,20,200,300:chair", "300,40,500,400:door"])
    answer.answer, answer.kind, answer.value        # "1.27 m", "length", 1.27

One request becomes one `training.data.Example` exactly as the training data builds it: boxes drawn by
`training.data.draw_boxes`, the question rendered by the one prompt renderer (`inference.prompting`), the image
resized by `resize_rgb`, the point map prepared by `training.inputs.prepare_point_map` (both as the checkpoint
was trained: its resizes and max_depth), and batched with
`Collator.prompts` (left padding); generation is greedy. The point map comes from the user's depth + intrinsics,
else MoGe-2 (`assets.wild.moge`), else it is all-invalid (the validity channel tells the model so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from assets.geometry import depth_to_points
from assets.records import Box2D, QAFormat
from assets.stage import DataError
from evaluation.items import AnswerKind
from inference.answers import infer_kind, options_in_question, parse_answer
from inference.inputs import (
    AskInputError,
    box_colors,
    box_text,
    check_boxes,
    check_points,
    draw_requests,
    fill_question,
    load_depth,
    load_image,
    parse_box,
    parse_intrinsics,
    parse_point,
    point_text,
)
from inference.loading import LoadedCheckpoint, load_any
from inference.prompting import render_question


@dataclass
class AskRequest:
    """One question about one image. `points` are pixels (u, v); `boxes` pixel boxes with an optional label and
    colour; `depth` + `intrinsics` replace the estimated point map; `prompt` (already rendered, e.g. from
    `python -m evaluation items`) is sent as is instead of rendering `question`."""

    image: str | Path | bytes | np.ndarray | Image.Image
    question: str = ""
    points: Sequence = ()
    boxes: Sequence = ()
    options: Sequence[str] = ()
    labels: Sequence[str] = ()  # the options' labels as shown in the prompt (default A, B, C, ...)
    kind: str | None = None
    depth: str | Path | np.ndarray | None = None
    intrinsics: str | dict | None = None
    id: str | None = None
    prompt: str | None = None


@dataclass
class Answer:
    """The model's answer and what it means; `to_dict()` is the `--json` output and the served model's reply."""

    question: str
    prompt: str
    answer: str
    kind: str
    value: object
    unit: str | None
    reason: str
    image_size: tuple[int, int]  # (width, height)
    points: list[dict] = field(default_factory=list)  # {u, v, loc, xyz (the point map's, meters, or None)}
    boxes: list[dict] = field(default_factory=list)  # {box: [x0, y0, x1, y1], label, color}
    point_map: str = ""  # "user depth" | "moge-2" | "none"
    checkpoint: str = ""
    seconds: float = 0.0
    id: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Prepared:
    request: AskRequest
    answer: Answer
    example: object  # training.data.Example
    options: list[str]
    labels: list[str]
    kind: AnswerKind


class SpatialAsker:
    """A loaded checkpoint plus a point-map source; `ask` one question or `ask_many` in batches."""

    def __init__(
        self,
        loaded: LoadedCheckpoint,
        estimator: object | None = None,
        max_new_tokens: int = 64,
        device: str = "cpu",
        prompt_style: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.estimator = estimator
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.prompt_style = prompt_style if prompt_style is not None else loaded.prompt_style

    @classmethod
    def from_checkpoint(
        cls,
        spec: str | Path,
        *,
        point_map_model: str | None = None,
        device: str = "cpu",
        data_root: Path | str | None = None,
        tracking_uri: str | None = None,
        processor: str | None = None,
        max_new_tokens: int = 64,
        prompt_style: str | None = None,
    ) -> SpatialAsker:
        """`point_map_model`: a MoGe-2 hub id or local `model.pt`, `tiny` (random weights, smoke tests), or
        None / "none" for no estimator (then only user-supplied depth gives geometry)."""
        loaded = load_any(
            spec, device=device, data_root=data_root, tracking_uri=tracking_uri, processor=processor
        )
        estimator = None
        if point_map_model and point_map_model != "none" and loaded.point_map_input != "none":
            from assets.wild.moge import MoGeEstimator

            if point_map_model == "tiny":
                estimator = MoGeEstimator.tiny(device=device)
            else:
                try:
                    estimator = MoGeEstimator.from_pretrained(point_map_model, device=device)
                except (OSError, ValueError, RuntimeError) as err:
                    raise AskInputError(f"MoGe-2 model {point_map_model!r} cannot be loaded: {err}") from err
        return cls(loaded, estimator, max_new_tokens, device, prompt_style)

    # -------------------------------------------------------------------------------------- one request

    def prepare(
        self, request: AskRequest, rgb: np.ndarray | None = None, estimate: object | None = None
    ) -> _Prepared:
        """Validate and build the model input of one request; AskInputError on bad input. `rgb` (the decoded
        image) and `estimate` (its MoGe-2 result, or the DataError it gave) come from `ask_many`'s batched pass."""
        from training.data import Example, draw_boxes, resize_rgb
        from training.inputs import prepare_point_map

        started = time.perf_counter()
        rgb = load_image(request.image) if rgb is None else rgb
        height, width = rgb.shape[:2]
        points = [parse_point(p) for p in request.points]
        check_points(points, width, height)
        parsed_boxes = [parse_box(b) for b in request.boxes]
        boxes = [b for b, _, _ in parsed_boxes]
        check_boxes(boxes, width, height)
        colors = box_colors([c for _, _, c in parsed_boxes])
        labels_of_boxes = [label for _, label, _ in parsed_boxes]

        options = [str(o) for o in request.options]
        labels = [str(x) for x in request.labels] or [chr(ord("A") + i) for i in range(len(options))]
        if request.prompt:
            prompt = request.prompt
            question = request.question or request.prompt
        else:
            question = fill_question(
                request.question,
                [point_text(u, v, width, height) for u, v in points],
                [box_text(label, color) for label, color in zip(labels_of_boxes, colors, strict=True)],
            )
            fmt = QAFormat.MULTIPLE_CHOICE if options else QAFormat.FREE_FORM
            prompt = render_question(question, options, fmt, self.prompt_style)
        if not options:
            labels, options = options_in_question(prompt)
        try:
            kind = AnswerKind(request.kind) if request.kind else infer_kind(question, options)
        except ValueError as err:
            raise AskInputError(
                f"answer kind {request.kind!r} is not one of {[k.value for k in AnswerKind]}"
            ) from err

        xyz, valid, source = self._point_map(request, rgb, estimate)
        size = self.loaded.image_size
        mode = "xyz" if self.loaded.point_map_input == "none" else self.loaded.point_map_input
        # Boxes are drawn on the image at the model's resolution, as the official release draws them (on the
        # 448-px input, microsoft/HiSpatial hispatial/data/vqa_dataset.py draw_bbox and eval/eval_spatialrgpt.py):
        # a 2-px outline drawn on a 4000-px photo would all but vanish in the resize. With the demo's images
        # (stored at the model's size) this is the very image training.data draws.
        scaled = [
            Box2D(
                x0=b.x0 * size / width,
                y0=b.y0 * size / height,
                x1=b.x1 * size / width,
                y1=b.y1 * size / height,
            )
            for b in boxes
        ]
        config = self.loaded.train_config
        rgb_resize = config.data.rgb_resize if config is not None else "cv2-bilinear"
        drawn = draw_boxes(resize_rgb(rgb, size, rgb_resize), draw_requests(scaled, colors))
        extra = (
            {}
            if config is None
            else {"max_depth": config.model.max_depth, "resize": config.data.point_map_resize}
        )
        example = Example(drawn, prepare_point_map(xyz, valid, size, mode, **extra), prompt, "", "ask", "")
        answer = Answer(
            question=question,
            prompt=prompt,
            answer="",
            kind=kind.value,
            value=None,
            unit=None,
            reason="",
            image_size=(width, height),
            points=[
                {"u": u, "v": v, "loc": point_text(u, v, width, height), "xyz": _xyz_at(xyz, valid, u, v)}
                for u, v in points
            ],
            boxes=[
                {"box": [b.x0, b.y0, b.x1, b.y1], "label": label, "color": color}
                for b, label, color in zip(boxes, labels_of_boxes, colors, strict=True)
            ],
            point_map=source,
            checkpoint=self.loaded.source,
            id=request.id,
            seconds=time.perf_counter() - started,
        )
        return _Prepared(request, answer, example, options, labels, kind)

    def _point_map(
        self, request: AskRequest, rgb: np.ndarray, estimate: object | None = None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        height, width = rgb.shape[:2]
        if request.depth is not None:
            if request.intrinsics is None:
                raise AskInputError("a depth map needs intrinsics (fx,fy,cx,cy) to become a point map")
            intrinsics = parse_intrinsics(request.intrinsics, width, height)
            points = depth_to_points(load_depth(request.depth, width, height), intrinsics).astype(np.float32)
            return points, np.isfinite(points).all(axis=-1), "user depth"
        if request.intrinsics is not None:
            raise AskInputError("intrinsics were given without a depth map")
        if self.estimator is not None and self.loaded.point_map_input != "none":
            try:
                if estimate is None:
                    estimate = self.estimator.estimate(rgb)
                if isinstance(estimate, Exception):
                    raise estimate
            except (DataError, RuntimeError) as err:  # e.g. an image too small for the estimator's patches
                raise AskInputError(f"MoGe-2 could not estimate a point map for this image: {err}") from err
            return estimate.points, estimate.valid, "moge-2"
        return np.full((height, width, 3), np.nan, np.float32), np.zeros((height, width), bool), "none"

    def ask(
        self,
        image: AskRequest | str | Path | bytes | np.ndarray | Image.Image,
        question: str = "",
        **request: object,
    ) -> Answer:
        """Answer one question; AskInputError on bad input (nothing is generated then)."""
        req = (
            image if isinstance(image, AskRequest) else AskRequest(image=image, question=question, **request)
        )
        result = self.ask_many([req], batch_size=1)[0]
        if isinstance(result, AskInputError):
            raise result
        return result

    # -------------------------------------------------------------------------------------- many

    def ask_many(
        self,
        requests: Sequence[AskRequest],
        batch_size: int = 8,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[Answer | AskInputError]:
        """Answers in request order; a request with bad input gets its AskInputError in its slot, the rest of
        its batch still runs. `on_progress(n)` is called as n more requests are done."""
        results: list[Answer | AskInputError | None] = [None] * len(requests)
        for start in range(0, len(requests), max(1, batch_size)):
            chunk = range(start, min(start + batch_size, len(requests)))
            images: dict[int, np.ndarray] = {}
            for index in chunk:
                try:
                    images[index] = load_image(requests[index].image)
                except AskInputError as err:
                    results[index] = err
            started = time.perf_counter()
            estimates = self._estimate_batch(
                {i: rgb for i, rgb in images.items() if requests[i].depth is None}
            )
            estimate_share = (time.perf_counter() - started) / max(1, len(estimates))
            prepared: list[tuple[int, _Prepared]] = []
            for index, rgb in images.items():
                try:
                    item = self.prepare(requests[index], rgb, estimates.get(index))
                except AskInputError as err:
                    results[index] = err
                    continue
                item.answer.seconds += estimate_share if index in estimates else 0.0
                prepared.append((index, item))
            for (index, _), answer in zip(prepared, self._generate([p for _, p in prepared]), strict=True):
                results[index] = answer
            if on_progress is not None:
                on_progress(min(start + batch_size, len(requests)) - start)
        return [r for r in results if r is not None]

    def _estimate_batch(self, images: dict[int, np.ndarray]) -> dict[int, object]:
        """MoGe-2 over a batch's images in shared forward passes (same-size images batch together); each slot
        holds a PointMapEstimate or the DataError of that image."""
        if not images or self.estimator is None or self.loaded.point_map_input == "none":
            return {}
        if not hasattr(self.estimator, "estimate_batch"):
            return {}  # a single-image estimator: prepare() calls it per image
        try:
            results = self.estimator.estimate_batch(list(images.values()))
        except (DataError, RuntimeError):
            return {}  # let each image fail (or not) on its own in prepare()
        return dict(zip(images, results, strict=True))

    def _generate(self, prepared: Sequence[_Prepared]) -> list[Answer]:
        import torch

        from training.data import Collator

        if not prepared:
            return []
        started = time.perf_counter()
        collator = Collator(self.loaded.processor, self.loaded.point_map_input)
        inputs = {k: v.to(self.device) for k, v in collator.prompts([p.example for p in prepared]).items()}
        with torch.inference_mode():
            generated = self.loaded.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
            )
        texts = self.loaded.processor.batch_decode(
            generated[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
        )
        seconds = (time.perf_counter() - started) / len(prepared)
        answers = []
        for item, text in zip(prepared, texts, strict=True):
            parsed = parse_answer(text.strip(), item.kind, item.options, item.labels)
            answer = item.answer
            answer.answer, answer.value, answer.unit, answer.reason = (
                text.strip(),
                parsed.value,
                parsed.unit,
                parsed.reason,
            )
            answer.seconds = round(answer.seconds + seconds, 4)
            answers.append(answer)
        return answers


def _xyz_at(points: np.ndarray, valid: np.ndarray, u: float, v: float) -> list[float] | None:
    """The point map's camera-frame point (meters) at pixel (u, v), or None where it has none."""
    row, col = int(v), int(u)
    if not valid[row, col]:
        return None
    xyz = points[row, col]
    return [round(float(c), 4) for c in xyz] if np.isfinite(xyz).all() else None
