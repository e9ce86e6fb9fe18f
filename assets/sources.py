"""source_images from real data: web image folders, COCO/Objects365 boxes, Omni3D 3D boxes, official HiSpatial shards.

Every importer writes the same `source_images/<shard>/` layout as the synthetic source (assets/synthetic.py):
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
- official HiSpatial shards: webdataset tars of `<key>.jpg`, `<key>.depth.png` (16-bit log depth with near/far),
  `<key>.json` intrinsics and `<key>.qa.json`; depth and QA pass through.
"""

from __future__ import annotations

import io
import json
import math
import re
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from assets.geometry import box2d_iou
from assets.records import Annotation2D, Box2D, Intrinsics, Scene
from assets.stage import DataError, StageReport, process_items
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    decode_depth_png,
    directory_digest,
    encode_depth_png,
    encode_jpeg,
    shard_dir,
    write_jsonl,
    write_scenes,
)

STAGE = "source_images"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
PLACEHOLDER_HFOV_DEG = 60.0
_SHARD_RE = re.compile(r"^[A-Za-z0-9._-]+$")


# ------------------------------------------------------------------------------------------ shared writer


@dataclass
class _Item:
    """One thing to import; `build` turns it into a Scene, writing files under the temp shard directory."""

    item_id: str
    build: Callable[[Path], Scene]


def _write_shard(
    root: Path, shard: str, source: str, items: Iterable[_Item], report: StageReport | None = None
) -> StageReport:
    """`report`: pass one when `build` records rejections of parts of an item (one annotation of an image)."""
    if not _SHARD_RE.match(shard):
        raise ValueError(f"shard name {shard!r} must be a plain path component (letters, digits, . _ -)")
    final = shard_dir(Path(root), STAGE, shard)
    report = report or StageReport(stage=STAGE, shard=shard, output_dir=final)
    report.output_dir = final
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


# ------------------------------------------------------------------------------------------ HiSpatial shards


def _intrinsics_from_json(meta: dict, width: int, height: int) -> Intrinsics:
    source = meta.get("intrinsics", meta)
    if isinstance(source, list):
        K = np.asarray(source, dtype=np.float64)
        if K.shape != (3, 3):
            raise DataError(f"intrinsics matrix has shape {K.shape}, expected 3x3")
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    elif isinstance(source, dict) and {"fx", "fy", "cx", "cy"} <= source.keys():
        fx, fy, cx, cy = (float(source[k]) for k in ("fx", "fy", "cx", "cy"))
    else:
        raise DataError(f"no intrinsics in {sorted(meta)}: expected a 3x3 'intrinsics' or fx/fy/cx/cy")
    if max(fx, fy) < 10:  # normalised intrinsics (fractions of the image size)
        fx, cx, fy, cy = fx * width, cx * width, fy * height, cy * height
    return Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)


def _decode_official_depth(data: bytes, meta: dict) -> np.ndarray:
    """Official depth PNGs are 16-bit log-encoded with near/far in the PNG text (our codec) or in the json."""
    with Image.open(io.BytesIO(data)) as img:
        has_text = {"near", "far"} <= set(getattr(img, "text", {}))
    if has_text:
        return decode_depth_png(data)
    if "near" not in meta or "far" not in meta:
        raise DataError("depth PNG without near/far (neither in the PNG text nor in the json)")
    with Image.open(io.BytesIO(data)) as img:
        codes = np.asarray(img, dtype=np.uint16).astype(np.float64)
    near, far = float(meta["near"]), float(meta["far"])
    depth = np.exp(np.log(near) + codes / 65535.0 * (np.log(far) - np.log(near)))
    depth[codes == 65535] = np.nan
    return depth


def hispatial_shard(root: Path, shard: str, tars: Sequence[Path], source: str = "hispatial") -> StageReport:
    """Import official HiSpatial webdataset shards: per key `.jpg`, `.depth.png`, `.json` (intrinsics, optional
    near/far) and `.qa.json`. Depth is re-encoded with our codec, QA json kept under `qa/<scene_id>.json`."""
    samples: list[tuple[str, dict[str, bytes]]] = []
    for tar_path in tars:
        with tarfile.open(tar_path) as tar:
            grouped: dict[str, dict[str, bytes]] = {}
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                name = Path(member.name).name
                key, _, ext = name.partition(".")
                fh = tar.extractfile(member)
                if fh is not None:
                    grouped.setdefault(key, {})[ext] = fh.read()
            samples += [(f"{Path(tar_path).name}:{k}", v) for k, v in sorted(grouped.items())]

    def item(sample: tuple[str, dict[str, bytes]]) -> _Item:
        item_id, parts = sample

        def build(tmp: Path) -> Scene:
            key = item_id.split(":", 1)[1]
            image = parts.get("jpg") or parts.get("jpeg") or parts.get("png")
            if image is None:
                raise DataError(f"sample {key} has no image (members: {sorted(parts)})")
            rgb = _decode_image(image, tmp, f"{key}.jpg")
            h, w = rgb.shape[:2]
            meta = json.loads(parts["json"]) if "json" in parts else json.loads(parts.get("intrinsics.json", b"{}"))
            intrinsics = _intrinsics_from_json(meta, w, h)
            sid = _scene_id(shard, key)
            depth_file = None
            if "depth.png" in parts:
                depth = _decode_official_depth(parts["depth.png"], meta)
                if depth.shape != (h, w):
                    raise DataError(f"depth {depth.shape} does not match image {(h, w)}")
                (tmp / "depth").mkdir(exist_ok=True)
                (tmp / "depth" / f"{sid}.png").write_bytes(encode_depth_png(depth))
                depth_file = f"{STAGE}/{shard}/depth/{sid}.png"
            metadata: dict[str, float | int | str | bool] = {"original_key": key}
            if "qa.json" in parts:
                qa = json.loads(parts["qa.json"])
                (tmp / "qa").mkdir(exist_ok=True)
                (tmp / "qa" / f"{sid}.json").write_text(json.dumps(qa))
                metadata["qa_file"] = f"{STAGE}/{shard}/qa/{sid}.json"
                metadata["num_qa"] = len(qa) if isinstance(qa, list) else len(qa.get("conversations", qa))
            return Scene(scene_id=sid, source=source, shard=shard, intrinsics=intrinsics,
                         image_file=_write_image(tmp, shard, sid, rgb), depth_file=depth_file, metadata=metadata)

        return _Item(item_id, build)

    return _write_shard(root, shard, source, (item(s) for s in samples))
