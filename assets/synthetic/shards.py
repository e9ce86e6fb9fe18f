"""Shard writing: `write_synthetic_shard`, the `source_images` stage for the synthetic source."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from assets.records import Scene
from assets.stage import StageReport, process_items
from assets.storage import (
    atomic_dir,
    atomic_write_json,
    check_shard_name,
    directory_digest,
    encode_depth_png,
    encode_jpeg,
    encode_mask_png,
    shard_dir,
    write_jsonl,
    write_scenes,
)
from assets.synthetic.config import STAGE, SyntheticConfig, scene_id_for
from assets.synthetic.scenes import render_scene

# ------------------------------------------------------------------------------------------ the stage


def write_synthetic_shard(root: Path, shard: str, config: SyntheticConfig) -> StageReport:
    """Render `config.num_scenes` scenes into `<root>/source_images/<shard>/`, atomically.

    Images are JPEG, depth the project's 16-bit log PNG, masks 8-bit instance-id PNGs; `scenes.jsonl` holds one
    `Scene` per line with paths relative to `root`. The whole directory appears at once (assets.storage.atomic_dir):
    a crash leaves only a hidden `.tmp-*` directory that the next write removes. A scene that cannot be laid out
    becomes a rejection (in `rejected.jsonl`), not a failed shard.
    """
    final = shard_dir(Path(root), STAGE, check_shard_name(shard))
    report = StageReport(stage=STAGE, shard=shard, output_dir=final)
    sizes: dict[str, list[int]] = {"image": [], "depth": [], "mask": []}
    timings = {"render": 0.0, "encode": 0.0}
    with atomic_dir(final) as tmp:
        for sub in ("images", "depth", "masks"):
            (tmp / sub).mkdir()

        def one(index: int) -> Scene:
            start = time.perf_counter()
            rendered = render_scene(config, shard, index)
            mid = time.perf_counter()
            sid = rendered.scene.scene_id
            blobs = {
                "image": (
                    tmp / "images" / f"{sid}.jpg",
                    encode_jpeg(rendered.rgb, quality=config.jpeg_quality),
                ),
                "depth": (
                    tmp / "depth" / f"{sid}.png",
                    encode_depth_png(rendered.depth, compress_level=config.depth_png_level),
                ),
                "mask": (tmp / "masks" / f"{sid}.png", encode_mask_png(rendered.instance_mask)),
            }
            for key, (path, data) in blobs.items():
                path.write_bytes(data)
                sizes[key].append(len(data))
            timings["render"] += mid - start
            timings["encode"] += time.perf_counter() - mid
            return rendered.scene

        scenes = process_items(range(config.num_scenes), one, report, lambda i: scene_id_for(shard, i))
        write_scenes(tmp / "scenes.jsonl", scenes)
        write_jsonl(tmp / "rejected.jsonl", [r.as_dict() for r in report.rejections])  # always: empty = none
        categories = Counter(obj.category for scene in scenes for obj in scene.objects)
        n = max(1, len(scenes))
        report.metadata = {
            "scenes": len(scenes),
            "objects": sum(categories.values()),
            "categories": dict(sorted(categories.items())),
            "num_categories": len(categories),
            "tabletop_scenes": sum(1 for s in scenes if s.metadata.get("kind") == "tabletop"),
            "mean_image_bytes": round(sum(sizes["image"]) / n),
            "mean_depth_bytes": round(sum(sizes["depth"]) / n),
            "mean_mask_bytes": round(sum(sizes["mask"]) / n),
            "render_seconds": round(timings["render"], 3),
            "encode_seconds": round(timings["encode"], 3),
            "scenes_per_second": round(len(scenes) / max(1e-9, timings["render"] + timings["encode"]), 2),
        }
        report.metadata["digest"] = directory_digest(tmp)
        report.preview = [
            {"scene_id": s.scene_id, "objects": len(s.objects), "caption": s.caption} for s in scenes[:5]
        ]
        manifest = report.manifest()
        manifest["digest"] = report.metadata["digest"]
        manifest["config"] = config.model_dump(mode="json")
        atomic_write_json(tmp / "_manifest.json", manifest)
    if scenes:
        report.thumbnail = final / "images" / f"{scenes[0].scene_id}.jpg"
    return report
