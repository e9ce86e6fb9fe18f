"""source_images from CA-1M (apple/ml-cubifyanything), the paper's third 3D source: gravity-aligned boxes and
laser-scan depth, read natively from its WebDataset tars.

The layout is the one `cubifyanything/dataset.py` (`CubifyAnythingDataset`) reads: one tar per capture, members
`<video_id>/<timestamp>.<suffix>` grouped by the part before the first dot, suffixes lower-cased:
- `wide/image` (PNG, 1024x768 RGB), `wide/image/k` (JSON 3x3), `_wide/image/size` ("[w, h]");
- `wide/instances` (JSON list of {id, category, position, scale, R, box_2d_rend?, box_2d_proj?}, camera frame);
- `wide/t_gravity` (JSON 3x3: the gravity-aligned camera frame -> camera; gravity is its y column);
- `gt/depth` (PNG uint16 millimetres, FARO laser scan, 512x384, 0 = not registered), `gt/depth/k`,
  `_gt/depth/size`; `wide/depth` (ARKit lidar, 256x192) with `wide/depth/k` is the alternative (`depth="arkit"`).
Members may also carry a file extension (`wide/image.png`, as the README lists them); it is dropped. The
`<video_id>/world` sample (the whole capture's boxes) is skipped.

Boxes: `GeneralInstance3DBoxes(xyzlhw=position + scale, R)` with corners R @ (+-l/2, +-h/2, +-w/2) + position,
so `scale` = [l, h, w] (l along the box's x axis, w along z, h vertical) — the same geometry as Omni3D with its
dimensions reversed; the box becomes ours through `assets.omni3d.omni3d_box`. Depth is resampled onto the
image's grid (`assets.omni3d.depth_on_image_grid`) and stored as sensor depth, so `point_maps` passes it through.
Per instance, a non-positive scale or a box out of view is a rejection line `<scene_id>/<instance id>`.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from assets.geometry import GravityFrame
from assets.omni3d import (
    clip_box2d,
    cuboid_corners,
    depth_on_image_grid,
    is_unavailable,
    omni3d_box,
    store_sensor_depth,
    visible_box2d,
)
from assets.records import Intrinsics, Scene, SceneObject
from assets.sources import STAGE, _decode_image, _Item, _scene_id, _write_image, _write_shard
from assets.stage import DataError, StageReport

MM_TO_M = 0.001
_EXTENSIONS = (".png", ".json", ".tiff", ".tif", ".txt")
REQUIRED = ("wide/image", "wide/image/k", "wide/instances")


def _suffix(name: str) -> tuple[str, str] | None:
    """(sample key, lower-cased suffix without extension) of a tar member, as webdataset groups them."""
    if "." not in name:
        return None
    key, suffix = name.split(".", 1)
    suffix = suffix.lower()
    for ext in _EXTENSIONS:
        if suffix.endswith(ext):
            suffix = suffix[: -len(ext)]
            break
    return key, suffix


def read_ca1m_samples(tar_path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) per frame of a CA-1M tar, streamed: like webdataset's `group_by_keys`, a sample is
    a run of consecutive members with the same key (a capture's tar is gigabytes; nothing else is held). The
    `world` sample is skipped."""
    key, sample = None, {}
    with tarfile.open(tar_path, mode="r|*") as tar:
        for member in tar:
            parts = _suffix(member.name) if member.isfile() else None
            if parts is None:
                continue
            if parts[0] != key:
                if key is not None and not key.endswith("/world"):
                    yield key, sample
                key, sample = parts[0], {}
            handle = tar.extractfile(member)
            if handle is not None:
                sample[parts[1]] = handle.read()
    if key is not None and not key.endswith("/world"):
        yield key, sample


def _matrix(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(json.loads(data.decode("utf-8")), dtype=np.float64).reshape(shape)


def _size(data: bytes) -> tuple[int, int]:
    width, height = (int(x) for x in data.decode("utf-8").strip().strip("[]").split(","))
    return width, height


def ca1m_instance_box(instance: dict) -> tuple[list[float], list[float], np.ndarray]:
    """(center_cam, Omni3D-order dimensions [w, h, l], R) of a CA-1M instance (`scale` = [l, h, w])."""
    length, height, width = (float(v) for v in instance["scale"])
    return (
        [float(v) for v in instance["position"]],
        [width, height, length],
        np.asarray(instance["R"], dtype=np.float64),
    )


def ca1m_shard(
    root: Path,
    shard: str,
    tars: Sequence[Path],
    source: str = "ca1m",
    depth: str = "gt",
    every_nth: int = 1,
    max_frames: int | None = None,
) -> StageReport:
    """Import CA-1M frames (every `every_nth` of each capture, at most `max_frames`) with their boxes and depth
    (`depth`: "gt" = laser scan, "arkit" = the phone's lidar, "none")."""
    if depth not in ("gt", "arkit", "none"):
        raise ValueError(f"depth must be 'gt', 'arkit' or 'none', got {depth!r}")
    if every_nth < 1:
        raise ValueError(f"every_nth must be >= 1, got {every_nth}")
    report = StageReport(stage=STAGE, shard=shard, output_dir=Path(root))
    prefix = {"gt": "gt/depth", "arkit": "wide/depth"}.get(depth)

    def frames() -> Iterator[tuple[str, dict[str, bytes]]]:
        count = 0
        for tar_path in tars:
            for index, (key, sample) in enumerate(read_ca1m_samples(Path(tar_path))):
                if index % every_nth:
                    continue
                if max_frames is not None and count >= max_frames:
                    return
                count += 1
                yield key, sample

    def item(key: str, sample: dict[str, bytes]) -> _Item:
        def build(tmp: Path) -> Scene:
            missing = [s for s in (*REQUIRED, *((prefix,) if prefix else ())) if s not in sample]
            if missing:
                raise DataError(f"incomplete CA-1M sample {key}: missing {', '.join(missing)}")
            rgb = _decode_image(sample["wide/image"], tmp, f"{key.replace('/', '_')}.png")
            h, w = rgb.shape[:2]
            if "_wide/image/size" in sample and _size(sample["_wide/image/size"]) != (w, h):
                raise DataError(
                    f"size mismatch: {_size(sample['_wide/image/size'])} declared, image is {w}x{h}"
                )
            K = _matrix(sample["wide/image/k"], (3, 3))
            intrinsics = Intrinsics(fx=K[0, 0], fy=K[1, 1], cx=K[0, 2], cy=K[1, 2], width=w, height=h)
            sid = _scene_id(shard, key.replace("/", "_"))  # <video>_<timestamp>: unique, no hash needed
            instances = json.loads(sample["wide/instances"].decode("utf-8"))
            if "wide/t_gravity" in sample:
                gravity = _matrix(sample["wide/t_gravity"], (3, 3))[:, 1]
            elif instances:
                axes = np.array([np.asarray(i["R"], dtype=np.float64)[:, 1] for i in instances])
                gravity = (axes * np.sign(axes[:, 1:2] + 1e-12)).mean(axis=0)
            else:
                raise DataError(f"no gravity: sample {key} has neither wide/t_gravity nor boxes")
            gravity = gravity / np.linalg.norm(gravity)
            frame = GravityFrame.from_gravity(gravity)
            objects = []
            for inst in instances:
                center, dims, R = ca1m_instance_box(inst)
                if not all(np.isfinite(dims)) or min(dims) <= 0:
                    report.reject(f"{sid}/{inst.get('id')}", f"DataError: no 3D box: scale {inst['scale']}")
                    continue
                box2d = None
                for field in ("box_2d_rend", "box_2d_proj"):
                    if not is_unavailable(inst.get(field)):
                        box2d = clip_box2d(inst[field], w, h)
                        if box2d is not None:
                            break
                if box2d is None:
                    box2d = visible_box2d(cuboid_corners(center, dims, R), intrinsics)
                if box2d is None:
                    report.reject(
                        f"{sid}/{inst.get('id')}",
                        "DataError: not in view: no part of the 3D box projects into the image",
                    )
                    continue
                objects.append(
                    SceneObject(
                        instance_id=len(objects) + 1,
                        category=str(inst["category"]),
                        box2d=box2d,
                        box3d=omni3d_box(center, dims, R, frame),
                        attributes={"source_id": str(inst.get("id"))},
                    )
                )
            if not objects:
                raise DataError(f"no usable 3D box in sample {key}")
            metadata: dict = {"original_file": key, "intrinsics_source": "ground_truth", "dataset": "ca1m"}
            depth_file = None
            if prefix:
                with Image.open(io.BytesIO(sample[prefix])) as img:
                    raw = np.asarray(img).astype(np.float64) * MM_TO_M
                raw[~(raw > 0)] = np.nan  # 0 = not registered
                depth_K = _matrix(sample[f"{prefix}/k"], (3, 3)) if f"{prefix}/k" in sample else None
                if depth_K is None:
                    raise DataError(f"incomplete CA-1M sample {key}: missing {prefix}/k")
                depth_file, depth_meta = store_sensor_depth(
                    tmp, shard, sid, depth_on_image_grid(raw, depth_K, intrinsics)
                )
                metadata.update(depth_meta)
            return Scene(
                scene_id=sid,
                source=source,
                shard=shard,
                intrinsics=intrinsics,
                gravity_cam=tuple(float(c) for c in gravity),
                objects=objects,
                has_ground_truth_3d=True,
                image_file=_write_image(tmp, shard, sid, rgb),
                depth_file=depth_file,
                metadata=metadata,
            )

        return _Item(key, build)

    return _write_shard(root, shard, source, (item(k, s) for k, s in frames()), report=report)
