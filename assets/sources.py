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
- Omni3D and CA-1M (paper Sec. 8): their own modules, assets/omni3d.py and assets/ca1m.py, on this writer.
- official HiSpatial shards: assets/official.py (`hispatial_shard`), on this module's shared writer.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from assets.geometry import box2d_iou
from assets.images import MAX_PIXELS_DEFAULT, DecodedImage, decode_image
from assets.records import Annotation2D, Box2D, Intrinsics, Scene
from assets.stage import DataError, StageReport, check_not_systemic, process_items
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    check_shard_name,
    directory_digest,
    encode_jpeg,
    shard_dir,
    write_jsonl,
    write_scenes,
)

STAGE = "source_images"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PLACEHOLDER_HFOV_DEG = 60.0
# Longest image side kept at import (web images, COCO/Objects365): larger photos are downscaled, their original
# size kept in the record. 2048 is above every model's working resolution (MoGe-2 ~1200-3600 tokens, SAM-2 1024,
# PaliGemma-2 448/896) and bounds a shard's peak memory; a source spec's option `max_image_side` changes it
# (null keeps full size).
MAX_IMAGE_SIDE_DEFAULT = 2048


# ------------------------------------------------------------------------------------------ shared writer


@dataclass
class _Item:
    """One thing to import; `build` turns it into a Scene, writing files under the temp shard directory."""

    item_id: str
    build: Callable[[Path], Scene]


def _write_shard(
    root: Path,
    shard: str,
    source: str,
    items: Iterable[_Item],
    extra_rejections: Sequence[tuple[str, str]] | None = None,
    report: StageReport | None = None,
) -> StageReport:
    """Build every item into the temp shard; a bad item is a rejection, a shard whose every item is bad fails
    (assets.stage.check_not_systemic). `extra_rejections` (item, reason) are input records that are not items
    (a COCO annotation without an image), listed in rejected.jsonl with the rest. `report`: pass one when `build`
    records rejections of parts of an item (one annotation of an image)."""
    final = shard_dir(Path(root), STAGE, check_shard_name(shard))
    report = report or StageReport(stage=STAGE, shard=shard, output_dir=final)
    report.output_dir = final
    with atomic_dir(final) as tmp:
        (tmp / "images").mkdir()
        seen: dict[str, str] = {}

        def build(item: _Item) -> Scene:
            scene = item.build(tmp)
            if scene.scene_id in seen:  # _write_image refuses a second image first; this catches the rest
                raise DataError(
                    f"duplicate scene id {scene.scene_id}: already imported from {seen[scene.scene_id]}"
                )
            seen[scene.scene_id] = item.item_id
            return scene

        scenes = process_items(items, build, report, lambda item: item.item_id)
        for item, reason in extra_rejections or []:
            report.reject(item, reason)
        check_not_systemic(report)
        write_scenes(tmp / "scenes.jsonl", scenes)
        write_jsonl(tmp / "rejected.jsonl", [r.as_dict() for r in report.rejections])  # always: empty = none
        categories = Counter(obj.category for s in scenes for obj in s.objects)
        categories_2d = Counter(a.category for s in scenes for a in s.annotations_2d)
        report.metadata = {
            "source": source,
            "scenes": len(scenes),
            "objects_3d": sum(categories.values()),
            "boxes_2d": sum(categories_2d.values()),
            "num_categories": len(categories | categories_2d),
            "quarantined": sum(1 for _ in (tmp / "quarantine").glob("*"))
            if (tmp / "quarantine").exists()
            else 0,
        }
        report.metadata["digest"] = directory_digest(tmp)
        report.preview = [
            {"scene_id": s.scene_id, "image": s.image_file, "objects": len(s.objects)} for s in scenes[:5]
        ]
        atomic_write_json(tmp / "_manifest.json", report.manifest())
    return report


def _scene_id(shard: str, name: str) -> str:
    """`<shard>-<name>` with the name reduced to [A-Za-z0-9._-]. Reducing loses information ("café" and "cafè",
    "a/b" and "a_b" reduce alike), so a reduced name gets the first 8 hex digits of its original's SHA-256: ids
    are unique and depend on the name alone, the same on every run whatever else the folder holds. Names already
    in that alphabet keep their plain id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")
    if slug != name or not slug:
        slug = f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}".lstrip("-")
    return f"{shard}-{slug}"


def _decode(data: bytes, tmp: Path, name: str, **options: object) -> DecodedImage:
    """`assets.images.decode_image` for an importer: unusable bytes are copied to quarantine/ and raise DataError
    naming the file (nothing is lost, and the source folder stays untouched)."""
    try:
        return decode_image(data, **options)  # type: ignore[arg-type]
    except DataError as err:
        (tmp / "quarantine").mkdir(exist_ok=True)
        target = tmp / "quarantine" / Path(name).name
        if target.exists() and target.read_bytes() != data:  # same name from another folder: keep both
            target = target.with_name(f"{target.stem}-{hashlib.sha256(data).hexdigest()[:8]}{target.suffix}")
        target.write_bytes(data)
        kind, _, detail = str(err).partition(
            ": "
        )  # "unreadable image: ..." -> "unreadable image: <name>: ..."
        raise DataError(f"{kind}: {name}: {detail}" if detail else f"{kind}: {name}") from err


def _decode_image(data: bytes, tmp: Path, name: str) -> np.ndarray:
    """Full-size, stored-orientation pixels (sources whose annotations fix the pixel grid: Omni3D cameras,
    official HiSpatial depth), converted faithfully to 8-bit RGB."""
    return _decode(data, tmp, name, apply_exif=False).rgb


def _import_metadata(decoded: DecodedImage) -> dict[str, float | int | str | bool]:
    """What the record keeps about the file's own pixels: its size, and the import scale when downscaled."""
    width, height = decoded.original_size
    metadata: dict[str, float | int | str | bool] = {"original_width": width, "original_height": height}
    if decoded.downscaled:
        metadata["import_scale"] = round(decoded.size[0] / width, 6)
    if decoded.exif_applied:
        metadata["exif_orientation"] = decoded.exif_orientation
    if decoded.mode not in ("RGB", "L"):
        metadata["original_mode"] = decoded.mode
    return metadata


def _write_image(tmp: Path, shard: str, scene_id: str, rgb: np.ndarray) -> str:
    path = tmp / "images" / f"{scene_id}.jpg"
    if path.exists():  # two items with one id: the first keeps its image, the second is rejected
        raise DataError(f"duplicate scene id {scene_id}: another item of this shard already has it")
    path.write_bytes(encode_jpeg(rgb, quality=92))
    return f"{STAGE}/{shard}/images/{scene_id}.jpg"


def placeholder_intrinsics(width: int, height: int, hfov_deg: float = PLACEHOLDER_HFOV_DEG) -> Intrinsics:
    """Intrinsics for an image of unknown camera: the point-map estimator (MoGe-2) replaces them."""
    fx = width / (2 * math.tan(math.radians(hfov_deg) / 2))
    return Intrinsics(fx=fx, fy=fx, cx=width / 2, cy=height / 2, width=width, height=height)


# ------------------------------------------------------------------------------------------ web images


def images_shard(
    root: Path,
    shard: str,
    images: Path | Sequence[Path],
    source: str = "web",
    max_image_side: int | None = MAX_IMAGE_SIDE_DEFAULT,
    max_pixels: int = MAX_PIXELS_DEFAULT,
) -> StageReport:
    """Import a folder (recursively, sorted) or an explicit list of image files.

    Photos are turned upright by their EXIF orientation and downscaled to `max_image_side` on their longer side
    (None: full size); the record keeps `original_width`/`original_height`. Files over `max_pixels` are rejected
    (a decompression-bomb guard) and quarantined with the corrupt ones."""
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
            decoded = _decode(
                path.read_bytes(), tmp, path.name, max_side=max_image_side, max_pixels=max_pixels
            )
            sid = _scene_id(shard, name)
            w, h = decoded.size
            return Scene(
                scene_id=sid,
                source=source,
                shard=shard,
                intrinsics=placeholder_intrinsics(w, h),
                image_file=_write_image(tmp, shard, sid, decoded.rgb),
                metadata={
                    "original_file": str(path),
                    "intrinsics_source": "placeholder",
                    **_import_metadata(decoded),
                },
            )

        return _Item(str(path), build)

    return _write_shard(root, shard, source, (item(p) for p in paths))


# ------------------------------------------------------------------------------------------ COCO / Objects365


def _read_coco_json(
    annotation_file: Path,
    max_images: int | None,
    orphans: list[tuple[str, str]] | None = None,
) -> tuple[dict[int, str], dict[int, list[dict]], list[dict]]:
    """The COCO annotation layout that COCO, Objects365 and Omni3D share: (category id -> name, image id ->
    its annotations, the first `max_images` image entries). An annotation that names no image (not an object, no
    `image_id`) belongs to no item: it is left out, and listed in `orphans` as (item, reason) when given."""
    data = json.loads(Path(annotation_file).read_text())
    categories = {c["id"]: c["name"] for c in data.get("categories", [])}
    by_image: dict[int, list[dict]] = {}
    for index, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict) or ann.get("image_id") is None:
            if orphans is not None:
                label = ann.get("id", f"#{index}") if isinstance(ann, dict) else f"#{index}"
                orphans.append(
                    (f"annotation {label}", "DataError: annotation without image_id: belongs to no image")
                )
            continue
        by_image.setdefault(ann["image_id"], []).append(ann)
    return categories, by_image, data.get("images", [])[:max_images]


def _coco_box(ann: dict) -> tuple[float, float, float, float]:
    """A COCO `bbox` [x, y, width, height] as four finite floats; DataError for null, short or non-numeric."""
    bbox = ann.get("bbox")
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise DataError(f"malformed bbox: {bbox!r} (expected [x, y, width, height])")
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise DataError(f"malformed bbox: {bbox!r} (expected four numbers)") from err
    if not all(math.isfinite(v) for v in values):
        raise DataError(f"malformed bbox: {bbox!r} (not finite)")
    return values  # type: ignore[return-value]


def coco_shard(
    root: Path,
    shard: str,
    annotation_file: Path,
    image_dir: Path,
    source: str = "objects365",
    min_box_area: float = 16.0,
    max_images: int | None = None,
    max_image_side: int | None = MAX_IMAGE_SIDE_DEFAULT,
    max_pixels: int = MAX_PIXELS_DEFAULT,
) -> StageReport:
    """Import a COCO-format detection set (COCO, Objects365): images with their 2D boxes and category names.

    Crowd regions, boxes under `min_box_area` pixels (measured on the file's own pixels) and boxes lying outside
    the image are not objects one can ask about and are left out; an image whose every box is left out is kept (it
    may still serve L0 questions) but carries no annotations. A malformed annotation (null or non-numeric `bbox`,
    unknown category) is rejected on its own (`<file>/annotation <id>`), its image kept with the others; one
    without `image_id` is listed as `annotation <id>`. Images larger than `max_image_side` are downscaled with their
    boxes; the declared width/height is checked against the file's own size, the EXIF orientation applied only
    when the declared size says the annotations were drawn on the turned image.
    """
    part_rejections: list[tuple[str, str]] = []  # annotations, not images: filled while the items are built
    categories, by_image, images = _read_coco_json(annotation_file, max_images, part_rejections)

    def item(entry: dict) -> _Item:
        def build(tmp: Path) -> Scene:
            if not isinstance(entry, dict) or entry.get("id") is None or not entry.get("file_name"):
                raise DataError(f"malformed image entry: {str(entry)[:200]} (needs id and file_name)")
            declared = (entry.get("width"), entry.get("height"))
            path = Path(image_dir) / entry["file_name"]
            decoded = _decode(
                path.read_bytes(),
                tmp,
                entry["file_name"],
                max_side=max_image_side,
                max_pixels=max_pixels,
                apply_exif=None,
                expected_size=declared if None not in declared else None,
            )
            w, h = decoded.original_size
            if (entry.get("width", w), entry.get("height", h)) != (w, h):
                raise DataError(
                    f"size mismatch: annotation says {entry['width']}x{entry['height']}, image is {w}x{h}"
                )
            sid = _scene_id(shard, str(entry["id"]))
            out_w, out_h = decoded.size
            scale_x, scale_y = out_w / w, out_h / h
            boxes = []
            for ann in by_image.get(entry["id"], []):
                if ann.get("iscrowd", 0):
                    continue
                try:
                    x, y, bw, bh = _coco_box(ann)
                    if ann.get("category_id") not in categories:
                        raise DataError(f"unknown category {ann.get('category_id')!r}")
                except DataError as err:
                    part_rejections.append(
                        (f"{entry['file_name']}/annotation {ann.get('id')}", f"DataError: {err}")
                    )
                    continue
                x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
                if x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) < min_box_area:
                    continue
                box = Box2D(x0=x0 * scale_x, y0=y0 * scale_y, x1=x1 * scale_x, y1=y1 * scale_y)
                boxes.append(
                    Annotation2D(
                        category=categories[ann["category_id"]], annotation_id=ann.get("id"), box2d=box
                    )
                )
            return Scene(
                scene_id=sid,
                source=source,
                shard=shard,
                intrinsics=placeholder_intrinsics(out_w, out_h),
                image_file=_write_image(tmp, shard, sid, decoded.rgb),
                annotations_2d=boxes,
                metadata={
                    "original_file": entry["file_name"],
                    "intrinsics_source": "placeholder",
                    **_import_metadata(decoded),
                },
            )

        label = entry.get("file_name", entry.get("id")) if isinstance(entry, dict) else entry
        return _Item(str(label), build)

    return _write_shard(root, shard, source, (item(e) for e in images), extra_rejections=part_rejections)


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
    scene: Scene,
    detections: Sequence[tuple[Box2D, str]],
    unlabeled: Sequence[str] = ("object",),
    min_iou: float = 0.4,
) -> tuple[Scene, int]:
    """Give ground-truth objects labelled only "object" (CA-1M) the category of the detector box matched to them
    (`match_categories`); returns the scene and how many objects were labelled. Unmatched ones keep their label
    (the reference stage then falls back to "the object (highlighted by the ... box)")."""
    targets = [o for o in scene.objects if o.category in unlabeled]
    labels = match_categories([o.box2d for o in targets], detections, min_iou)
    new = {o.instance_id: label for o, label in zip(targets, labels, strict=True) if label is not None}
    objects = [
        o.model_copy(update={"category": new[o.instance_id]}) if o.instance_id in new else o
        for o in scene.objects
    ]
    return scene.model_copy(update={"objects": objects}), len(new)
