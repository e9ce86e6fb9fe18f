"""object_clouds: the objects of each scene, each with its pixels in an instance mask and 3D points behind it.

Ground-truth scenes already list their objects with 3D boxes. Their instance mask is the source's own (synthetic,
official shards) or, for sources that label boxes only (Omni3D, CA-1M), made here (`ground_truth_masks`):
- dense sensor depth: a pixel belongs to the object whose 3D box (grown by `BOX_TOLERANCE_M`) holds its 3D
  point, the smallest such box when several do, within the object's 2D box;
- sparse sensor depth (lidar) or estimated depth (MoGe-2's scale need not match the labelled boxes) with a
  segmenter configured: SAM-2 prompted with each object's 2D box, nearer objects painted over farther ones;
  without a segmenter, the depth inside each box as above (for lidar: the returns inside it).
Every labelled object stays in the scene: one with no pixel (fully occluded, or its mask came out empty) is kept
as known but not askable (`askable=False`, `attributes["not_askable"]`), so counts and references still see it;
`num_pixels` is set from the mask. A scene with no askable object is rejected. Other scenes go to an
`ObjectExtractor` (detector + SAM-2 + DBSCAN + box fitting in the paper, supplied by the in-the-wild path), whose
instance mask is stored under `object_clouds/<shard>/masks/` and whose gravity estimate fills `Scene.gravity_cam`;
its objects must have a non-empty mask with valid depth, else they are dropped with a rejection naming
`scene_id/instance_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assets.geometry import GravityFrame, depth_to_points, points_in_box
from assets.point_maps import read_depth
from assets.records import Scene, SceneObject, Vec3
from assets.scene_stage import load_scene_rgb, run_scene_stage
from assets.stage import DataError, StageReport, model_errors
from assets.storage import atomic_write_bytes, decode_mask_png, encode_mask_png

STAGE = "object_clouds"
UPSTREAM = "point_maps"
BOX_TOLERANCE_M = 0.03  # a labelled box is drawn tight; depth is noisy by about this much at room scale


@dataclass
class ObjectExtraction:
    """What an extractor returns for one image: objects, their instance mask (values = instance ids), gravity."""

    objects: list[SceneObject]
    instance_mask: np.ndarray  # (H, W) integer, 0 = background
    gravity_cam: Vec3 | None = None


@runtime_checkable
class ObjectExtractor(Protocol):
    def extract(
        self, rgb: np.ndarray, points: np.ndarray, valid: np.ndarray, scene: Scene
    ) -> ObjectExtraction: ...


@runtime_checkable
class BoxSegmenter(Protocol):
    """SAM-2's role (assets.wild.segment.Sam2Segmenter): one boolean mask per prompt box."""

    def segment(self, rgb: np.ndarray, boxes: list) -> tuple[list[np.ndarray], list[float]]: ...


def read_mask(root: Path, scene: Scene) -> np.ndarray:
    if scene.mask_file is None:
        raise DataError(f"no mask file: scene {scene.scene_id} lists objects but has no instance mask")
    try:
        mask = decode_mask_png(Path(root) / scene.mask_file)
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"unreadable mask: {scene.mask_file}: {err}") from err
    expected = (scene.intrinsics.height, scene.intrinsics.width)
    if mask.shape != expected:
        raise DataError(f"mask shape mismatch: {mask.shape} vs intrinsics {expected}")
    return mask


def validate_objects(
    scene: Scene,
    mask: np.ndarray,
    valid: np.ndarray,
    report: StageReport,
    keep_unmasked: bool = False,
    require_depth: bool = True,
) -> list[SceneObject]:
    """Objects with `num_pixels` from the mask. An object with an empty mask, or (`require_depth`) no valid 3D
    point under it, is dropped with a rejection `scene_id/instance_id`, or, with `keep_unmasked` (labelled
    objects), kept as known but not askable with that reason."""
    kept: list[SceneObject] = []
    seen: set[int] = set()
    for obj in scene.objects:
        item = f"{scene.scene_id}/{obj.instance_id}"
        if obj.instance_id in seen:
            report.reject(item, f"DataError: duplicate instance id: {obj.instance_id}")
            continue
        seen.add(obj.instance_id)
        pixels = mask == obj.instance_id
        num_pixels = int(np.count_nonzero(pixels))
        problem = None
        if num_pixels == 0:
            problem = f"empty mask: {obj.category} has no pixel in the instance mask"
        elif require_depth and not np.any(pixels & valid):
            problem = f"no valid 3D points: {obj.category} mask has no valid depth"
        if problem is None:
            kept.append(obj.model_copy(update={"num_pixels": num_pixels}))
        elif keep_unmasked:
            reasons = "; ".join(r for r in (obj.attributes.get("not_askable"), problem) if r)
            kept.append(
                obj.model_copy(
                    update={
                        "num_pixels": num_pixels,
                        "askable": False,
                        "attributes": {**obj.attributes, "not_askable": reasons},
                    }
                )
            )
        else:
            report.reject(item, f"DataError: {problem}")
    return kept


def ground_truth_objects(
    root: Path,
    scene: Scene,
    report: StageReport,
    out_dir: Path | None = None,
    shard: str = "",
    segmenter: BoxSegmenter | None = None,
) -> Scene:
    depth = read_depth(root, scene)
    valid = np.isfinite(depth) & (depth > 0)
    extra = {"object_source": "ground_truth"}
    if scene.mask_file is not None:
        mask = read_mask(root, scene)
    elif out_dir is None:
        raise DataError(f"no mask file: scene {scene.scene_id} lists objects but has no instance mask")
    else:
        points = depth_to_points(depth, scene.intrinsics)
        rgb = load_scene_rgb(root, scene) if segmenter is not None else None
        mask, extra["mask_source"] = ground_truth_masks(scene, points, valid, rgb, segmenter)
        name = f"masks/{scene.scene_id}.png"
        atomic_write_bytes(out_dir / name, encode_mask_png(mask))
        scene = scene.model_copy(update={"mask_file": f"{STAGE}/{shard}/{name}"})
    sparse = scene.metadata.get("depth_density") == "sparse"
    kept = validate_objects(scene, mask, valid, report, keep_unmasked=True, require_depth=not sparse)
    return _with_objects(scene, kept, extra)


def ground_truth_masks(
    scene: Scene,
    points: np.ndarray,
    valid: np.ndarray,
    rgb: np.ndarray | None = None,
    segmenter: BoxSegmenter | None = None,
) -> tuple[np.ndarray, str]:
    """(instance mask, how it was made) for a scene whose objects have labelled 3D boxes but no mask (module
    docstring: depth inside the box, or SAM-2 on the 2D box for sparse depth)."""
    if len(scene.objects) > 255:
        raise DataError(f"{len(scene.objects)} objects do not fit an 8-bit instance mask")
    sparse = scene.metadata.get("depth_density") == "sparse"
    estimated = scene.metadata.get("point_map_source") == "estimated"
    if (sparse or estimated) and segmenter is not None and rgb is not None:
        return _segmented_masks(scene, rgb, segmenter), "sam2_box_prompt"
    if scene.gravity_cam is None:
        raise DataError("no gravity: labelled boxes cannot be placed without the scene's gravity")
    frame = GravityFrame.from_gravity(scene.gravity_cam)
    height, width = valid.shape
    owner = np.zeros((height, width), dtype=np.uint8)
    owner_volume = np.full((height, width), np.inf)
    for obj in scene.objects:
        box2d = obj.box2d
        x0, y0 = max(0, int(np.floor(box2d.x0)) - 2), max(0, int(np.floor(box2d.y0)) - 2)
        x1, y1 = min(width, int(np.ceil(box2d.x1)) + 2), min(height, int(np.ceil(box2d.y1)) + 2)
        window = valid[y0:y1, x0:x1]
        if not window.any():
            continue
        inside = np.zeros_like(window)
        inside[window] = points_in_box(points[y0:y1, x0:x1][window], obj.box3d, frame, tol=BOX_TOLERANCE_M)
        volume = obj.box3d.width * obj.box3d.height * obj.box3d.length
        smaller = inside & (volume < owner_volume[y0:y1, x0:x1])
        owner[y0:y1, x0:x1][smaller] = obj.instance_id
        owner_volume[y0:y1, x0:x1][smaller] = volume
    return owner, "sparse_depth_in_box" if sparse else "depth_in_box"


def _segmented_masks(scene: Scene, rgb: np.ndarray, segmenter: BoxSegmenter) -> np.ndarray:
    masks, _ = segmenter.segment(rgb, [o.box2d for o in scene.objects])
    if len(masks) != len(scene.objects):
        raise DataError(f"segmenter returned {len(masks)} masks for {len(scene.objects)} boxes")
    height, width = rgb.shape[:2]
    owner = np.zeros((height, width), dtype=np.uint8)
    order = sorted(
        range(len(scene.objects)), key=lambda i: -float(np.linalg.norm(scene.objects[i].box3d.center_cam))
    )
    for i in order:  # far to near: a nearer object covers a farther one
        box = scene.objects[i].box2d  # a mask pixel outside its prompt box (+2 px) is not the labelled object
        inside = np.zeros((height, width), dtype=bool)
        inside[
            max(0, int(box.y0) - 2) : int(np.ceil(box.y1)) + 2,
            max(0, int(box.x0) - 2) : int(np.ceil(box.x1)) + 2,
        ] = True
        owner[np.asarray(masks[i], dtype=bool) & inside] = scene.objects[i].instance_id
    return owner


def extracted_objects(
    root: Path, scene: Scene, extractor: ObjectExtractor, out_dir: Path, shard: str, report: StageReport
) -> Scene:
    depth = read_depth(root, scene)
    points = depth_to_points(depth, scene.intrinsics).astype(np.float32)
    valid = np.isfinite(points).all(axis=-1)
    rgb = load_scene_rgb(root, scene)
    with model_errors(f"object extractor {type(extractor).__name__}"):
        extraction = extractor.extract(rgb, points, valid, scene)
    mask = np.asarray(extraction.instance_mask)
    if mask.shape != valid.shape:
        raise DataError(f"mask shape mismatch: extractor mask {mask.shape} vs point map {valid.shape}")
    scene = scene.model_copy(
        update={
            "objects": list(extraction.objects),
            "gravity_cam": extraction.gravity_cam
            if extraction.gravity_cam is not None
            else scene.gravity_cam,
        }
    )
    kept = validate_objects(scene, mask, valid, report)
    name = f"masks/{scene.scene_id}.png"
    atomic_write_bytes(out_dir / name, encode_mask_png(mask))
    scene = scene.model_copy(update={"mask_file": f"{STAGE}/{shard}/{name}"})
    return _with_objects(scene, kept, {"object_source": "extracted"})


def _with_objects(scene: Scene, kept: list[SceneObject], extra: dict[str, str]) -> Scene:
    if not any(obj.askable for obj in kept):
        raise DataError(f"no objects: none of the {len(scene.objects)} objects has a usable mask")
    metadata = {
        **scene.metadata,
        **extra,
        "objects_in": len(scene.objects),
        "objects_out": len(kept),
        "objects_askable": sum(obj.askable for obj in kept),
    }
    return scene.model_copy(update={"objects": kept, "metadata": metadata})


def object_clouds_shard(
    root: Path, shard: str, extractor: ObjectExtractor | None = None, segmenter: BoxSegmenter | None = None
) -> StageReport:
    """Build `object_clouds/<shard>/` from `point_maps/<shard>`; scenes left with no askable object are rejected.
    `segmenter` (default: the extractor's own, if it has one) masks labelled boxes over sparse depth."""
    segmenter = segmenter if segmenter is not None else getattr(extractor, "segmenter", None)

    # over kept scenes, filled while the shard is processed (run_scene_stage merges it afterwards)
    stats = {
        "extractor": type(extractor).__name__ if extractor is not None else "none",
        "objects_in": 0,
        "objects_out": 0,
    }

    def one(scene: Scene, report: StageReport, tmp: Path) -> Scene:
        if scene.has_ground_truth_3d:
            out = ground_truth_objects(root, scene, report, tmp, shard, segmenter)
        elif extractor is None:
            raise DataError("no object extractor configured: scene has no ground-truth objects")
        else:
            out = extracted_objects(root, scene, extractor, tmp, shard, report)
        stats["objects_in"] += int(out.metadata["objects_in"])
        stats["objects_out"] += int(out.metadata["objects_out"])
        return out

    return run_scene_stage(
        root,
        STAGE,
        shard,
        UPSTREAM,
        one,
        extra_preview=lambda s: {
            "objects_in": s.metadata.get("objects_in", ""),
            "objects_out": s.metadata.get("objects_out", ""),
        },
        metadata=stats,
    )
