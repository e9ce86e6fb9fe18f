"""Throughput and storage cost of the synthetic source, on one core.

    .venv/bin/python perf/bench_synthetic.py --scenes 100

Renders N scenes in this process with every BLAS/OpenMP pool pinned to one thread, and prints scenes per second
(render only, and render + JPEG/PNG encoding; wall clock and process CPU time, the latter being the fair "per core"
figure on a shared machine) and the mean stored bytes per scene. Target: >= 10 scenes/s per core at 448 px
including encoding, <= 300 KB per scene for image + depth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from assets.storage import encode_depth_png, encode_jpeg, encode_mask_png
from assets.synthetic import SyntheticConfig, render_scene


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard", default="synthetic-bench")
    parser.add_argument("--tabletop-fraction", type=float, default=0.35)
    args = parser.parse_args(argv)
    config = SyntheticConfig(
        image_size=args.image_size,
        num_scenes=args.scenes,
        seed=args.seed,
        tabletop_fraction=args.tabletop_fraction,
    )
    wall = {"render": 0.0, "encode": 0.0}
    cpu = {"render": 0.0, "encode": 0.0}
    sizes: dict[str, list[int]] = {"jpg": [], "depth_png": [], "mask_png": []}
    objects = []
    with threadpool_limits(limits=1):
        render_scene(config, args.shard, -1)  # warm-up: imports, caches
        for index in range(args.scenes):
            w0, c0 = time.perf_counter(), time.process_time()
            rendered = render_scene(config, args.shard, index)
            w1, c1 = time.perf_counter(), time.process_time()
            sizes["jpg"].append(len(encode_jpeg(rendered.rgb, quality=config.jpeg_quality)))
            sizes["depth_png"].append(
                len(encode_depth_png(rendered.depth, compress_level=config.depth_png_level))
            )
            sizes["mask_png"].append(len(encode_mask_png(rendered.instance_mask)))
            w2, c2 = time.perf_counter(), time.process_time()
            wall["render"] += w1 - w0
            wall["encode"] += w2 - w1
            cpu["render"] += c1 - c0
            cpu["encode"] += c2 - c1
            objects.append(len(rendered.scene.objects))
    n = args.scenes
    results = {
        "render_scenes_per_s_wall": n / wall["render"],
        "render_scenes_per_s_cpu": n / cpu["render"],
        "render_encode_scenes_per_s_wall": n / (wall["render"] + wall["encode"]),
        "render_encode_scenes_per_s_cpu": n / (cpu["render"] + cpu["encode"]),
        **{f"mean_{key}_bytes": float(np.mean(values)) for key, values in sizes.items()},
        "mean_total_bytes": float(np.mean(np.sum([sizes[k] for k in sizes], axis=0))),
        "max_image_plus_depth_bytes": float(np.max(np.add(sizes["jpg"], sizes["depth_png"]))),
        "mean_objects_per_scene": float(np.mean(objects)),
    }
    print(f"synthetic source: {n} scenes at {args.image_size}x{args.image_size}, one thread")
    print(
        f"  render only      : {results['render_scenes_per_s_cpu']:6.1f} scenes/s per core (CPU time), "
        f"{results['render_scenes_per_s_wall']:6.1f} wall"
    )
    print(
        f"  render + encode  : {results['render_encode_scenes_per_s_cpu']:6.1f} scenes/s per core (CPU time), "
        f"{results['render_encode_scenes_per_s_wall']:6.1f} wall"
    )
    print(
        f"  bytes per scene  : jpg {results['mean_jpg_bytes'] / 1e3:.1f} KB, depth png "
        f"{results['mean_depth_png_bytes'] / 1e3:.1f} KB, mask png {results['mean_mask_png_bytes'] / 1e3:.1f} KB, "
        f"total {results['mean_total_bytes'] / 1e3:.1f} KB (max image+depth "
        f"{results['max_image_plus_depth_bytes'] / 1e3:.1f} KB)"
    )
    print(f"  objects per scene: {results['mean_objects_per_scene']:.1f} recorded")
    return results


if __name__ == "__main__":
    main()
