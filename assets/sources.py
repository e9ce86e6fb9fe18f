"""source_images from real data: web image folders, COCO/Objects365 boxes, Omni3D 3D boxes (official shards: official.py).

Every importer writes the same `source_images/<shard>/` layout as the synthetic source (assets/synthetic/):
`images/<scene_id>.jpg`, optional `depth/` and `masks/`, `scenes.jsonl` (one `Scene` per line, paths relative to
the data root), `rejected.jsonl` and `_manifest.json`, built under a temp name and swapped in whole
(`assets.storage.atomic_dir`). A file that cannot be used (corrupt image, malformed annotation) becomes a
`Rejection` with its reason; corrupt image bytes are also copied to `quarantine/` so nothing is lost.

What each kind carries forward:
- web images: nothing but pixels; intrinsics are a placeholder (60 degree horizontal FOV) that the point-map
  estimator replaces. Paper 7.1.
- COCO / Objects365 (paper 7.2): 2D boxes and categories, kept as `Scene.annotations_2d` (`SceneObject` needs a
  3D box, which only the object stage can give); the object extractor prompts SAM with them instead of detecting.
- Omni3D (paper Sec. 8): cameras and 3D boxes are ground truth, so estimation is skipped
  (`has_ground_truth_3d`); boxes are converted to our convention (`omni3d_box`) and instance masks are rasterised
  from the projected boxes (nearest box wins) because the object stage checks every object against a mask.
- official HiSpatial shards: assets/official.py (`hispatial_shard`), on this module's shared writer.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.optimize import linear_sum_assignment

from assets.geometry import GravityFrame, box2d_iou
from assets.records import Annotation2D, Box2D, Box3D, Intrinsics, Scene, SceneObject
from assets.stage import DataError, StageReport, process_items
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    check_shard_name,
    directory_digest,
    encode_jpeg,
    encode_mask_png,
    shard_dir,
    write_jsonl,
    write_scenes,
)

STAGE = "source_images"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PLACEHOLDER_HFOV_DEG = 60.0


# ------------------------------------------------------------------------------------------ shared writer


@dataclass
class _Item:
    """One thing to import; `build` turns it into a Scene, writing files under the temp shard directory."""

    item_id: str
    build: Callable[[Path], Scene]


def _write_shard(root: Path, shard: str, source: str, items: Iterable[_Item]) -> StageReport:
    final = shard_dir(Path(root), STAGE, check_shard_name(shard))
    report = StageReport(stage=STAGE, shard=shard, output_dir=final)
    with atomic_dir(final) as tmp:
        (tmp / "images").mkdir()
        scenes = process_items(items, lambda item: item.build(tmp), report, lambda item: item.item_id)
        duplicates = [sid for sid, n in Counter(s.scene_id for s in scenes).items() if n > 1]
        if duplicates:
            raise ValueError(f"duplicate scene ids in {source} input: {duplicates[:5]}")
        write_scenes(tmp / "scenes.jsonl", scenes)
        if report.rejections:
            write_jsonl(tmp / "rejected.jsonl", [r.as_dict() for r in report.rejections])
        categories = Counter(obj.category for s in scenes for obj in s.objects)
        categories_2d = Counter(a.category for s in scenes for a in s.annotations_2d)
        report.metadata = {
            "source": source,
            "scenes": len(scenes),
            "objects_3d": sum(categories.values()),
            "boxes_2d": sum(categories_2d.values()),
            "num_categories": len(categories | categories_2d),
            "quarantined": sum(1 for _ in (tmp / "quarantine").glob("*")) if (tmp / "quarantine").exists() else 0,
        }
        report.metadata["digest"] = directory_digest(tmp)
        report.preview = [{"scene_id": s.scene_id, "image": s.image_file, "objects": len(s.objects)} for s in scenes[:5]]
        atomic_write_json(tmp / "_manifest.json", report.manifest())
    return report


def _scene_id(shard: str, name: str) -> str:
    return f"{shard}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")


def _decode_image(data: bytes, tmp: Path, name: str) -> np.ndarray:
    """Decode image bytes; corrupt bytes are copied to quarantine/ and raise DataError naming the file."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        (tmp / "quarantine").mkdir(exist_ok=True)
        (tmp / "quarantine" / Path(name).name).write_bytes(data)
        raise DataError(f"unreadable image: {name}: {err}") from err


def _write_image(tmp: Path, shard: str, scene_id: str, rgb: np.ndarray) -> str:
    (tmp / "images" / f"{scene_id}.jpg").write_bytes(encode_jpeg(rgb, quality=92))
    return f"{STAGE}/{shard}/images/{scene_id}.jpg"


def placeholder_intrinsics(width: int, height: int, hfov_deg: float = PLACEHOLDER_HFOV_DEG) -> Intrinsics:
    """Intrinsics for an image of unknown camera: the point-map estimator (MoGe-2) replaces them."""
    fx = width / (2 * math.tan(math.radians(hfov_deg) / 2))
    return Intrinsics(fx=fx, fy=fx, cx=width / 2, cy=height / 2, width=width, height=height)


# ------------------------------------------------------------------------------------------ web images


def images_shard(root: Path, shard: str, images: Path | Sequence[Path], source: str = "web") -> StageReport:
    """Import a folder (recursively, sorted) or an explicit list of image files."""
    if isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a directory")
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        base = folder
    else:
        paths, base = [Path(p) for p in images], None

    def item(path: Path) -> _Item:
        name = str(path.relative_to(base).with_suffix("")) if base else path.stem

        def build(tmp: Path) -> Scene:
            rgb = _decode_image(path.read_bytes(), tmp, path.name)
            sid = _scene_id(shard, name)
            h, w = rgb.shape[:2]
            return Scene(
                scene_id=sid, source=source, shard=shard, intrinsics=placeholder_intrinsics(w, h),
                image_file=_write_image(tmp, shard, sid, rgb),
                metadata={"original_file": str(path), "intrinsics_source": "placeholder"},
            )

        return _Item(str(path), build)

    return _write_shard(root, shard, source, (item(p) for p in paths))


# ------------------------------------------------------------------------------------------ COCO / Objects365


def _read_coco_json(annotation_file: Path, max_images: int | None) -> tuple[dict[int, str], dict[int, list[dict]], list[dict]]:
    """The COCO annotation layout that COCO, Objects365 and Omni3D share: (category id -> name, image id ->
    its annotations, the first `max_images` image entries)."""
    data = json.loads(Path(annotation_file).read_text())
    categories = {c["id"]: c["name"] for c in data.get("categories", [])}
    by_image: dict[int, list[dict]] = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    return categories, by_image, data.get("images", [])[:max_images]


def coco_shard(
    root: Path, shard: str, annotation_file: Path, image_dir: Path, source: str = "objects365",
    min_box_area: float = 16.0, max_images: int | None = None,
) -> StageReport:
    """Import a COCO-format detection set (COCO, Objects365): images with their 2D boxes and category names.

    Crowd regions, boxes under `min_box_area` pixels and boxes lying outside the image are not objects one can
    ask about and are left out; an image whose every box is left out is kept (it may still serve L0 questions) but
    carries no annotations.
    """
    categories, by_image, images = _read_coco_json(annotation_file, max_images)

    def item(entry: dict) -> _Item:
        def build(tmp: Path) -> Scene:
            path = Path(image_dir) / entry["file_name"]
            rgb = _decode_image(path.read_bytes(), tmp, entry["file_name"])
            h, w = rgb.shape[:2]
            if (entry.get("width", w), entry.get("height", h)) != (w, h):
                raise DataError(f"size mismatch: annotation says {entry['width']}x{entry['height']}, image is {w}x{h}")
            boxes = []
            for ann in by_image.get(entry["id"], []):
                if ann.get("iscrowd", 0):
                    continue
                x, y, bw, bh = (float(v) for v in ann["bbox"])
                x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
                if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < min_box_area:
                    continue
                if ann["category_id"] not in categories:
                    raise DataError(f"annotation {ann.get('id')} has unknown category {ann['category_id']}")
                boxes.append(Annotation2D(category=categories[ann["category_id"]], annotation_id=ann.get("id"),
                                          box2d=Box2D(x0=x0, y0=y0, x1=x1, y1=y1)))
            sid = _scene_id(shard, str(entry["id"]))
            return Scene(
                scene_id=sid, source=source, shard=shard, intrinsics=placeholder_intrinsics(w, h),
                image_file=_write_image(tmp, shard, sid, rgb), annotations_2d=boxes,
                metadata={"original_file": entry["file_name"], "intrinsics_source": "placeholder"},
            )

        return _Item(str(entry.get("file_name", entry.get("id"))), build)

    return _write_shard(root, shard, source, (item(e) for e in images))


# ------------------------------------------------------------------------------------------ Omni3D


def omni3d_gravity(rotations: Sequence[np.ndarray]) -> np.ndarray:
    """Gravity in the camera frame from Omni3D's gravity-aligned boxes: their local y axis (R_cam[:, 1]) is
    vertical; the average of those axes, signed to point down in the image (+y), is gravity."""
    axes = np.array([np.asarray(r, dtype=np.float64)[:, 1] for r in rotations])
    axes *= np.sign(axes[:, 1:2] + 1e-12)
    mean = axes.mean(axis=0)
    return mean / np.linalg.norm(mean)


def omni3d_box(
    center_cam: Sequence[float], dimensions: Sequence[float], rotation: np.ndarray, frame: GravityFrame
) -> Box3D:
    """Convert an Omni3D box to ours.

    Omni3D (Cube R-CNN): `dimensions` = [w, h, l] along the object's local x, y, z axes, corners
    R_cam @ (+-w/2, +-h/2, +-l/2) + center, local y vertical. Ours: a gravity-aligned box whose width is the
    horizontal extent more nearly parallel to the image plane (Omni3D boxes carry no front we can trust), yaw of
    the length axis from `right` towards `forward`. Same 8 corners, other names.
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    dim_w, dim_h, dim_l = (float(v) for v in dimensions)
    axis_x = frame.to_grav(rotation[:, 0])[:2]
    axis_z = frame.to_grav(rotation[:, 2])[:2]
    horizontal = [(axis_x / np.linalg.norm(axis_x), dim_w), (axis_z / np.linalg.norm(axis_z), dim_l)]
    # width: the one more parallel to `right` (gravity-frame x); length: the other, pointing away from the camera
    horizontal.sort(key=lambda pair: abs(pair[0][0]), reverse=True)
    (_, width), (length_axis, length) = horizontal
    if length_axis[1] < 0:
        length_axis = -length_axis
    return Box3D(center_cam=tuple(float(c) for c in center_cam), width=width, height=dim_h, length=length,
                 yaw=float(np.arctan2(length_axis[1], length_axis[0])))


def _rasterise_boxes(boxes: list[tuple[int, Box3D]], frame: GravityFrame, K: Intrinsics) -> np.ndarray:
    """Instance mask from projected 3D boxes: each box's silhouette (convex hull of its projected corners),
    far boxes first so nearer ones cover them."""
    from scipy.spatial import ConvexHull

    from assets.geometry import box_corners_cam, project

    canvas = Image.new("L", (K.width, K.height), 0)
    draw = ImageDraw.Draw(canvas)
    for instance_id, box in sorted(boxes, key=lambda b: -float(np.linalg.norm(b[1].center_cam))):
        corners = box_corners_cam(box, frame)
        if (corners[:, 2] <= 0.05).any():
            continue
        uv = project(corners, K)
        hull = uv[ConvexHull(uv).vertices]
        draw.polygon([tuple(p) for p in hull], fill=instance_id)
    return np.asarray(canvas)


def omni3d_shard(
    root: Path, shard: str, annotation_file: Path, image_dir: Path, source: str = "omni3d",
    max_images: int | None = None,
) -> StageReport:
    """Import an Omni3D-format set: per-image K, 3D boxes (center_cam, dimensions, R_cam), 2D boxes, categories.

    Boxes flagged `behind_camera`, `valid3D == False` or with `visibility < 0.1` (when given) are left out. Objects
    get `visible_fraction` from Omni3D's visibility/truncation where given.
    """
    categories, by_image, images = _read_coco_json(annotation_file, max_images)

    def item(entry: dict) -> _Item:
        def build(tmp: Path) -> Scene:
            rel = entry.get("file_path") or entry["file_name"]
            rgb = _decode_image((Path(image_dir) / rel).read_bytes(), tmp, rel)
            h, w = rgb.shape[:2]
            K = np.asarray(entry["K"], dtype=np.float64)
            intrinsics = Intrinsics(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], width=w, height=h)
            anns = [a for a in by_image.get(entry["id"], [])
                    if not a.get("behind_camera", False) and a.get("valid3D", True)
                    and a.get("visibility", 1.0) >= 0.1 and min(a["dimensions"]) > 0]
            if not anns:
                raise DataError(f"no usable 3D box in {rel}")
            gravity = omni3d_gravity([a["R_cam"] for a in anns])
            frame = GravityFrame.from_gravity(gravity)
            objects, boxes = [], []
            for instance_id, ann in enumerate(anns, 1):
                box = omni3d_box(ann["center_cam"], ann["dimensions"], np.asarray(ann["R_cam"]), frame)
                x0, y0, x1, y1 = ann.get("bbox2D_tight") or ann.get("bbox2D_proj") or ann["bbox2D_trunc"]
                box2d = Box2D(x0=max(0.0, x0), y0=max(0.0, y0), x1=min(float(w), x1), y1=min(float(h), y1))
                category = ann.get("category_name") or categories[ann["category_id"]]
                visible = float(ann.get("visibility", 1.0)) * (1.0 - float(ann.get("truncation", 0.0)))
                objects.append(SceneObject(instance_id=instance_id, category=category, box2d=box2d, box3d=box,
                                           visible_fraction=min(1.0, max(0.0, visible))))
                boxes.append((instance_id, box))
            sid = _scene_id(shard, str(entry["id"]))
            (tmp / "masks").mkdir(exist_ok=True)
            (tmp / "masks" / f"{sid}.png").write_bytes(encode_mask_png(_rasterise_boxes(boxes, frame, intrinsics)))
            return Scene(
                scene_id=sid, source=source, shard=shard, intrinsics=intrinsics,
                gravity_cam=tuple(float(c) for c in gravity), objects=objects, has_ground_truth_3d=True,
                image_file=_write_image(tmp, shard, sid, rgb), mask_file=f"{STAGE}/{shard}/masks/{sid}.png",
                metadata={"original_file": rel, "intrinsics_source": "ground_truth",
                          "dataset": str(entry.get("dataset_id", source))},
            )

        return _Item(str(entry.get("file_path", entry.get("id"))), build)

    return _write_shard(root, shard, source, (item(e) for e in images))


# ------------------------------------------------------------------------------------------ category labels


def match_categories(
    gt_boxes: Sequence[Box2D], detections: Sequence[tuple[Box2D, str]], min_iou: float = 0.4
) -> list[str | None]:
    """Paper 7.3: label unlabeled ground-truth boxes with detector categories by Hungarian matching on IoU; a
    pair under `min_iou` is discarded (None: the box stays unlabeled)."""
    labels: list[str | None] = [None] * len(gt_boxes)
    if not gt_boxes or not detections:
        return labels
    iou = np.array([[box2d_iou(g, d) for d, _ in detections] for g in gt_boxes])
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols, strict=True):
        if iou[r, c] >= min_iou:
            labels[r] = detections[c][1]
    return labels


def relabel_objects(
    scene: Scene, detections: Sequence[tuple[Box2D, str]], unlabeled: Sequence[str] = ("object",),
    min_iou: float = 0.4,
) -> tuple[Scene, int]:
    """Give ground-truth objects labelled only "object" (CA-1M) the category of the detector box matched to them
    (`match_categories`); returns the scene and how many objects were labelled. Unmatched ones keep their label
    (the reference stage then falls back to "the object (highlighted by the ... box)")."""
    targets = [o for o in scene.objects if o.category in unlabeled]
    labels = match_categories([o.box2d for o in targets], detections, min_iou)
    new = {o.instance_id: label for o, label in zip(targets, labels, strict=True) if label is not None}
    objects = [o.model_copy(update={"category": new[o.instance_id]}) if o.instance_id in new else o
               for o in scene.objects]
    return scene.model_copy(update={"objects": objects}), len(new)
