"""point_maps: a metric point map for every filtered scene.

Ground-truth scenes (synthetic, CA-1M-like sources) already carry a depth file; it passes through by reference
after we verify that it decodes, matches the intrinsics and has no non-finite value in a valid pixel. Other scenes
need a monocular estimator (MoGe-2 in the paper); it plugs in through the `PointMapEstimator` protocol, and its
z-depth is stored with the shared log-encoded PNG codec under `point_maps/<shard>/depth/`, with the estimated
intrinsics in the record (the point map is reconstructed from depth + intrinsics on read). An estimator with
`estimate_batch` (MoGe-2) is fed `batch_size` upcoming scenes at a time, so a GPU sees batches; each scene still
succeeds or fails on its own.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assets.filtering import FilterConfig
from assets.geometry import depth_to_points
from assets.records import Intrinsics, Scene
from assets.scene_stage import load_scene_rgb, parse_scene, read_scene_lines, run_scene_stage
from assets.stage import DataError, StageReport, model_errors
from assets.storage import atomic_write_bytes, decode_depth_png, encode_depth_png, shard_dir

STAGE = "point_maps"
UPSTREAM = "filtered_images"
MAX_INVALID_DEPTH_FRACTION = FilterConfig().max_invalid_depth_fraction


@dataclass
class PointMapEstimate:
    """What a monocular estimator returns for one image."""

    points: np.ndarray  # (H, W, 3) float32, camera frame, meters
    valid: np.ndarray  # (H, W) bool
    intrinsics: Intrinsics


@runtime_checkable
class PointMapEstimator(Protocol):
    def estimate(self, rgb: np.ndarray) -> PointMapEstimate: ...


@runtime_checkable
class CalibratedPointMapEstimator(Protocol):
    """An estimator that can be told the camera. Ground-truth 3D sources without depth (Omni3D-style JSON) have
    their boxes in the true camera frame, so their depth must be estimated for that camera, not a guessed one."""

    def estimate(self, rgb: np.ndarray, known: Intrinsics | None = None) -> PointMapEstimate: ...


@runtime_checkable
class BatchPointMapEstimator(Protocol):
    """An estimator that takes many images per forward pass; an image it cannot handle gets a DataError in its slot."""

    batch_size: int

    def estimate_batch(self, images: Sequence[np.ndarray]) -> list[PointMapEstimate | DataError]: ...


class BatchedEstimates:
    """Estimates for the scenes of a shard, computed `batch_size` upcoming scenes at a time.

    The stage walks scenes one by one (each succeeds or is rejected on its own), but a GPU estimator is several
    times faster on batches. When the stage reaches a scene that is not estimated yet, this loads it and the next
    `batch_size - 1` scenes that need estimation, runs one `estimate_batch`, and hands each result out as its scene
    comes up: an unreadable image or a failed estimate is raised for that scene only. Scenes with a known camera
    (ground-truth 3D, no depth) are estimated one at a time for their own camera and never come through here.
    """

    def __init__(self, root: Path, scenes: Sequence[Scene], estimator: BatchPointMapEstimator) -> None:
        self.root, self.estimator = Path(root), estimator
        self.queue = [s for s in scenes if s.depth_file is None and not s.has_ground_truth_3d]
        self.position = {s.scene_id: i for i, s in enumerate(self.queue)}
        self.ready: dict[str, tuple[tuple[int, int], PointMapEstimate | DataError]] = {}
        self.batches = 0

    def estimate(self, scene: Scene) -> tuple[tuple[int, int], PointMapEstimate]:
        """((height, width) of the image, its estimate) for `scene`; raises its DataError when it failed."""
        if scene.scene_id not in self.ready:
            self._run_from(self.position.get(scene.scene_id), scene)
        shape, result = self.ready.pop(scene.scene_id)
        if isinstance(result, DataError):
            raise result
        return shape, result

    def _run_from(self, start: int | None, scene: Scene) -> None:
        chunk = [scene] if start is None else self.queue[start : start + max(1, self.estimator.batch_size)]
        chunk = [s for s in chunk if s.scene_id not in self.ready]
        loaded: list[tuple[Scene, np.ndarray]] = []
        for item in chunk:
            try:
                loaded.append((item, load_scene_rgb(self.root, item)))
            except DataError as err:
                self.ready[item.scene_id] = ((0, 0), err)
        if not loaded:
            return
        try:
            results = self._estimate([rgb for _, rgb in loaded])
        except DataError:
            if len(loaded) == 1:
                raise
            # one image the model cannot take fails the whole forward pass: find it by running each alone
            results = []
            for _, rgb in loaded:
                try:
                    results += self._estimate([rgb])
                except DataError as err:
                    results.append(err)
        for (item, rgb), result in zip(loaded, results, strict=True):
            self.ready[item.scene_id] = (rgb.shape[:2], result)

    def _estimate(self, images: list[np.ndarray]) -> list[PointMapEstimate | DataError]:
        with model_errors(f"point-map estimator {type(self.estimator).__name__}"):
            results = self.estimator.estimate_batch(images)
        self.batches += 1
        if len(results) != len(images):
            error = DataError(
                f"estimator returned {len(results)} results for a batch of {len(images)} images"
            )
            results = [error] * len(images)
        return results


def _accepts_known_camera(estimator: PointMapEstimator) -> bool:
    try:
        return "known" in inspect.signature(estimator.estimate).parameters
    except (TypeError, ValueError):
        return False


def read_depth(root: Path, scene: Scene) -> np.ndarray:
    """Decode a scene's depth file and check it against the intrinsics; DataError on any mismatch."""
    if scene.depth_file is None:
        raise DataError(f"no depth file: scene {scene.scene_id} has none")
    try:
        depth = decode_depth_png(Path(root) / scene.depth_file)
    except (OSError, KeyError, ValueError, SyntaxError) as err:
        raise DataError(f"unreadable depth: {scene.depth_file}: {err}") from err
    expected = (scene.intrinsics.height, scene.intrinsics.width)
    if depth.shape != expected:
        raise DataError(f"depth shape mismatch: {depth.shape} vs intrinsics {expected}")
    return depth


def validate_point_map(points: np.ndarray, valid: np.ndarray) -> dict[str, float | int]:
    """Statistics of a point map whose `valid` pixels must all be finite; raises DataError otherwise."""
    finite = np.isfinite(points).all(axis=-1)
    bad = int(np.count_nonzero(valid & ~finite))
    if bad:
        raise DataError(f"non-finite points in valid pixels: {bad}")
    num_valid = int(np.count_nonzero(valid))
    if num_valid == 0:
        raise DataError("no valid depth: every pixel of the point map is invalid")
    return {"valid_fraction": round(num_valid / valid.size, 4)}


def ground_truth_point_map(root: Path, scene: Scene) -> Scene:
    depth = read_depth(root, scene)
    points = depth_to_points(depth, scene.intrinsics)
    valid = np.isfinite(depth) & (depth > 0)
    stats = validate_point_map(points, valid)
    metadata = {**scene.metadata, **stats, "point_map_source": "ground_truth"}
    return scene.model_copy(update={"metadata": metadata})


def estimated_point_map(
    root: Path,
    scene: Scene,
    estimator: PointMapEstimator,
    out_dir: Path,
    shard: str,
    max_invalid_fraction: float = MAX_INVALID_DEPTH_FRACTION,
    batched: BatchedEstimates | None = None,
) -> Scene:
    """Run the estimator (or take this scene's result from `batched`), mark NaN/inf/behind-camera points invalid,
    and store the z-depth PNG.

    In-the-wild images get their depth only here, so the paper's "over 50% invalid depth" image filter (7.1,
    on MoGe-2's validity mask) is applied here for them, with the same threshold as assets.filtering."""
    known = scene.intrinsics if scene.has_ground_truth_3d else None
    if known is None and batched is not None:
        (height, width), estimate = batched.estimate(scene)
    else:
        rgb = load_scene_rgb(root, scene)
        height, width = rgb.shape[:2]
        if known is None:
            with model_errors(f"point-map estimator {type(estimator).__name__}"):
                estimate = estimator.estimate(rgb)
        elif _accepts_known_camera(estimator):
            with model_errors(f"point-map estimator {type(estimator).__name__}"):
                estimate = estimator.estimate(rgb, known=known)  # type: ignore[call-arg]
        else:
            raise DataError(
                f"scene has ground-truth 3D boxes but no depth, and {type(estimator).__name__} cannot estimate for "
                "a known camera: its depth would not match the boxes' camera frame"
            )
    points = np.asarray(estimate.points, dtype=np.float32)
    if points.shape != (height, width, 3) or np.shape(estimate.valid) != (height, width):
        raise DataError(
            f"estimate shape mismatch: points {points.shape}, valid {np.shape(estimate.valid)}, image {(height, width)}"
        )
    intrinsics = known if known is not None else estimate.intrinsics
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise DataError(
            f"estimated intrinsics size mismatch: {intrinsics.width}x{intrinsics.height} vs {width}x{height}"
        )
    finite = np.isfinite(points).all(axis=-1)
    valid = np.asarray(estimate.valid, dtype=bool) & finite
    valid &= np.where(finite, points[..., 2], 0.0) > 0  # a point behind the camera is not a depth
    if not valid.any():
        raise DataError("no valid depth: the estimator marked (or produced NaN for) every pixel")
    invalid = 1.0 - float(valid.mean())
    if invalid > max_invalid_fraction:
        raise DataError(f"too much invalid depth: {invalid:.3f} > {max_invalid_fraction}")
    depth = np.where(valid, points[..., 2], np.nan)
    name = f"depth/{scene.scene_id}.png"
    atomic_write_bytes(out_dir / name, encode_depth_png(depth))
    metadata = {
        **scene.metadata,
        "point_map_source": "estimated",
        "valid_fraction": round(float(valid.mean()), 4),
        "nonfinite_pixels": int(np.count_nonzero(~finite)),
    }
    return scene.model_copy(
        update={"depth_file": f"{STAGE}/{shard}/{name}", "intrinsics": intrinsics, "metadata": metadata}
    )


def point_maps_shard(
    root: Path,
    shard: str,
    estimator: PointMapEstimator | None = None,
    max_invalid_depth_fraction: float = MAX_INVALID_DEPTH_FRACTION,
) -> StageReport:
    """Build `point_maps/<shard>/` from `filtered_images/<shard>`: ground truth passes through, the rest is
    estimated (and rejected when more than `max_invalid_depth_fraction` of its pixels are invalid); a scene with
    no depth and no estimator is rejected ("no point-map estimator configured")."""

    # filled while the shard is processed (run_scene_stage merges it afterwards)
    stats: dict[str, object] = {"estimator": type(estimator).__name__ if estimator is not None else "none"}
    stats.update({"point_maps_ground_truth": 0, "point_maps_estimated": 0})
    batched = None
    if isinstance(estimator, BatchPointMapEstimator):
        batched = BatchedEstimates(root, _parsable_scenes(root, shard), estimator)

    def one(scene: Scene, report: StageReport, tmp: Path) -> Scene:
        if scene.depth_file is not None:
            out = ground_truth_point_map(root, scene)
        elif estimator is None:
            raise DataError("no point-map estimator configured: scene has no ground-truth depth")
        else:
            out = estimated_point_map(root, scene, estimator, tmp, shard, max_invalid_depth_fraction, batched)
        key = (
            "point_maps_ground_truth"
            if out.metadata["point_map_source"] == "ground_truth"
            else "point_maps_estimated"
        )
        stats[key] += 1
        return out

    report = run_scene_stage(
        root,
        STAGE,
        shard,
        UPSTREAM,
        one,
        extra_preview=lambda s: {
            "point_map_source": s.metadata.get("point_map_source", ""),
            "valid_fraction": s.metadata.get("valid_fraction", ""),
        },
        metadata=stats,
    )
    if batched is not None:
        report.metadata["estimator_batches"] = batched.batches
    return report


def _parsable_scenes(root: Path, shard: str) -> list[Scene]:
    """The upstream scenes in order, skipping lines that do not parse (the stage rejects those itself)."""
    scenes = []
    for line in read_scene_lines(shard_dir(root, UPSTREAM, shard) / "scenes.jsonl"):
        try:
            scenes.append(parse_scene(line))
        except (DataError, ValueError):
            continue
    return scenes
