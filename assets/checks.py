"""Asset checks: side-effect-free functions returning `(passed, metadata)` for the Dagster layer.

Each shard-level function (`point_maps_finite`, `points_in_boxes`, `boxes_inside_image`, `references_unique`,
`qa_schema`) reads one stage's shard and summarises what it found; the scene-level helpers under them work on
arrays and records, so they are testable without files. A check never raises on bad data: a malformed record or
an unreadable file is a failed check with the item named in the metadata.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from assets.geometry import GravityFrame, depth_to_points, points_in_box
from assets.records import Level, QAFormat, QAPair, Scene, Task
from assets.references import resolve_reference
from assets.scene_stage import parse_scene, read_scene_lines
from assets.stage import DATA_ERRORS
from assets.storage import (
    DEPTH_INFINITE,
    DEPTH_UNKNOWN,
    decode_depth_codes,
    decode_depth_png,
    decode_mask_png,
    read_depth_codes,
    shard_dir,
)

MAX_LISTED = 10  # offenders named in the metadata

CheckResult = tuple[bool, dict[str, object]]


# ------------------------------------------------------------------------------------------ scene level
def depth_png_nonfinite(path: Path) -> tuple[int, int, tuple[int, int]]:
    """(valid pixels, valid pixels whose decoded depth is not finite and positive, shape) of a stored depth PNG.

    Works on the raw codes, so it also catches a corrupt near/far header that would turn every pixel into NaN
    (which the decoder would silently report as "invalid")."""
    codes, near, far, codec = read_depth_codes(Path(path))
    # a pixel with depth: legacy files mark the missing ones 65535; official ones 0 (unknown) and 65535 (infinite)
    valid = codes != 65535 if codec == "legacy-v0" else (codes != DEPTH_UNKNOWN) & (codes != DEPTH_INFINITE)
    with np.errstate(all="ignore"):
        depth = decode_depth_codes(codes[valid], near, far, codec)
    bad = int(np.count_nonzero(~(np.isfinite(depth) & (depth > 0))))
    return int(valid.sum()), bad, codes.shape


def mask_points_in_box_fractions(
    scene: Scene, points: np.ndarray, valid: np.ndarray, instance_mask: np.ndarray, tol: float = 0.03
) -> dict[int, float]:
    """For each object, the fraction of its mask's valid 3D points inside its 3D box grown by `tol` meters."""
    frame = GravityFrame.from_gravity(scene.gravity_cam) if scene.gravity_cam is not None else None
    if frame is None:
        raise ValueError(f"scene {scene.scene_id} has no gravity: its boxes have no orientation")
    fractions = {}
    for obj in scene.objects:
        pixels = (instance_mask == obj.instance_id) & valid
        if not pixels.any():
            if obj.askable:  # a known-but-not-askable object has no pixel by definition
                fractions[obj.instance_id] = 0.0
            continue
        inside = points_in_box(points[pixels].astype(np.float64), obj.box3d, frame, tol=tol)
        fractions[obj.instance_id] = float(inside.mean())
    return fractions


def boxes_outside_image(scene: Scene, tol_px: float = 0.5) -> list[int]:
    """Instance ids whose 2D box leaves the image by more than `tol_px` pixels."""
    width, height = scene.intrinsics.width, scene.intrinsics.height
    return [
        o.instance_id
        for o in scene.objects
        if o.box2d.x0 < -tol_px
        or o.box2d.y0 < -tol_px
        or o.box2d.x1 > width + tol_px
        or o.box2d.y1 > height + tol_px
    ]


def reference_problems(scene: Scene) -> dict[str, list[str]]:
    """Missing, duplicated (case-insensitive) and, for geometric kinds, mis-resolving references of a scene."""
    texts = [" ".join((o.reference or "").lower().split()) for o in scene.objects]
    counts = Counter(t for t in texts if t)
    problems: dict[str, list[str]] = {"missing": [], "duplicate": [], "unresolved": []}
    for obj, text in zip(scene.objects, texts, strict=True):
        item = f"{scene.scene_id}/{obj.instance_id}"
        if not text:
            if obj.reference_kind not in ("unreferenced", "not_askable"):
                problems["missing"].append(item)
            continue
        if counts[text] > 1:
            problems["duplicate"].append(f"{item}: {obj.reference}")
        elif (
            obj.reference_kind != "written"
            and resolve_reference(scene, obj.reference or "") != obj.instance_id
        ):
            problems["unresolved"].append(f"{item}: {obj.reference}")
    return problems


# ------------------------------------------------------------------------------------------ shard level
def _scenes(root: Path, stage: str, shard: str) -> tuple[list[Scene], list[str]]:
    """Parsed scenes of a stage's shard, and the malformed lines' descriptions."""
    scenes, malformed = [], []
    for line in read_scene_lines(shard_dir(root, stage, shard) / "scenes.jsonl"):
        try:
            scenes.append(parse_scene(line))
        except DATA_ERRORS as err:
            malformed.append(f"{line.item_id}: {err}"[:200])
    return scenes, malformed


def point_maps_finite(root: Path, shard: str) -> CheckResult:
    """Every scene's stored depth decodes, matches its intrinsics, has valid pixels, and no valid pixel is NaN/inf."""
    scenes, failures = _scenes(root, "point_maps", shard)
    num_valid = num_bad = 0
    for scene in scenes:
        try:
            if scene.depth_file is None:
                raise ValueError("no depth file")
            valid, bad, shape = depth_png_nonfinite(Path(root) / scene.depth_file)
        except DATA_ERRORS as err:
            failures.append(f"{scene.scene_id}: unreadable depth: {err}"[:200])
            continue
        if shape != (scene.intrinsics.height, scene.intrinsics.width):
            failures.append(f"{scene.scene_id}: depth shape {shape} does not match the intrinsics")
        elif bad or not valid:
            failures.append(f"{scene.scene_id}: {bad} non-finite of {valid} valid pixels")
        num_valid += valid
        num_bad += bad
    metadata = {
        "num_scenes": len(scenes),
        "num_failed": len(failures),
        "valid_pixels": num_valid,
        "nonfinite_valid_pixels": num_bad,
        "failures": failures[:MAX_LISTED],
    }
    return not failures, metadata


def points_in_boxes(
    root: Path, shard: str, min_fraction: float = 0.98, tol: float = 0.03, stage: str = "object_clouds"
) -> CheckResult:
    """For ground-truth scenes: at least `min_fraction` of each object's mask points lie in its 3D box (+ `tol` m).

    Estimated scenes are skipped: their boxes are fitted to the points (after outlier removal) and a shortfall
    there measures the estimator, not a bug. So are labelled scenes masked by SAM-2 (`mask_source`
    "sam2_box_prompt": lidar or estimated depth), whose masks are not made from the boxes."""
    scenes, failures = _scenes(root, stage, shard)
    fractions: list[float] = []
    worst: list[tuple[float, str]] = []
    skipped = 0
    for scene in scenes:
        if not scene.has_ground_truth_3d or scene.metadata.get("mask_source") == "sam2_box_prompt":
            skipped += 1
            continue
        if scene.depth_file is None or scene.mask_file is None:
            failures.append(f"{scene.scene_id}: ground-truth scene without depth or mask file")
            continue
        try:
            depth_points, valid = _load_points(Path(root) / scene.depth_file, scene)
            mask = decode_mask_png(Path(root) / scene.mask_file)
            per_object = mask_points_in_box_fractions(scene, depth_points, valid, mask, tol=tol)
        except DATA_ERRORS as err:
            failures.append(f"{scene.scene_id}: {err}"[:200])
            continue
        for instance_id, fraction in per_object.items():
            fractions.append(fraction)
            if fraction < min_fraction:
                worst.append((fraction, f"{scene.scene_id}/{instance_id}: {fraction:.3f}"))
    worst.sort()
    metadata = {
        "num_objects_checked": len(fractions),
        "num_below_threshold": len(worst),
        "min_fraction_inside": round(min(fractions), 4) if fractions else None,
        "mean_fraction_inside": round(float(np.mean(fractions)), 4) if fractions else None,
        "threshold": min_fraction,
        "tolerance_m": tol,
        "scenes_skipped_not_ground_truth": skipped,
        "worst": [text for _, text in worst[:MAX_LISTED]],
        "failures": failures[:MAX_LISTED],
    }
    return not worst and not failures, metadata


def _load_points(depth_path: Path, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    depth = decode_depth_png(depth_path)
    points = depth_to_points(depth, scene.intrinsics)
    return points, np.isfinite(points).all(axis=-1)


def boxes_inside_image(
    root: Path, shard: str, stage: str = "object_clouds", tol_px: float = 0.5
) -> CheckResult:
    """Every object's 2D box lies inside its image (within half a pixel)."""
    scenes, failures = _scenes(root, stage, shard)
    outside = [f"{s.scene_id}/{i}" for s in scenes for i in boxes_outside_image(s, tol_px)]
    metadata = {
        "num_objects": sum(len(s.objects) for s in scenes),
        "num_outside": len(outside),
        "outside": outside[:MAX_LISTED],
        "failures": failures[:MAX_LISTED],
    }
    return not outside and not failures, metadata


def references_unique(root: Path, shard: str, stage: str = "object_references") -> CheckResult:
    """Within each scene every object has a reference (or is explicitly unreferenced), no two references are
    equal, and each geometric reference resolves back to its own object."""
    scenes, failures = _scenes(root, stage, shard)
    found: dict[str, list[str]] = {"missing": [], "duplicate": [], "unresolved": []}
    kinds: Counter[str] = Counter()
    for scene in scenes:
        for key, items in reference_problems(scene).items():
            found[key].extend(items)
        kinds.update(o.reference_kind or "none" for o in scene.objects)
    metadata: dict[str, object] = {
        "num_scenes": len(scenes),
        "num_objects": sum(len(s.objects) for s in scenes),
        **{f"num_{key}": len(items) for key, items in found.items()},
        **{f"kind_{kind}": count for kind, count in sorted(kinds.items())},
        "problems": [item for items in found.values() for item in items][:MAX_LISTED],
        "failures": failures[:MAX_LISTED],
    }
    return not failures and not any(found.values()), metadata


def qa_schema(root: Path, shard: str) -> CheckResult:
    """`qa_shards/<shard>/qa.parquet` exists, has every QAPair field as a column, and each row has a non-empty
    question and answer and valid level/task/format values."""
    import pyarrow.parquet as pq

    from assets.qa.shards import shard_parquet

    path = shard_parquet(root, shard)
    try:
        table = pq.read_table(path)
    except DATA_ERRORS as err:
        return False, {"error": f"unreadable qa.parquet: {err}"[:300]}
    missing = sorted(set(QAPair.model_fields) - set(table.column_names))
    problems: list[str] = []
    if not missing:
        columns = table.select(["qa_id", "question", "answer", "level", "task", "format"]).to_pylist()
        valid = {
            "level": {v.value for v in Level},
            "task": {v.value for v in Task},
            "format": {v.value for v in QAFormat},
        }
        for row in columns:
            if not (row["question"] or "").strip() or not (row["answer"] or "").strip():
                problems.append(f"{row['qa_id']}: empty question or answer")
            for key, allowed in valid.items():
                if row[key] not in allowed:
                    problems.append(f"{row['qa_id']}: {key}={row[key]!r}")
    metadata = {
        "num_rows": table.num_rows,
        "missing_columns": missing,
        "num_bad_rows": len(problems),
        "problems": problems[:MAX_LISTED],
    }
    return not missing and not problems and table.num_rows > 0, metadata
