"""The common record every benchmark loader produces, and the per-item outcome every scorer returns.

One `EvalItem` is one question as the model sees it (prompt text, image, optional point-map source) plus what the
scorer needs (answer kind, ground truth, category, group). Loaders differ only in how they fill it; scoring,
judging, inference and reporting never look at a benchmark's raw format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class AnswerKind(StrEnum):
    CHOICE = "choice"  # multiple choice: `correct_index` into `options`, shown with `labels`
    YES_NO = "yes_no"  # `answer` is "yes" or "no"
    LENGTH = "length"  # `value` in meters, scored by the benchmark's numeric rule
    NUMBER = "number"  # a unitless `value` (count, ratio), scored by the numeric rule
    VECTOR = "vector"  # `direction` unit vector in the camera frame, scored by angle
    CLOCK = "clock"  # SpatialRGPT direction: `value` is the clock hour 1..12
    JUDGED = "judged"  # free form, judged against `answer` (LLM judge, or the rule-based fallback)
    POINT = "point"  # an (x, y) image point; `answer` is the polygon it must fall in (RoboSpatial context)


@dataclass
class EvalItem:
    item_id: str
    benchmark: str
    prompt: str  # the full text sent to the model (question, options, answer-format instruction)
    kind: AnswerKind
    answer: str  # ground truth as text (shown in reports and to the judge)
    options: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    correct_index: int | None = None
    value: float | None = None  # meters for LENGTH
    direction: tuple[float, float, float] | None = None
    category: str = ""
    subcategory: str = ""
    group: str = ""  # group/circular id; empty = the item is its own group
    split: str = ""  # source split or data source (CV-Bench source, Q-Spatial split, EmbSpatial data_source)
    # `boxes` are (x0, y0, x1, y1, colour) pixel boxes the question refers to by colour; they are drawn on the
    # image only when a model needs it (predictors.item_image), so loading a benchmark never re-encodes images.
    image_bytes: bytes | None = None
    image_path: Path | None = None
    boxes: list[tuple[float, float, float, float, str]] = field(default_factory=list)  # drawn at inference
    depth_path: Path | None = None  # ground-truth depth for the point map, when the benchmark has it
    intrinsics: dict | None = None  # fx, fy, cx, cy, width, height for `depth_path`
    question: str = ""  # the bare question, for the judge
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def has_image(self) -> bool:
        return self.image_bytes is not None or (
            self.image_path is not None and Path(self.image_path).is_file()
        )


@dataclass
class ItemResult:
    """How one item was scored. `correct` is never None: anything that could not be scored is wrong, and
    `reason` says why (no prediction, unparseable, judge failure, missing image)."""

    item_id: str
    category: str
    subcategory: str
    group: str
    split: str
    prediction: str | None
    parsed: str  # what extraction read, as text ("" when nothing)
    correct: bool
    reason: str = ""
    score_detail: dict[str, float] = field(default_factory=dict)  # abs_rel, angle_deg, ...
    judge_model: str = ""
    judge_prompt: str = ""
    judge_raw: str = ""
    # Our own, more forgiving reading of the same prediction (the `lenient` metric set); None where the benchmark
    # has no separate official reading.
    lenient_correct: bool | None = None
    lenient_parsed: str = ""

    @classmethod
    def of(
        cls,
        item: EvalItem,
        prediction: str | None,
        parsed: str,
        correct: bool,
        reason: str = "",
        **fields: object,
    ) -> ItemResult:
        """The result for `item`, carrying its ids and grouping (every scorer, ours and the official ones)."""
        return cls(
            item_id=item.item_id,
            category=item.category,
            subcategory=item.subcategory,
            group=item.group or item.item_id,
            split=item.split,
            prediction=prediction,
            parsed=parsed,
            correct=bool(correct),
            reason=reason,
            **fields,
        )

    def as_row(self) -> dict[str, object]:
        row = {k: v for k, v in self.__dict__.items() if k != "score_detail"}
        for key, value in self.score_detail.items():
            row[f"detail_{key}"] = value
        return row
