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
instead of copying them. A shard directory is built under a hidden temp name (`.<shard>.tmp-<pid>-<random>`) and
swapped into place, so a reader sees the old complete shard or the new complete shard, never half of one. One
writer at a time: `.<shard>.lock` (an flock held from the first file to the swap) makes a second run of the same
partition wait. A crash leaves at most a temp directory, or mid-swap the previous version under `.<shard>.old-*`;
the next write of that shard, or the next read through `shard_dir`, cleans up or restores it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, PngImagePlugin

from assets.geometry import depth_to_points
from assets.records import Intrinsics, Scene

log = logging.getLogger(__name__)

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


class PartitionBusyError(RuntimeError):
    """Another process is writing this directory and `timeout_s` ran out while waiting for it."""


def _lock_owner(lock_path: Path) -> str:
    try:
        return lock_path.read_text(encoding="utf-8").strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def dir_lock(final: Path, timeout_s: float | None = None, poll_s: float = 0.2) -> Iterator[None]:
    """Hold the exclusive write lock of directory `final` (a stage's partition) for the block.

    An `flock` on `.<name>.lock` beside it, so every writer (CLI, DVC, daemon-launched runs, any host process
    sharing the file system) is serialised, and the kernel drops the lock of a process that dies: no stale lock.
    A second writer waits, logging once whom it waits for (the holder's pid and host are in the lock file), and
    raises PartitionBusyError after `timeout_s` (None: wait as long as the holder runs). The holder removes the
    file on release; a waiter that locked a removed file notices (inode differs from the path's) and retries,
    so removing never lets two holders in. Polling instead of a blocking flock keeps Ctrl-C and the timeout
    working."""
    final = Path(final)
    lock_path = final.with_name(f".{final.name}.lock")
    started = time.monotonic()
    waited = False
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not waited:
                log.warning(f"waiting for {final}: it is being written by {_lock_owner(lock_path)}")
                waited = True
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise PartitionBusyError(
                    f"{final} is being written by {_lock_owner(lock_path)}; gave up after {timeout_s:.0f} s"
                ) from None
            time.sleep(poll_s)
            continue
        try:
            current = os.stat(lock_path)
            locked = os.fstat(fd)
            same = (current.st_ino, current.st_dev) == (locked.st_ino, locked.st_dev)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        if waited:
            log.warning(f"{final}: lock acquired after {time.monotonic() - started:.1f} s")
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_LIBC = ctypes.CDLL(None, use_errno=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`, glibc 2.28+); False
    where the platform or file system cannot, so the caller falls back to two renames. Python's `os` has no
    binding for it, hence ctypes."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _publish(tmp: Path, final: Path) -> None:
    """Put the finished `tmp` in place of `final` so that a crash at any point leaves a complete version visible
    or restorable: a first version is one rename; a replacement is one atomic swap where the OS has it (the
    previous version then sits at the temp name until it is removed), else two renames whose gap
    `_recover` closes (the previous version waits at `.<name>.old-*`)."""
    if not os.path.lexists(final):
        os.replace(tmp, final)
        return
    if _rename_exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
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


def _recover(final: Path) -> None:
    """Repair what a writer killed mid-publish left (caller holds dir_lock): a missing `final` gets its previous
    version back from `.<name>.old-*`; leftover temp and old copies are removed. Any temp directory here is
    stale, because every live writer of `final` holds the lock the caller now has."""
    olds = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.lstat().st_ctime)
    if olds and not os.path.lexists(final):
        log.warning(
            f"{final}: restoring the previous version from {olds[-1].name} (a publish was interrupted)"
        )
        os.replace(olds.pop(), final)
    for stale in (*olds, *final.parent.glob(f".{final.name}.tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)


def recover_dir(final: Path) -> Path:
    """`final` made visible again if an interrupted publish left only its previous version (cheap when it
    exists: one stat). Readers go through shard_dir, which calls this."""
    final = Path(final)
    if not final.exists() and final.parent.is_dir() and any(final.parent.glob(f".{final.name}.old-*")):
        with dir_lock(final):
            _recover(final)
    return final


@contextlib.contextmanager
def atomic_dir(final: Path, timeout_s: float | None = None) -> Iterator[Path]:
    """Build a directory under a temp name and swap it in on success; on error nothing visible changes.

    Re-materializing a shard replaces it whole, so a shard never mixes files of two runs. The directory's write
    lock (dir_lock) is held from start to publish, so two runs of one partition never write it at once: the
    second waits for the first (or raises PartitionBusyError after `timeout_s`) and then builds its own
    version. Temp names carry the writer's pid and a random suffix.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    with dir_lock(final, timeout_s=timeout_s):
        _recover(final)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _publish(tmp, final)


def shard_dir(root: Path, stage: str, shard: str) -> Path:
    return recover_dir(Path(root) / stage / shard)


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


def write_stage_manifest(
    directory: Path,
    *,
    stage: str,
    shard: str,
    num_in: int,
    num_out: int,
    num_rejected: int = 0,
    metadata: dict | None = None,
) -> dict:
    """Write `<directory>/_manifest.json`, the one manifest rule of every stage's output directory: stage,
    partition, counts, the stage's own metadata and `digest` (directory_digest of everything else, so call it
    after the other files are written). Returns what was written."""
    manifest = {
        "stage": stage,
        "shard": shard,
        "num_in": num_in,
        "num_out": num_out,
        "num_rejected": num_rejected,
        "metadata": metadata or {},
        "digest": directory_digest(directory),
    }
    atomic_write_json(Path(directory) / "_manifest.json", manifest)
    return manifest


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
        max(near32 * np.float32(1.1), min(depth[valid].max(), near32 * np.float32(1e5)))
        if far is None
        else far
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
