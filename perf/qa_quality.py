"""QA quality on the demo's shards, without Dagster: leaks, answer classes, duplicates, ambiguous items.

    .venv/bin/python perf/qa_quality.py            # 2 shards x 50 scenes, seeds 0 and 1 (as `hispatial demo`)

Each shard is rendered as `assets.synthetic.write_synthetic_shard` renders it (same config, shard key and scene
index), referenced by `assets.references.assign_references`, questioned by `assets.qa.engine.generate_scene_qa`
with the exact point map, and balanced per shard by `assets.qa.quality.balance_pairs` (what `qa_shards` does);
the image filter stage is not applied. Prints the `quality_report` of the union as JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from assets.geometry import depth_to_points
from assets.qa.config import QAConfig
from assets.qa.engine import generate_scene_qa
from assets.qa.quality import balance_pairs, quality_report
from assets.references import assign_references
from assets.synthetic import SyntheticConfig, render_scene


def image_contradictions(scene) -> tuple[int, int]:
    """(left/right references, those whose 2D box centre order contradicts the word against another instance of
    the category): "the leftmost book" must not lie right of another book in the picture."""
    n = bad = 0
    for obj in scene.objects:
        text = (obj.reference or "").lower()
        words = set(text.replace("-", " ").split())
        if not words & {"leftmost", "rightmost", "left", "right"}:
            continue
        n += 1
        u = 0.5 * (obj.box2d.x0 + obj.box2d.x1)
        others = [
            0.5 * (o.box2d.x0 + o.box2d.x1)
            for o in scene.objects
            if o.category == obj.category and o.instance_id != obj.instance_id
        ]
        if ("leftmost" in words and any(v < u for v in others)) or (
            "rightmost" in words and any(v > u for v in others)
        ):
            bad += 1
    return n, bad


def shard_pairs(seed: int, shard: str, scenes: int, balance: bool = True, stats: dict | None = None) -> list:
    config = SyntheticConfig(num_scenes=scenes, seed=seed)
    pairs = []
    for index in range(scenes):
        rendered = render_scene(config, shard, index)
        points = depth_to_points(rendered.depth, rendered.scene.intrinsics).astype(np.float32)
        scene = assign_references(rendered.scene)
        if stats is not None:
            n, bad = image_contradictions(scene)
            stats["left_right_references"] = stats.get("left_right_references", 0) + n
            stats["references_contradicting_image"] = stats.get("references_contradicting_image", 0) + bad
        got, _ = generate_scene_qa(scene, (points, np.isfinite(points).all(axis=-1)), QAConfig())
        pairs += got
    return balance_pairs(pairs)[0] if balance else pairs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-balance", action="store_true")
    args = parser.parse_args(argv)
    pairs = []
    stats: dict = {}
    for i in range(args.shards):
        pairs += shard_pairs(
            args.seed + i, f"synthetic-{i:03d}", args.scenes, balance=not args.no_balance, stats=stats
        )
    report = {**quality_report(pairs), "references": stats}
    print(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
