"""The in-the-wild `ObjectExtractor` (assets/objects.py): tagger -> detector -> SAM-2 -> geometry chain.

Paper 3.2: unannotated images go tagger (RAM; here CLIP over a vocabulary) -> GroundingDINO boxes -> SAM masks;
images with dataset 2D boxes (COCO / Objects365 sources, `Scene.annotations_2d`) skip the first two
steps and prompt SAM with their boxes. Masks become object clouds on the point map, clouds become
gravity-aligned boxes (assets/wild/geometry.py). Gravity comes from a gravity model when one is given (Perspective
Fields in the paper), else from RANSAC on the point map's support plane, else from an explicit prior when one is
configured (`fallback_gravity_cam`, a level camera); a scene with none of them is a DataError (no silently guessed
frame). Orientation comes from an orientation model when one is given (OrientAnything in the paper: its
azimuth is read against each object's viewing ray), else objects get `front_grav = None`: never a guess.

Objects that cannot be made into a box (tiny masks, clouds that fall apart) are skipped; their reasons are kept
in `skipped` (scene_id, reason) because the extractor protocol returns only the surviving objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from assets.geometry import GravityFrame, box2d_from_mask
from assets.objects import ObjectExtraction
from assets.records import Box2D, Scene, SceneObject
from assets.stage import DataError
from assets.wild.detect import Detection, filter_detections, subtract_contained
from assets.wild.geometry import CloudConfig, GravityConfig, box_from_mask, estimate_gravity

MAX_INSTANCES = 255  # 8-bit instance masks


@runtime_checkable
class Tagger(Protocol):
    def tag(self, rgb: np.ndarray) -> list[str]: ...


@runtime_checkable
class Detector(Protocol):
    def detect(self, rgb: np.ndarray, categories: Sequence[str]) -> list[Detection]: ...


@runtime_checkable
class Segmenter(Protocol):
    def segment(self, rgb: np.ndarray, boxes: Sequence[Box2D]) -> tuple[list[np.ndarray], list[float]]: ...


@runtime_checkable
class GravityModel(Protocol):
    """Perspective Fields' role: unit gravity (down) in the camera frame from the image, or None."""

    def gravity_cam(self, rgb: np.ndarray) -> tuple[float, float, float] | None: ...


@runtime_checkable
class OrientationModel(Protocol):
    """OrientAnything's role: for the object in `box`, the camera's azimuth around the object's vertical axis in
    degrees (0 = the camera straight in front of the object, counter-clockwise seen from above), or None when the
    object has no front or the prediction is not confident. The extractor turns it into `front_grav` relative to
    the object's viewing ray (`assets.wild.geometry.front_from_view_azimuth`)."""

    def view_azimuth_deg(self, rgb: np.ndarray, box: Box2D) -> float | None: ...


@dataclass
class WildObjectExtractor:
    segmenter: Segmenter
    detector: Detector | None = None
    tagger: Tagger | None = None
    categories: Sequence[str] = ()  # fixed prompt vocabulary when there is no tagger
    gravity_model: GravityModel | None = None
    orientation_model: OrientationModel | None = None
    # used when neither the gravity model nor RANSAC gives gravity: (0, 1, 0) is a level camera, a fair prior for
    # rigs known to be level and what smoke runs use (random-weight point maps have no floor); None: reject
    fallback_gravity_cam: tuple[float, float, float] | None = None
    cloud_config: CloudConfig = field(default_factory=CloudConfig)
    gravity_config: GravityConfig = field(default_factory=GravityConfig)
    min_score: float = 0.3
    min_mask_pixels: int = 50
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def proposals(self, rgb: np.ndarray, scene: Scene) -> list[Detection]:
        """2D boxes with categories: the dataset's own when it has them, else tagger + detector."""
        if scene.annotations_2d:
            return [Detection(a.box2d, a.category, a.score) for a in scene.annotations_2d]
        if self.detector is None:
            raise DataError("no 2D annotations and no detector configured")
        categories = self.tagger.tag(rgb) if self.tagger is not None else list(self.categories)
        if not categories:
            raise DataError("no categories: the tagger found nothing to look for")
        detections = self.detector.detect(rgb, categories)
        return filter_detections(detections, float(rgb.shape[0] * rgb.shape[1]), min_score=self.min_score)

    def gravity(self, rgb: np.ndarray, points: np.ndarray, valid: np.ndarray) -> tuple[float, float, float]:
        if self.gravity_model is not None:
            gravity = self.gravity_model.gravity_cam(rgb)
            if gravity is not None:
                return gravity
        estimate = estimate_gravity(points, valid, self.gravity_config)
        if self.fallback_gravity_cam is None:
            if estimate is None:
                raise DataError(
                    "no gravity: no gravity model and no horizontal support plane in the point map"
                )
            return estimate.gravity_cam
        if estimate is not None and _frame_defined(estimate.gravity_cam):
            return estimate.gravity_cam
        return self.fallback_gravity_cam  # no support plane, or one the camera looks straight at

    def extract(
        self, rgb: np.ndarray, points: np.ndarray, valid: np.ndarray, scene: Scene
    ) -> ObjectExtraction:
        proposals = self.proposals(rgb, scene)[:MAX_INSTANCES]
        if not proposals:
            raise DataError("no objects: nothing detected")
        masks, _ = self.segmenter.segment(rgb, [p.box for p in proposals])
        if len(masks) != len(proposals):
            raise DataError(f"segmenter returned {len(masks)} masks for {len(proposals)} boxes")
        masks = subtract_contained(masks)
        gravity = self.gravity(rgb, points, valid)
        GravityFrame.from_gravity(gravity)  # fail early (ValueError, a data error) for straight-down views

        # one instance map: larger masks first, so smaller (usually nearer, or contained) objects stay on top
        instance = np.zeros(rgb.shape[:2], dtype=np.uint8)
        order = sorted(range(len(masks)), key=lambda i: -int(masks[i].sum()))
        for rank, index in enumerate(order, 1):
            instance[masks[index]] = rank
        objects: list[SceneObject] = []
        for rank, index in enumerate(order, 1):
            proposal, mask = proposals[index], instance == rank
            num_pixels = int(mask.sum())
            try:
                if num_pixels < self.min_mask_pixels:
                    raise DataError(f"mask of {num_pixels} pixels (< {self.min_mask_pixels})")
                azimuth = None
                if self.orientation_model is not None:
                    azimuth = self.orientation_model.view_azimuth_deg(rgb, proposal.box)
                box3d, front_grav = box_from_mask(points, valid, mask, gravity, self.cloud_config, azimuth)
            except DataError as err:
                self.skipped.append((scene.scene_id, f"{proposal.category}: {err}"))
                instance[mask] = 0
                continue
            objects.append(
                SceneObject(
                    instance_id=rank,
                    category=proposal.category,
                    box2d=box2d_from_mask(mask) or proposal.box,
                    box3d=box3d,
                    front_grav=front_grav,
                    num_pixels=num_pixels,
                    attributes={"detector_score": f"{proposal.score:.3f}"},
                )
            )
        if not objects:
            raise DataError(f"no objects: none of {len(proposals)} detections gave a 3D box")
        return ObjectExtraction(objects=objects, instance_mask=instance, gravity_cam=gravity)


def _frame_defined(gravity_cam: tuple[float, float, float]) -> bool:
    try:
        GravityFrame.from_gravity(gravity_cam)
    except ValueError:
        return False
    return True
