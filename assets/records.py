"""Typed records shared by every stage: a scene, its objects, and a QA pair.

Frames and units follow docs/CONVENTIONS.md: meters, OpenCV camera frame (x right, y down, z forward),
gravity-aligned frame (x right, y forward, z up, origin at the camera). Records are plain pydantic models so
each stage can validate what it reads (a malformed record fails loudly with a field path) and serialise what it
writes as JSON without custom code.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Vec3 = tuple[float, float, float]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def _finite(values: tuple[float, ...], name: str) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values}")
    return values


class Intrinsics(_Record):
    """Pinhole intrinsics in pixels; (u, v) = (column, row) with the origin at the top-left pixel's corner."""

    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    width: int = Field(gt=0)
    height: int = Field(gt=0)

    def as_matrix(self) -> list[list[float]]:
        return [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]]


class Box2D(_Record):
    """Axis-aligned pixel box [x0, x1) x [y0, y1) in (u, v) pixel coordinates."""

    x0: float
    y0: float
    x1: float
    y1: float

    @model_validator(mode="after")
    def _ordered(self) -> Box2D:
        _finite((self.x0, self.y0, self.x1, self.y1), "box2d")
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"degenerate 2D box {self}")
        return self

    @property
    def area(self) -> float:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


class Box3D(_Record):
    """A gravity-aligned 3D box.

    `center_cam` is in the camera frame (so L1 localization answers read it directly). `yaw` is the angle, in the
    gravity frame, from the `right` axis towards `forward` of the box's length axis: length_axis =
    (cos yaw, sin yaw, 0), width_axis = (-sin yaw, cos yaw, 0), vertical axis = up. For objects with a front the
    length axis is the facing direction (see `SceneObject.front_grav`).
    """

    center_cam: Vec3
    width: float = Field(gt=0)
    height: float = Field(gt=0)
    length: float = Field(gt=0)
    yaw: float

    @field_validator("center_cam")
    @classmethod
    def _center_finite(cls, v: Vec3) -> Vec3:
        return _finite(v, "center_cam")  # type: ignore[return-value]

    @property
    def size(self) -> Vec3:
        return (self.width, self.height, self.length)


class SceneObject(_Record):
    instance_id: int = Field(
        ge=1, description="Value of this object's pixels in the instance mask (0 = none)."
    )
    category: str = Field(min_length=1)
    box2d: Box2D
    box3d: Box3D
    front_grav: Vec3 | None = Field(
        default=None,
        description="Unit facing direction in the gravity frame; None for objects with no front.",
    )
    visible_fraction: float = Field(default=1.0, ge=0.0, le=1.0)
    num_pixels: int = Field(default=0, ge=0)
    askable: bool = Field(
        default=True,
        description="False: labelled in the source and counted (counts, the uniqueness of references, 'the second "
        "car from the left') but never the subject of a question: no pixel could be tied to it, or the source "
        "flags its box unreliable; attributes['not_askable'] says why.",
    )
    reference: str | None = Field(default=None, description="Unique textual reference, when one was found.")
    reference_kind: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict, description="Free-form, e.g. {'color': 'red'}.")


class Annotation2D(_Record):
    """A dataset's 2D box with its category (COCO / Objects365): an object known in the image but not yet in 3D."""

    category: str = Field(min_length=1)
    box2d: Box2D
    score: float = Field(default=1.0, ge=0.0, le=1.0, description="1.0 for human annotations.")
    annotation_id: int | str | None = Field(
        default=None, description="The id in the source annotation file, so a box can be traced back to it."
    )


class Scene(_Record):
    """One image with everything known about it in 3D.

    `gravity_cam` is the unit gravity direction (pointing down, towards the floor) in the camera frame; the
    gravity-aligned frame is derived from it by `assets.geometry.GravityFrame`.
    """

    scene_id: str = Field(min_length=1)
    source: str
    shard: str
    intrinsics: Intrinsics
    gravity_cam: Vec3 | None = None
    objects: list[SceneObject] = Field(default_factory=list)
    caption: str = ""
    has_ground_truth_3d: bool = False
    image_file: str = Field(description="Image path relative to the data root.")
    depth_file: str | None = Field(
        default=None, description="Log-encoded depth PNG, relative to the data root."
    )
    mask_file: str | None = Field(default=None, description="Instance-id PNG, relative to the data root.")
    annotations_2d: list[Annotation2D] = Field(
        default_factory=list,
        description="Dataset 2D boxes not lifted to 3D yet (COCO / Objects365 sources). The object stage prompts "
        "SAM-2 with them instead of detecting, and turns those that yield an object cloud into `objects`; they "
        "stay here as the source's record.",
    )
    metadata: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _legacy_annotations_2d(cls, data: object) -> object:
        """Scenes written before `annotations_2d` was a field carried the boxes as a JSON string in
        `metadata["annotations_2d"]` ([{"category", "box2d": [x0, y0, x1, y1], "annotation_id"}]); read them
        into the field so existing source_images shards keep their annotations."""
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
            return data
        legacy = data["metadata"].get("annotations_2d")
        if not isinstance(legacy, str) or "annotations_2d" in data:
            return data
        try:
            boxes = json.loads(legacy)
        except json.JSONDecodeError as err:
            raise ValueError(f"metadata.annotations_2d is not JSON: {err}") from err
        if not isinstance(boxes, list) or not all(
            isinstance(b, dict) and isinstance(b.get("box2d"), list) and len(b["box2d"]) == 4 for b in boxes
        ):
            raise ValueError(
                "metadata.annotations_2d must be a JSON list of {category, box2d: [x0, y0, x1, y1]}"
            )
        metadata = {
            k: v for k, v in data["metadata"].items() if k not in ("annotations_2d", "num_annotations_2d")
        }
        annotations = [
            {**b, "box2d": dict(zip(("x0", "y0", "x1", "y1"), b["box2d"], strict=True))} for b in boxes
        ]
        return {**data, "metadata": metadata, "annotations_2d": annotations}

    @field_validator("gravity_cam")
    @classmethod
    def _unit_gravity(cls, v: Vec3 | None) -> Vec3 | None:
        if v is None:
            return v
        _finite(v, "gravity_cam")
        norm = math.sqrt(sum(c * c for c in v))
        if not 0.99 < norm < 1.01:
            raise ValueError(f"gravity_cam must be a unit vector, norm={norm:.3f}")
        return v

    def object_by_id(self, instance_id: int) -> SceneObject:
        for obj in self.objects:
            if obj.instance_id == instance_id:
                return obj
        raise KeyError(f"scene {self.scene_id} has no object {instance_id}")


class Level(StrEnum):
    L0 = "L0"
    L1 = "L1"
    L2 = "L2"
    L3 = "L3"


class QAFormat(StrEnum):
    FREE_FORM = "free_form"
    MULTIPLE_CHOICE = "multiple_choice"
    TRUE_FALSE = "true_false"


class Task(StrEnum):
    """The eleven task types of paper Table 7, grouped by level."""

    POINT_QUERY = "point_query"
    DEPTH_ORDER = "depth_order"
    ORIENTATION = "orientation"
    SIZE = "size"
    LOCALIZATION = "localization"
    RELATIVE_DIRECTION = "relative_direction"
    RELATIVE_DISTANCE = "relative_distance"
    RELATIONAL_COMPARISON = "relational_comparison"
    PERSPECTIVE_TAKING = "perspective_taking"
    SPATIAL_COUNTING = "spatial_counting"
    PROBLEM_SOLVING = "problem_solving"


TASK_LEVEL: dict[Task, Level] = {
    Task.POINT_QUERY: Level.L0,
    Task.DEPTH_ORDER: Level.L0,
    Task.ORIENTATION: Level.L1,
    Task.SIZE: Level.L1,
    Task.LOCALIZATION: Level.L1,
    Task.RELATIVE_DIRECTION: Level.L2,
    Task.RELATIVE_DISTANCE: Level.L2,
    Task.RELATIONAL_COMPARISON: Level.L2,
    Task.PERSPECTIVE_TAKING: Level.L3,
    Task.SPATIAL_COUNTING: Level.L3,
    Task.PROBLEM_SOLVING: Level.L3,
}


class DrawBox(_Record):
    """A box the model must see drawn on the image because the question refers to it by colour."""

    instance_id: int
    color: str
    box2d: Box2D
    label: str = Field(default="", description="Text drawn on a tag at the box (a numbered mark), or none.")


class QAPair(_Record):
    """One question/answer pair; one parquet row per pair (see assets.qa.shards.QA_SCHEMA)."""

    qa_id: str
    scene_id: str
    shard: str
    level: Level
    task: Task
    subtask: str = ""
    format: QAFormat
    question: str
    answer: str
    options: list[str] = Field(default_factory=list)
    correct_index: int | None = None
    value: float | None = None
    unit: str | None = None
    direction: Vec3 | None = None
    object_ids: list[int] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    draw_boxes: list[DrawBox] = Field(default_factory=list)
    template_id: str = ""
    reasoning: str = ""
    generator: Literal["template", "llm", "rule"] = "template"

    @model_validator(mode="after")
    def _consistent(self) -> QAPair:
        if self.task in TASK_LEVEL and TASK_LEVEL[self.task] != self.level:
            raise ValueError(f"task {self.task} belongs to {TASK_LEVEL[self.task]}, not {self.level}")
        if self.format == QAFormat.MULTIPLE_CHOICE:
            if not 2 <= len(self.options) <= 6:
                raise ValueError("multiple choice needs 2-6 options")
            if self.correct_index is None or not 0 <= self.correct_index < len(self.options):
                raise ValueError("multiple choice needs a valid correct_index")
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("value must be finite")
        return self
