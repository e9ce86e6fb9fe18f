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
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, PngImagePlugin

from assets.geometry import depth_to_points
from assets.records import Intrinsics, Scene

# Depth PNG codes, the MoGe convention that the official HiSpatial data uses (moge/utils/io.py write_depth):
# 1..65534 log-encode near..far, 0 = unknown (NaN), 65535 = infinitely far.
DEPTH_UNKNOWN = 0
DEPTH_INFINITE = 65535
DEPTH_STEPS = 65533
DEPTH_INVALID = DEPTH_UNKNOWN  # the code of a pixel without depth
DEPTH_CODEC_KEY = "hispatial_depth_codec"  # PNG text chunk naming the codec of files we write
DepthCodec = Literal["moge", "legacy-v0"]
"""`moge`: the official convention above (default; what an official or MoGe PNG without a marker is).
`legacy-v0`: this project's first encoding (t = v / 65535, 0 valid, 65535 invalid), only for reading shards
written before the switch; new files never use it."""
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


SHARD_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
"""The one shard-name rule: a Dagster partition key and a plain path component (no `/`, never `.` or `..`)."""


def check_shard_name(shard: str) -> str:
    """`shard` when it is a valid shard name, else ValueError naming the rule.

    Every shard is a directory under each stage and a Dagster partition key, so writers (`assets.synthetic`,
    `assets.sources`) and the Dagster layer (`hispatial_dagster.shards.validate_shard_key`) check this one rule
    before they touch the disk: a name such as `..` fails here, not halfway through an atomic write."""
    if not isinstance(shard, str) or not SHARD_NAME_PATTERN.match(shard):
        raise ValueError(
            f"shard name {shard!r} must match {SHARD_NAME_PATTERN.pattern} (lower case letters, digits, '-', '_', "
            "'.'; starting with a letter or digit; at most 128 characters)"
        )
    return shard


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
    """Log-encode a z-depth map (meters) into a 16-bit PNG in the official HiSpatial / MoGe convention.

    Codes 1..65534 hold depth = near^(1-t) * far^t with t = (v - 1) / 65533; 0 marks unknown pixels (NaN, and
    non-positive depth, which MoGe would clamp to `near`), 65535 infinite ones. Near/far default to MoGe's rule
    (near = max(min finite depth, 1e-5), far = max(1.1 near, min(max finite depth, 1e5 near))) and go into the
    PNG's text chunk as MoGe writes them, with a `hispatial_depth_codec` marker beside them. The arithmetic is
    float32 as in `moge.utils.io.write_depth`, so the codes equal MoGe's for the same input. Relative error is at
    most ln(far/near) / 65533 / 2 (about 5e-5 for 0.1-100 m). `compress_level` only trades time for size.
    """
    depth = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(depth)
    valid = finite & (depth > 0)
    if not valid.any():
        raise ValueError("depth map has no valid pixel")
    # float32 scalars throughout, as MoGe computes them (its near/far are float32 array reductions)
    near32 = np.float32(max(depth[valid].min(), 1e-5) if near is None else near)
    far32 = np.float32(
        max(near32 * np.float32(1.1), min(depth[valid].max(), near32 * np.float32(1e5))) if far is None else far
    )
    if not far32 > near32:
        raise ValueError(f"depth range needs far > near, got near={near32}, far={far32}")
    t = np.log(np.nan_to_num(depth, nan=0.0).clip(near32, far32) / near32) / np.log(far32 / near32)
    codes = 1 + np.round(t.clip(0, 1) * np.float32(DEPTH_STEPS)).astype(np.uint16)
    codes[~finite | (depth <= 0)] = DEPTH_UNKNOWN
    codes[np.isposinf(depth)] = DEPTH_INFINITE
    info = PngImagePlugin.PngInfo()
    info.add_text("near", str(near32))
    info.add_text("far", str(far32))
    info.add_text(DEPTH_CODEC_KEY, "moge")
    buf = io.BytesIO()
    Image.fromarray(codes).save(buf, format="PNG", pnginfo=info, compress_level=compress_level)
    return buf.getvalue()


def read_depth_codes(data: bytes | Path) -> tuple[np.ndarray, float, float, DepthCodec]:
    """(uint16 codes, near, far, codec) of a depth PNG; the codec is the file's marker, else `moge`.

    A legacy `unit` text (old MoGe files) is folded into near/far, as MoGe's reader multiplies by it."""
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as img:
        text = dict(getattr(img, "text", {}))
        if "near" not in text or "far" not in text:
            raise ValueError("depth PNG has no near/far text")
        codes = np.asarray(img, dtype=np.uint16)
    unit = float(text.get("unit", 1.0))
    codec = text.get(DEPTH_CODEC_KEY, "moge")
    if codec not in ("moge", "legacy-v0"):
        raise ValueError(f"unknown depth codec {codec!r} in PNG text")
    return codes, float(text["near"]) * unit, float(text["far"]) * unit, codec


def decode_depth_codes(codes: np.ndarray, near: float, far: float, codec: DepthCodec = "moge") -> np.ndarray:
    """Codes -> (H, W) float32 meters. `moge`: NaN for 0, +inf for 65535 (callers treat both as invalid);
    `legacy-v0`: NaN for 65535. Computed in float64 and rounded once, so it is within a float32 ulp or two of
    the official float32 reader."""
    codes = np.asarray(codes, dtype=np.uint16)
    if codec == "legacy-v0":
        t = codes.astype(np.float64) / 65535
        depth = np.exp(np.log(near) * (1 - t) + np.log(far) * t)
        depth[codes == 65535] = np.nan
        return depth.astype(np.float32)
    t = (codes.astype(np.float64) - 1) / DEPTH_STEPS
    depth = np.exp(np.log(near) * (1 - t) + np.log(far) * t)
    depth[codes == DEPTH_UNKNOWN] = np.nan
    depth[codes == DEPTH_INFINITE] = np.inf
    return depth.astype(np.float32)


def decode_depth_png(data: bytes | Path, codec: DepthCodec | None = None) -> np.ndarray:
    """Inverse of encode_depth_png: (H, W) float32 meters, NaN where unknown and +inf where infinitely far.

    `codec` None follows the file (our marker, else the official convention); pass "legacy-v0" to read a shard
    written by this project's first encoder, whose files carry no marker."""
    codes, near, far, marked = read_depth_codes(data)
    return decode_depth_codes(codes, near, far, codec or marked)


def load_point_map(path: Path, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Read a stored depth PNG back as an (H, W, 3) float32 camera-frame point map and its validity mask."""
    depth = decode_depth_png(Path(path))
    points = depth_to_points(depth, intrinsics).astype(np.float32)
    valid = np.isfinite(points).all(axis=-1)
    return points, valid
