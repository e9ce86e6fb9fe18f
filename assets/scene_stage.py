"""The shared shape of the four scene-carrying middle stages (filtering, point maps, object clouds, references).

Each of them reads the previous stage's `scenes.jsonl` for one shard line by line (a malformed line is a rejection
of that line, not of the shard), transforms scene by scene through `assets.stage.process_items`, and swaps in its
own shard directory with `scenes.jsonl`, `rejected.jsonl` and `_manifest.json`. Keeping that skeleton here means
each stage module holds only what is particular to it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assets.images import read_rgb
from assets.records import Scene
from assets.stage import DataError, StageReport, check_not_systemic, process_items, reason_kind
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    directory_digest,
    shard_dir,
    write_jsonl,
    write_scenes,
)

PREVIEW_ROWS = 5


@dataclass(frozen=True)
class SceneLine:
    """One line of a scenes.jsonl file, not yet validated."""

    lineno: int
    text: str

    @property
    def item_id(self) -> str:
        """The scene id when the line is JSON with one, else its line number: rejections must name something."""
        try:
            value = json.loads(self.text)
        except ValueError:
            return f"line {self.lineno}"
        scene_id = value.get("scene_id") if isinstance(value, dict) else None
        return str(scene_id) if scene_id else f"line {self.lineno}"


def read_scene_lines(path: Path) -> list[SceneLine]:
    """Non-empty lines of a scenes file; a missing file means the upstream stage never ran, which is not an
    item-level problem, so it raises."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: materialize the upstream stage for this shard first")
    with open(path, encoding="utf-8") as fh:
        return [SceneLine(lineno, line) for lineno, line in enumerate(fh, 1) if line.strip()]


def parse_scene(line: SceneLine) -> Scene:
    """Validate one line; pydantic's error (a ValueError) names the bad field and becomes the rejection reason."""
    try:
        return Scene.model_validate_json(line.text)
    except ValueError as err:
        first = str(err).splitlines()[0:3]
        raise DataError(f"malformed scene record: line {line.lineno}: {' '.join(first)}") from err


def load_scene_rgb(root: Path, scene: Scene) -> np.ndarray:
    """The scene's image as (H, W, 3) uint8; a missing or corrupt file raises DataError "unreadable image: <path>"
    with the path relative to the data root, so rejections group by kind rather than by file."""
    try:
        return read_rgb(Path(root) / scene.image_file)
    except DataError as err:
        kind, _, detail = str(err).partition(": ")
        raise DataError(
            f"{kind}: {scene.image_file}: {detail}" if detail else f"{kind}: {scene.image_file}"
        ) from err


def rejection_histogram(report: StageReport) -> list[dict[str, object]]:
    counts = Counter(reason_kind(r.reason) for r in report.rejections)
    return [{"reason": reason, "count": count} for reason, count in counts.most_common()]


def preview_row(scene: Scene) -> dict[str, object]:
    categories = sorted({obj.category for obj in scene.objects})
    return {
        "scene_id": scene.scene_id,
        "num_objects": len(scene.objects),
        "categories": ", ".join(categories)[:120],
        "ground_truth": scene.has_ground_truth_3d,
    }


@contextmanager
def scene_stage(root: Path, stage: str, shard: str) -> Iterator[tuple[StageReport, Path]]:
    """Open a stage's output shard: yields (report, temp_dir). Files written under temp_dir appear under
    `<root>/<stage>/<shard>/` only when the block finishes without error (assets.storage.atomic_dir)."""
    final = shard_dir(root, stage, shard)
    report = StageReport(stage=stage, shard=shard, output_dir=final)
    with atomic_dir(final) as tmp:
        yield report, tmp


def run_scene_stage(
    root: Path,
    stage: str,
    shard: str,
    upstream: str,
    fn: Callable[[Scene, StageReport, Path], Scene | None],
    extra_preview: Callable[[Scene], dict[str, object]] | None = None,
    metadata: dict[str, object] | None = None,
) -> StageReport:
    """Read `<upstream>/<shard>/scenes.jsonl`, apply `fn(scene, report, tmp_dir)` to each parsed scene and write the
    stage's shard. `fn` raises a data error (DataError, ValueError, OSError, ...) to reject a scene with that reason,
    may call `report.reject` for parts of a scene (one object), and returns the scene to keep. When every scene is
    rejected the stage raises `ShardFailure` and the previous shard stays (assets.stage.check_not_systemic). `metadata` is
    merged into the report (and the manifest) after every item was processed, so `fn` may fill in counts as it
    goes.
    """
    lines = read_scene_lines(shard_dir(root, upstream, shard) / "scenes.jsonl")
    seen: set[str] = set()
    with scene_stage(root, stage, shard) as (report, tmp):

        def one(line: SceneLine) -> Scene | None:
            scene = parse_scene(line)
            if scene.scene_id in seen:
                raise DataError(f"duplicate scene_id: {scene.scene_id} already appeared in this shard")
            seen.add(scene.scene_id)
            return fn(scene, report, tmp)

        scenes = process_items(lines, one, report, lambda line: line.item_id)
        check_not_systemic(report)
        report.metadata.update(metadata or {})
        finish_stage(report, tmp, scenes, extra_preview)
    return report


def finish_stage(
    report: StageReport,
    tmp: Path,
    scenes: list[Scene],
    extra_preview: Callable[[Scene], dict[str, object]] | None = None,
) -> None:
    """Write scenes, rejections and the manifest (last, with the content digest) into the temp shard directory."""
    write_scenes(tmp / "scenes.jsonl", scenes)
    write_jsonl(tmp / "rejected.jsonl", [r.as_dict() for r in report.rejections])
    report.num_out = len(scenes)
    report.metadata.update(
        {
            "num_scenes_in": report.num_in,
            "num_scenes_out": len(scenes),
            "num_rejected": len(report.rejections),
            "num_objects": sum(len(s.objects) for s in scenes),
            "rejection_reasons": rejection_histogram(report),
        }
    )
    report.preview = [
        {**preview_row(scene), **(extra_preview(scene) if extra_preview else {})}
        for scene in scenes[:PREVIEW_ROWS]
    ]
    manifest = report.manifest()
    manifest["digest"] = directory_digest(tmp)
    report.metadata["digest"] = manifest["digest"]
    atomic_write_json(tmp / "_manifest.json", manifest)
