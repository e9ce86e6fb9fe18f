"""object_clouds: the objects of each scene, each with a non-empty mask and 3D points behind it.

Ground-truth scenes already list their objects with 3D boxes; here each object is checked against its instance
mask and the point map: an object whose mask is empty (fully occluded, or cut by the image border) or whose mask
has no valid 3D point cannot be asked about, so it is dropped with a rejection naming `scene_id/instance_id`, and
`num_pixels` is set from the mask. Other scenes go to an `ObjectExtractor` (detector + SAM-2 + DBSCAN + box
fitting in the paper, supplied by the in-the-wild path), whose instance mask is stored under
`object_clouds/<shard>/masks/` and whose gravity estimate fills `Scene.gravity_cam`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assets.geometry import depth_to_points
from assets.point_maps import read_depth
from assets.records import Scene, SceneObject, Vec3
from assets.scene_stage import load_scene_rgb, run_scene_stage
from assets.stage import DataError, StageReport, model_errors
from assets.storage import atomic_write_bytes, decode_mask_png, encode_mask_png

STAGE = "object_clouds"
UPSTREAM = "point_maps"


@dataclass
class ObjectExtraction:
    """What an extractor returns for one image: objects, their instance mask (values = instance ids), gravity."""

    objects: list[SceneObject]
    instance_mask: np.ndarray  # (H, W) integer, 0 = background
    gravity_cam: Vec3 | None = None


@runtime_checkable
class ObjectExtractor(Protocol):
    def extract(self, rgb: np.ndarray, points: np.ndarray, valid: np.ndarray, scene: Scene) -> ObjectExtraction: ...


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
    scene: Scene, mask: np.ndarray, valid: np.ndarray, report: StageReport
) -> list[SceneObject]:
    """Objects with a non-empty mask and at least one valid 3D point, with `num_pixels` from the mask; the rest
    are recorded as rejections `scene_id/instance_id`."""
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
        if num_pixels == 0:
            report.reject(item, f"DataError: empty mask: {obj.category} has no pixel in the instance mask")
            continue
        if not np.any(pixels & valid):
            report.reject(item, f"DataError: no valid 3D points: {obj.category} mask has no valid depth")
            continue
        kept.append(obj.model_copy(update={"num_pixels": num_pixels}))
    return kept


def ground_truth_objects(root: Path, scene: Scene, report: StageReport) -> Scene:
    depth = read_depth(root, scene)
    valid = np.isfinite(depth) & (depth > 0)
    mask = read_mask(root, scene)
    kept = validate_objects(scene, mask, valid, report)
    return _with_objects(scene, kept, {"object_source": "ground_truth"})


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
            "gravity_cam": extraction.gravity_cam if extraction.gravity_cam is not None else scene.gravity_cam,
        }
    )
    kept = validate_objects(scene, mask, valid, report)
    name = f"masks/{scene.scene_id}.png"
    atomic_write_bytes(out_dir / name, encode_mask_png(mask))
    scene = scene.model_copy(update={"mask_file": f"{STAGE}/{shard}/{name}"})
    return _with_objects(scene, kept, {"object_source": "extracted"})


def _with_objects(scene: Scene, kept: list[SceneObject], extra: dict[str, str]) -> Scene:
    if not kept:
        raise DataError(f"no objects: none of the {len(scene.objects)} objects has a usable mask")
    metadata = {**scene.metadata, **extra, "objects_in": len(scene.objects), "objects_out": len(kept)}
    return scene.model_copy(update={"objects": kept, "metadata": metadata})


def object_clouds_shard(root: Path, shard: str, extractor: ObjectExtractor | None = None) -> StageReport:
    """Build `object_clouds/<shard>/` from `point_maps/<shard>`; scenes left with no object are rejected."""

    # over kept scenes, filled while the shard is processed (run_scene_stage merges it afterwards)
    stats = {"extractor": type(extractor).__name__ if extractor is not None else "none", "objects_in": 0, "objects_out": 0}

    def one(scene: Scene, report: StageReport, tmp: Path) -> Scene:
        if scene.has_ground_truth_3d:
            out = ground_truth_objects(root, scene, report)
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
