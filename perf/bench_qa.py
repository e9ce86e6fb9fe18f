"""Template QA synthesis throughput, single thread: QA pairs per second per core.

    .venv/bin/python perf/bench_qa.py --scenes 60 --repeats 3

Scenes are rendered by `assets.synthetic` (with references from `assets.references.assign_references`), generated
once, then timed through `assets.qa.engine.generate_scene_qa`: L1+L2 (the template levels this engine owns), the
same plus offline L0 samples from each scene's exact point map, and everything including L3 (`assets.qa.l3`). The
online L0 sampler (`sample_l0`, the training dataloader's per-image call) is timed separately. Reported: pairs per
second by process CPU time (the fair "per core" figure on a shared machine) and by wall clock, best of --repeats.
Target: >= 50,000 template pairs/s per core.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from assets.geometry import depth_to_points
from assets.qa.config import QAConfig
from assets.qa.engine import generate_scene_qa
from assets.qa.l0 import sample_l0
from assets.records import Scene


def _scenes(n: int, seed: int) -> list[tuple[Scene, np.ndarray, np.ndarray]]:
    from assets.references import assign_references
    from assets.synthetic import SyntheticConfig, render_scene

    config = SyntheticConfig(num_scenes=n, seed=seed)
    out = []
    for i in range(n):
        rendered = render_scene(config, "qa-bench", i)
        points = depth_to_points(rendered.depth, rendered.scene.intrinsics).astype(np.float32)
        out.append((assign_references(rendered.scene), points, np.isfinite(points).all(axis=-1)))
    return out


def _time(fn, repeats: int) -> tuple[int, float, float]:
    """(items, best cpu seconds, best wall seconds) over `repeats` runs."""
    best_cpu = best_wall = float("inf")
    items = 0
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        items = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    return items, best_cpu, best_wall


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l0-per-image", type=int, default=8)
    args = parser.parse_args(argv)
    scenes = _scenes(args.scenes, args.seed)
    results: dict[str, float] = {
        "scenes": len(scenes),
        "objects_per_scene": float(np.mean([len(s.objects) for s, _, _ in scenes])),
    }

    def run(config: QAConfig, with_points: bool) -> int:
        n = 0
        for scene, points, valid in scenes:
            pairs, _ = generate_scene_qa(scene, (points, valid) if with_points else None, config)
            n += len(pairs)
        return n

    cases = {
        "l1_l2": (QAConfig(seed=args.seed, l0_eval_samples=0, include_l3=False), False),
        "l0_l1_l2": (QAConfig(seed=args.seed, l0_eval_samples=8, include_l3=False), True),
    }
    cases["l0_to_l3"] = (QAConfig(seed=args.seed, l0_eval_samples=8, include_l3=True), True)
    with threadpool_limits(limits=1):
        for name, (config, with_points) in cases.items():
            n, cpu, wall = _time(lambda c=config, w=with_points: run(c, w), args.repeats)
            results[f"{name}_pairs"] = n
            results[f"{name}_pairs_per_s_cpu"] = round(n / cpu)
            results[f"{name}_pairs_per_s_wall"] = round(n / wall)

        rng = np.random.default_rng(args.seed)

        def online() -> int:
            return sum(len(sample_l0(points, valid, rng, args.l0_per_image)) for _, points, valid in scenes)

        n, cpu, wall = _time(online, args.repeats)
        results["l0_online_pairs_per_s_cpu"] = round(n / cpu)
        results["l0_online_pairs_per_s_wall"] = round(n / wall)
        results["l0_online_ms_per_image"] = round(1000 * cpu / len(scenes), 3)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
