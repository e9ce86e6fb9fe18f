"""source_images from Omni3D-format annotations (KITTI, nuScenes, SUN RGB-D, Hypersim, ARKitScenes, Objectron).

The format is facebookresearch/omni3d DATA.md, read the way Cube R-CNN reads it (cubercnn/data/datasets.py
`is_ignore`, cubercnn/util/math_util.py `get_cuboid_verts_faces`):

- `dimensions` = [w, h, l]; the box's 8 corners are R_cam @ (+-l/2, +-h/2, +-w/2) + center_cam: **l lies along
  the box's own x axis, h along y (vertical: Omni3D boxes are gravity-aligned), w along z**. We keep the source's
  naming: our `width` is its w, our `length` its l (a KITTI car 1.57 m wide is 1.57 m wide here), and our yaw is
  the direction of its x axis on the horizontal plane. `cuboid_corners` reproduces Cube R-CNN's corner order;
  tests check it against released `bbox3D_cam` corners and against corners computed by Cube R-CNN's own code.
- **-1 means "unavailable"**, for scalars (visibility, truncation, segmentation_pts, lidar_pts, depth_error) and
  for 2D boxes ([-1, -1, -1, -1]). An unavailable value is never read as a number.
- Per annotation (`triage_annotation`): `valid3D` false or non-positive dimensions mean there is no 3D box to ask
  about, so the annotation becomes a line in rejected.jsonl; when it has a 2D box in view it is also kept in
  `Scene.annotations_2d` (a labelled instance without 3D: references never call another instance of its category
  "the <category>" or rank it, and no count of that category is asked). Every other annotation becomes an object. Cube
  R-CNN's other ignore rules (behind_camera, truncation >= 0.99, visibility <= 0.01, lidar_pts == 0,
  segmentation_pts == 0, depth_error > 0.5, a 2D box taller than 1.5 image heights) mark it `askable=False`: it
  still counts (counts, the uniqueness of references, "the second car from the left") but no question is asked
  about it, and the reason is kept in `attributes["not_askable"]`. An annotation no part of whose box is in view
  is rejected with that reason.
- 2D box, in Cube R-CNN's order of preference: `bbox2D_tight` (annotated), `bbox2D_trunc`, `bbox2D_proj` (only
  when no corner is behind the camera), else the 3D box clipped at the near plane and projected; clipped to the
  image in every case.
- Gravity: the mean of the boxes' vertical (local y) axes, signed to point down the image.

Sensor depth (`DepthSpec`): Omni3D's JSON has no depth field, so the spec names where each image's depth lies
(an image entry's `depth_path`, else `pattern` formatted with the image's `file_path` parts and `id`) and how it is
encoded: `uint16` (millimetres for SUN RGB-D-after-shift, ARKitScenes and CA-1M: scale 0.001; KITTI's depth
benchmark: scale 1/256), `sunrgbd` (the SUN RGB-D toolbox's 3-bit rotation, then millimetres), `npy` (float
meters) or `hdf5` (Hypersim `depth_meters`, a distance along the ray: `kind="ray"` turns it into z-depth). The
depth is resampled (nearest) to the image's pixel grid through both intrinsics and stored with the project's
depth codec; the scene then carries `depth_file` and `point_maps` passes it through instead of running MoGe-2.
A depth map with fewer than `SPARSE_MAX_VALID_FRACTION` valid pixels (lidar) is marked
`metadata["depth_density"] = "sparse"`: the image filter does not count its holes as invalid depth, L0 questions
sample only measured pixels, and object masks come from SAM-2 when a segmenter is configured (else from the
lidar returns inside each box).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from assets.geometry import GravityFrame
from assets.records import Annotation2D, Box2D, Box3D, Intrinsics, Scene, SceneObject
from assets.sources import STAGE, _decode_image, _Item, _read_coco_json, _scene_id, _write_image, _write_shard
from assets.stage import DataError, StageReport
from assets.storage import encode_depth_png

UNAVAILABLE = -1
SPARSE_MAX_VALID_FRACTION = 0.5
DEPTH_ENCODINGS = ("uint16", "sunrgbd", "npy", "hdf5")

# Cube R-CNN's corner order (math_util.get_cuboid_verts_faces): signs of (x: l, y: h, z: w) per vertex v0..v7.
_CUBE_SIGNS = np.array(
    [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]],
    dtype=np.float64,
)
_CUBE_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))


# ------------------------------------------------------------------------------------------ the record convention


def is_unavailable(value: object) -> bool:
    """Omni3D's marker for a missing field: -1 (scalars) or a list of -1 (2D boxes); a missing key too."""
    if value is None:
        return True
    if isinstance(value, (list, tuple)):
        return len(value) == 0 or all(_is_minus_one(v) for v in value)
    return _is_minus_one(value)


def _is_minus_one(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) == UNAVAILABLE


def cuboid_corners(
    center_cam: Sequence[float], dimensions: Sequence[float], rotation: np.ndarray
) -> np.ndarray:
    """(8, 3) camera-frame corners in Cube R-CNN's vertex order, from `dimensions` = [w, h, l]: x = +-l/2,
    y = +-h/2, z = +-w/2 in the box's frame, rotated by R_cam and moved to center_cam (the rule a released
    record's `bbox3D_cam` follows)."""
    w, h, length = (float(v) for v in dimensions)
    local = _CUBE_SIGNS * np.array([length, h, w]) / 2.0
    return local @ np.asarray(rotation, dtype=np.float64).T + np.asarray(center_cam, dtype=np.float64)


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
    """An Omni3D box as ours: width = w (along the box's z axis), height = h, length = l (along its x axis), yaw
    = direction of the x axis on the horizontal plane (signed away from the camera; a box is symmetric). Same 8
    corners as `cuboid_corners` when the box's y axis is the scene's gravity."""
    rotation = np.asarray(rotation, dtype=np.float64)
    w, h, length = (float(v) for v in dimensions)
    length_axis = frame.to_grav(rotation[:, 0])[:2]
    norm = float(np.linalg.norm(length_axis))
    if norm < 1e-6:
        raise DataError("box x axis is vertical: not a gravity-aligned Omni3D box")
    length_axis = length_axis / norm
    if length_axis[1] < 0 or (length_axis[1] == 0 and length_axis[0] < 0):
        length_axis = -length_axis
    return Box3D(
        center_cam=tuple(float(c) for c in center_cam),
        width=w,
        height=h,
        length=length,
        yaw=float(np.arctan2(length_axis[1], length_axis[0])),
    )


def visible_box2d(corners_cam: np.ndarray, intrinsics: Intrinsics, near: float = 0.05) -> Box2D | None:
    """The image-clipped 2D extent of a 3D box cut at the plane z = `near` (corners in front plus the points where
    edges cross that plane), or None when nothing of it is in view."""
    corners = np.asarray(corners_cam, dtype=np.float64)
    points = [c for c in corners if c[2] >= near]
    for a, b in _CUBE_EDGES:
        za, zb = corners[a, 2], corners[b, 2]
        if (za - near) * (zb - near) < 0:
            t = (near - za) / (zb - za)
            points.append(corners[a] + t * (corners[b] - corners[a]))
    if not points:
        return None
    pts = np.array(points)
    u = intrinsics.fx * pts[:, 0] / pts[:, 2] + intrinsics.cx
    v = intrinsics.fy * pts[:, 1] / pts[:, 2] + intrinsics.cy
    return clip_box2d([u.min(), v.min(), u.max(), v.max()], intrinsics.width, intrinsics.height)


def clip_box2d(xyxy: Sequence[float], width: int, height: int) -> Box2D | None:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
        return None
    return Box2D(x0=x0, y0=y0, x1=x1, y1=y1)


@dataclass(frozen=True)
class Omni3DFilter:
    """Cube R-CNN's ignore thresholds (`get_filter_settings_from_cfg()` defaults and `is_ignore`'s constants)."""

    truncation_thres: float = 0.99
    visibility_thres: float = 0.01
    max_height_thres: float = 1.50
    max_depth: float = 1e8
    max_depth_error: float = 0.5


@dataclass
class Triage:
    """What one annotation becomes: rejected (`reject` says why), or an object with `box2d`, askable unless
    `not_askable` says why not."""

    reject: str | None = None
    box2d: Box2D | None = None  # also set on a rejected annotation whose 2D box is in view
    not_askable: str | None = None
    visible_fraction: float = 1.0


def _labelled_box2d(ann: dict, intrinsics: Intrinsics, behind: bool) -> Box2D | None:
    """The first available of bbox2D_tight, _trunc, _proj (not when a corner is behind the camera: that projection
    is meaningless), clipped to the image; None when none is available and in view."""
    for key in ("bbox2D_tight", "bbox2D_trunc", "bbox2D_proj"):
        if key == "bbox2D_proj" and behind:
            continue
        if not is_unavailable(ann.get(key)):
            box2d = clip_box2d(ann[key], intrinsics.width, intrinsics.height)
            if box2d is not None:
                return box2d
    return None


def triage_annotation(ann: dict, intrinsics: Intrinsics, rules: Omni3DFilter = Omni3DFilter()) -> Triage:
    """Read one Omni3D annotation per the published convention (see the module docstring)."""
    if not bool(ann.get("valid3D", True)):
        return Triage(
            reject="no reliable 3D box: valid3D is false", box2d=_labelled_box2d(ann, intrinsics, False)
        )
    dims = [float(v) for v in ann["dimensions"]]
    center = [float(v) for v in ann["center_cam"]]
    if len(dims) != 3 or not all(math.isfinite(v) and v > 0 for v in dims):
        return Triage(reject=f"no 3D box: dimensions {ann['dimensions']}")
    if len(center) != 3 or not all(math.isfinite(v) for v in center):
        return Triage(reject=f"no 3D box: center_cam {ann['center_cam']}")
    behind = bool(ann.get("behind_camera", False))
    corners = cuboid_corners(center, dims, np.asarray(ann["R_cam"], dtype=np.float64))
    box2d = _labelled_box2d(ann, intrinsics, behind)
    if box2d is None:
        box2d = visible_box2d(corners, intrinsics)
    if box2d is None:
        return Triage(reject="not in view: no part of the 3D box projects into the image")
    visibility, truncation = ann.get("visibility"), ann.get("truncation")
    visible = 1.0
    if not is_unavailable(visibility):
        visible *= float(visibility)
    if not is_unavailable(truncation):
        visible *= 1.0 - float(truncation)
    reasons = []
    if behind:
        reasons.append("behind_camera")
    if center[2] > rules.max_depth:
        reasons.append(f"center deeper than {rules.max_depth} m")
    for key in ("lidar_pts", "segmentation_pts"):
        if not is_unavailable(ann.get(key)) and int(ann[key]) == 0:
            reasons.append(f"{key} == 0")
    if not is_unavailable(ann.get("depth_error")) and float(ann["depth_error"]) > rules.max_depth_error:
        reasons.append(f"depth_error {float(ann['depth_error']):.2f} > {rules.max_depth_error}")
    if box2d.y1 - box2d.y0 >= rules.max_height_thres * intrinsics.height:
        reasons.append("2D box taller than the image allows")
    if not is_unavailable(truncation) and float(truncation) >= rules.truncation_thres:
        reasons.append(f"truncation {float(truncation):.2f}")
    if not is_unavailable(visibility) and float(visibility) <= rules.visibility_thres:
        reasons.append(f"visibility {float(visibility):.2f}")
    return Triage(
        box2d=box2d, not_askable="; ".join(reasons) or None, visible_fraction=min(1.0, max(0.0, visible))
    )


# ------------------------------------------------------------------------------------------ sensor depth


@dataclass(frozen=True)
class DepthSpec:
    """Where an Omni3D-format source's per-image depth lies and how it is encoded (module docstring).

    `pattern` is formatted with `path` (the image's file_path without suffix), `stem`, `parent`, `id`; it is
    relative to `root` (itself relative to the source location). `K` is the depth map's own intrinsics when it
    differs from the image's (None: the image's K scaled to the depth map's size).
    """

    root: str = "."
    pattern: str = "{path}.png"
    encoding: str = "uint16"
    scale: float = 0.001
    kind: str = "z"
    hdf5_key: str = "dataset"

    def __post_init__(self) -> None:
        if self.encoding not in DEPTH_ENCODINGS:
            raise ValueError(f"depth encoding {self.encoding!r}: expected one of {DEPTH_ENCODINGS}")
        if self.kind not in ("z", "ray"):
            raise ValueError(f"depth kind {self.kind!r}: expected 'z' (planar depth) or 'ray' (distance)")
        if not self.scale > 0:
            raise ValueError(f"depth scale must be > 0, got {self.scale}")

    def path_for(self, base: Path, entry: dict) -> Path:
        if entry.get("depth_path"):
            return Path(base) / self.root / entry["depth_path"]
        rel = PurePosixPath(entry.get("file_path") or entry["file_name"])
        name = self.pattern.format(
            path=str(rel.with_suffix("")), stem=rel.stem, parent=str(rel.parent), id=entry["id"]
        )
        return Path(base) / self.root / name


def read_depth_file(path: Path, spec: DepthSpec) -> np.ndarray:
    """(H, W) float64 depth in meters as stored (z or ray distance per `spec.kind`), NaN where not measured."""
    if not Path(path).exists():
        raise DataError(f"missing depth: {path}")
    if spec.encoding == "npy":
        raw = np.load(path, allow_pickle=False).astype(np.float64) * spec.scale
    elif spec.encoding == "hdf5":
        import h5py

        with h5py.File(path, "r") as fh:
            raw = np.asarray(fh[spec.hdf5_key], dtype=np.float64) * spec.scale
    else:
        with Image.open(path) as img:
            codes = np.asarray(img).astype(np.uint32)
        if codes.ndim != 2:
            raise DataError(f"depth image {path} is not single-channel: shape {codes.shape}")
        if spec.encoding == "sunrgbd":  # SUN RGB-D toolbox: bitor(bitshift(d, -3), bitshift(d, 13)), 16-bit
            codes = ((codes >> 3) | (codes << 13)) & 0xFFFF
        raw = codes.astype(np.float64) * spec.scale
    raw[~(np.isfinite(raw) & (raw > 0))] = np.nan
    return raw


def depth_on_image_grid(
    depth: np.ndarray, depth_K: np.ndarray, intrinsics: Intrinsics, kind: str = "z"
) -> np.ndarray:
    """Resample a depth map taken by the same camera center (possibly another resolution/K) onto the image's
    pixel grid by nearest neighbour, and turn ray distance into z-depth when `kind == "ray"`."""
    depth = np.asarray(depth, dtype=np.float64)
    u = np.arange(intrinsics.width) + 0.5
    v = np.arange(intrinsics.height) + 0.5
    uu, vv = np.meshgrid(u, v)
    x = (uu - intrinsics.cx) / intrinsics.fx
    y = (vv - intrinsics.cy) / intrinsics.fy
    K = np.asarray(depth_K, dtype=np.float64)
    du = np.floor(K[0, 0] * x + K[0, 2]).astype(int)
    dv = np.floor(K[1, 1] * y + K[1, 2]).astype(int)
    inside = (du >= 0) & (du < depth.shape[1]) & (dv >= 0) & (dv < depth.shape[0])
    out = np.full((intrinsics.height, intrinsics.width), np.nan)
    out[inside] = depth[dv[inside], du[inside]]
    if kind == "ray":
        out = out / np.sqrt(x * x + y * y + 1.0)
    return out


def scaled_K(intrinsics: Intrinsics, width: int, height: int) -> np.ndarray:
    """The image's K for a depth map of another size covering the same field of view."""
    sx, sy = width / intrinsics.width, height / intrinsics.height
    return np.array(
        [
            [intrinsics.fx * sx, 0, intrinsics.cx * sx],
            [0, intrinsics.fy * sy, intrinsics.cy * sy],
            [0, 0, 1.0],
        ]
    )


def store_sensor_depth(
    tmp: Path, shard: str, scene_id: str, depth: np.ndarray
) -> tuple[str, dict[str, object]]:
    """Write a sensor depth map with the project's codec; (depth_file, scene metadata describing it)."""
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise DataError("sensor depth has no valid pixel")
    (tmp / "depth").mkdir(exist_ok=True)
    (tmp / "depth" / f"{scene_id}.png").write_bytes(encode_depth_png(depth))
    fraction = float(valid.mean())
    density = "sparse" if fraction < SPARSE_MAX_VALID_FRACTION else "dense"
    return f"{STAGE}/{shard}/depth/{scene_id}.png", {
        "depth_source": "sensor",
        "depth_density": density,
        "depth_valid_fraction": round(fraction, 4),
    }


# ------------------------------------------------------------------------------------------ the shard


def omni3d_shard(
    root: Path,
    shard: str,
    annotation_file: Path,
    image_dir: Path,
    source: str = "omni3d",
    max_images: int | None = None,
    depth: dict | DepthSpec | None = None,
    ignore_rules: dict | None = None,
) -> StageReport:
    """Import an Omni3D-format set: per-image K, 3D boxes, 2D boxes, categories, and sensor depth when `depth`
    (a `DepthSpec` or its fields) says where it lies; `ignore_rules` overrides `Omni3DFilter`'s thresholds. Every
    annotation becomes an object or a rejection line `<scene_id>/<annotation id>` (module docstring)."""
    categories, by_image, images = _read_coco_json(annotation_file, max_images)
    depth_spec = DepthSpec(**depth) if isinstance(depth, dict) else depth
    rules = Omni3DFilter(**(ignore_rules or {}))
    report = StageReport(stage=STAGE, shard=shard, output_dir=Path(root))

    def item(entry: dict) -> _Item:
        def build(tmp: Path) -> Scene:
            rel = entry.get("file_path") or entry["file_name"]
            rgb = _decode_image((Path(image_dir) / rel).read_bytes(), tmp, rel)
            h, w = rgb.shape[:2]
            if (entry.get("width", w), entry.get("height", h)) != (w, h):
                raise DataError(
                    f"size mismatch: annotation says {entry['width']}x{entry['height']}, image is {w}x{h}"
                )
            K = np.asarray(entry["K"], dtype=np.float64)
            intrinsics = Intrinsics(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], width=w, height=h)
            sid = _scene_id(shard, str(entry["id"]))
            kept, rejected = [], []
            for ann in by_image.get(entry["id"], []):
                verdict = triage_annotation(ann, intrinsics, rules)
                (rejected if verdict.reject else kept).append((ann, verdict))
            if not kept:
                reasons = "; ".join(sorted({v.reject for _, v in rejected if v.reject})) or "no annotations"
                raise DataError(f"no usable 3D box in {rel}: {reasons}")
            without_3d = []
            for ann, verdict in rejected:
                note = ""
                if verdict.box2d is not None:
                    category = ann.get("category_name") or categories[ann["category_id"]]
                    without_3d.append(
                        Annotation2D(category=category, box2d=verdict.box2d, annotation_id=ann.get("id"))
                    )
                    note = " (kept as a 2D annotation: references and counts account for it)"
                report.reject(f"{sid}/{ann.get('id')}", f"DataError: {verdict.reject}{note}")
            gravity = omni3d_gravity([a["R_cam"] for a, _ in kept])
            frame = GravityFrame.from_gravity(gravity)
            objects = []
            for instance_id, (ann, verdict) in enumerate(kept, 1):
                box = omni3d_box(ann["center_cam"], ann["dimensions"], np.asarray(ann["R_cam"]), frame)
                category = ann.get("category_name") or categories[ann["category_id"]]
                attributes = {"source_id": str(ann.get("id"))}
                if verdict.not_askable:
                    attributes["not_askable"] = verdict.not_askable
                objects.append(
                    SceneObject(
                        instance_id=instance_id,
                        category=category,
                        box2d=verdict.box2d,
                        box3d=box,
                        visible_fraction=verdict.visible_fraction,
                        askable=verdict.not_askable is None,
                        attributes=attributes,
                    )
                )
            metadata: dict = {
                "original_file": rel,
                "intrinsics_source": "ground_truth",
                "dataset": str(entry.get("dataset_id", source)),
            }
            for key in (
                "src_flagged",
                "src_90_rotate",
            ):  # Omni3D's own notes: sky direction doubtful / rotated
                if key in entry and not is_unavailable(entry[key]):
                    metadata[key] = entry[key] if isinstance(entry[key], bool) else int(entry[key])
            depth_file = None
            if depth_spec is not None:
                raw = read_depth_file(depth_spec.path_for(Path(image_dir), entry), depth_spec)
                grid = depth_on_image_grid(
                    raw, scaled_K(intrinsics, raw.shape[1], raw.shape[0]), intrinsics, depth_spec.kind
                )
                depth_file, depth_meta = store_sensor_depth(tmp, shard, sid, grid)
                metadata.update(depth_meta)
            return Scene(
                scene_id=sid,
                source=source,
                shard=shard,
                intrinsics=intrinsics,
                gravity_cam=tuple(float(c) for c in gravity),
                objects=objects,
                has_ground_truth_3d=True,
                annotations_2d=without_3d,
                image_file=_write_image(tmp, shard, sid, rgb),
                depth_file=depth_file,
                metadata=metadata,
            )

        return _Item(str(entry.get("file_path", entry.get("id"))), build)

    return _write_shard(root, shard, source, (item(e) for e in images), report=report)
