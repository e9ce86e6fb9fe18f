"""On-disk layout, atomic writes and the compact point-map codec.

Layout (all under one data root; `<stage>` is an asset name, `<shard>` a partition key such as `synthetic-000`)::

    <root>/<stage>/<shard>/                 one directory per stage and partition, swapped in atomically
        scenes.jsonl                        one `Scene` record per line (stages that carry scenes)
        qa.parquet                          one `QAPair` per row (qa_shards)
        images/<scene_id>.jpg               RGB (source_images)
        depth/<scene_id>.png                16-bit log-encoded z-depth (point_maps; see encode_depth_png)
        masks/<scene_id>.png                8-bit instance ids, 0 = background (source_images / object_clouds)
        rejected.jsonl                      what was skipped and why (every stage that can reject)
        _manifest.json                      counts and content hash; written last inside the temp directory

File paths inside records are relative to the data root, so a later stage can point at an earlier stage's files
instead of copying them. A shard directory is built under a hidden temp name and renamed into place, so a reader
sees the old complete shard or the new complete shard, never half of one; a crash leaves only a `.tmp-*`
directory that the next write of that shard removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from assets.geometry import depth_to_points
from assets.records import Intrinsics, Scene

DEPTH_INVALID = 65535
DEPTH_NEAR_DEFAULT = 0.05
DEPTH_FAR_DEFAULT = 250.0


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so it is either absent/old or complete: temp file in the same directory, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a directory under a temp name and swap it in on success; on error nothing visible changes.

    Re-materializing a shard replaces it whole, so a shard never mixes files of two runs.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def shard_dir(root: Path, stage: str, shard: str) -> Path:
    return Path(root) / stage / shard


def write_scenes(path: Path, scenes: Iterable[Scene]) -> int:
    """Write scene records as JSON lines (inside an atomic_dir, or atomically on their own)."""
    lines = [scene.model_dump_json() for scene in scenes]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_scenes(path: Path) -> list[Scene]:
    """Read scene records; a malformed line raises with its line number, so the caller can report it."""
    scenes = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                scenes.append(Scene.model_validate_json(line))
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: malformed scene record: {err}") from err
    return scenes


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    rows = list(rows)
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows))
    return len(rows)


def read_jsonl(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def directory_digest(directory: Path) -> str:
    """Content hash of a directory's files (names and bytes), ignoring the manifest: used for lineage and
    determinism checks (same seed, same digest)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name != "_manifest.json"):
        digest.update(str(path.relative_to(directory)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- images


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image to (H, W, 3) uint8; corrupt files raise ValueError naming the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError) as err:
        raise ValueError(f"unreadable image {path}: {err}") from err


def encode_mask_png(instance_ids: np.ndarray) -> bytes:
    ids = np.asarray(instance_ids)
    if ids.max(initial=0) > 255:
        raise ValueError("more than 255 instances do not fit an 8-bit mask")
    buf = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8), mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def decode_mask_png(data: bytes | Path) -> np.ndarray:
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as img:
        return np.asarray(img)


# ------------------------------------------------------------------------------------------ point maps


def encode_depth_png(
    depth: np.ndarray, near: float | None = None, far: float | None = None, compress_level: int = 9
) -> bytes:
    """Log-encode a z-depth map (meters) into a 16-bit PNG, the official HiSpatial data format.

    depth = near^(1-t) * far^t with t = v / 65535; v = 65535 marks invalid pixels (non-finite or <= 0). Near/far
    default to the valid depth range and are stored in the PNG's text chunk. Relative error is at most
    ln(far/near) / 65535 / 2 (about 5e-5 for 0.1-100 m), far below any estimator's error. `compress_level` only
    trades time for size (zlib level; 6 is ~5x faster than 9 for ~7% more bytes); the decoded values are the same.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError("depth map has no valid pixel")
    near = float(depth[valid].min()) if near is None else float(near)
    far = float(depth[valid].max()) if far is None else float(far)
    far = max(far, near * (1 + 1e-6))
    t = (np.log(np.clip(depth, near, far, where=valid, out=np.full_like(depth, near))) - np.log(near)) / (
        np.log(far) - np.log(near)
    )
    codes = np.where(valid, np.clip(np.rint(t * DEPTH_INVALID), 0, DEPTH_INVALID - 1), DEPTH_INVALID)
    info = PngImagePlugin.PngInfo()
    info.add_text("near", repr(near))
    info.add_text("far", repr(far))
    buf = io.BytesIO()
    Image.fromarray(codes.astype(np.uint16)).save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def decode_depth_png(data: bytes | Path) -> np.ndarray:
    """Inverse of encode_depth_png: (H, W) float32 meters with NaN where invalid."""
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as img:
        near = float(img.text["near"])
        far = float(img.text["far"])
        codes = np.asarray(img, dtype=np.uint16)
    t = codes.astype(np.float64) / DEPTH_INVALID
    depth = np.exp(np.log(near) * (1 - t) + np.log(far) * t)
    depth[codes == DEPTH_INVALID] = np.nan
    return depth.astype(np.float32)


def load_point_map(path: Path, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Read a stored depth PNG back as an (H, W, 3) float32 camera-frame point map and its validity mask."""
    depth = decode_depth_png(Path(path))
    points = depth_to_points(depth, intrinsics).astype(np.float32)
    valid = np.isfinite(points).all(axis=-1)
    return points, valid
