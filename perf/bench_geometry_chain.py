"""How well does mask + point map -> object cloud -> gravity -> 3D box recover the truth?

Runs assets/wild/geometry.py with ORACLE masks on ray-cast boxes-on-a-floor scenes (assets/wild/box_scenes.py),
first on exact point maps, then on point maps degraded like a monocular estimator's (and one error source at a
time), and prints box-center error (% of camera distance), height and footprint errors (%) and gravity error
(degrees), and the share of objects within all acceptance bounds at once. Objects are scored when at least `--min-visible` of them is in view (occluded or cut-off boxes cannot be
recovered from what the camera sees).

    .venv/bin/python perf/bench_geometry_chain.py --scenes 12
    .venv/bin/python perf/bench_geometry_chain.py --scenes 40 --source synthetic
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from assets.wild.box_scenes import (
    KnownBox,
    NoiseConfig,
    SceneErrors,
    measure_objects,
    measure_scene,
    render_box_scene,
)

CONDITIONS: dict[str, NoiseConfig | None] = {
    "clean (exact point map)": None,
    "MoGe-like (all below)": NoiseConfig(),
    "  scale 3% only": NoiseConfig(relative_noise=0, distortion=0, focal_error=0, flying_pixels=False),
    "  focal 2% only": NoiseConfig(scale_error=0, relative_noise=0, distortion=0, flying_pixels=False),
    "  depth noise 1% (3 px corr.)": NoiseConfig(
        scale_error=0, distortion=0, focal_error=0, flying_pixels=False
    ),
    "  depth noise 1% (iid)": NoiseConfig(
        scale_error=0, distortion=0, focal_error=0, flying_pixels=False, noise_correlation_px=0
    ),
    "  smooth distortion 2% only": NoiseConfig(
        scale_error=0, relative_noise=0, focal_error=0, flying_pixels=False
    ),
    "  flying pixels only": NoiseConfig(scale_error=0, relative_noise=0, distortion=0, focal_error=0),
}


def within(objects: list) -> float:
    """Share of objects within all acceptance bounds at once: center < 5% of distance, height and both footprint
    extents < 10%."""
    ok = [o.center_error_pct < 5 and o.height_error_pct < 10 and o.footprint_error_pct < 10 for o in objects]
    return 100.0 * float(np.mean(ok))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--min-visible", type=float, default=0.9)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument(
        "--source",
        choices=["boxes", "synthetic"],
        default="boxes",
        help="boxes: ray-cast boxes on a floor; synthetic: assets.synthetic indoor/tabletop scenes",
    )
    args = parser.parse_args()

    if args.source == "synthetic":
        from assets.synthetic import SyntheticConfig, render_scene

        config = SyntheticConfig(num_scenes=args.scenes)
        rendered = [render_scene(config, "synthetic-000", i) for i in range(args.scenes)]
        categories = {(i, o.instance_id): o.category for i, r in enumerate(rendered) for o in r.scene.objects}

        def measure(seed: int, noise: NoiseConfig | None) -> SceneErrors:
            r = rendered[seed]
            truth = [KnownBox(o.instance_id, o.box3d, o.visible_fraction) for o in r.scene.objects]
            return measure_objects(
                r.depth,
                r.scene.intrinsics,
                r.instance_mask,
                r.scene.gravity_cam,
                truth,
                seed,
                noise,
                min_visible=args.min_visible,
            )

        print(
            f"{args.scenes} assets.synthetic scenes (448x448), objects with visible_fraction >= {args.min_visible}"
        )
    else:
        scenes = [render_box_scene(seed, width=args.width, height=args.height) for seed in range(args.scenes)]
        categories = {}

        def measure(seed: int, noise: NoiseConfig | None) -> SceneErrors:
            return measure_scene(scenes[seed], seed, noise=noise, min_visible=args.min_visible)

        print(
            f"{args.scenes} box scenes of {args.width}x{args.height}, objects with visible_fraction >= "
            f"{args.min_visible}"
        )
    header = (
        f"{'condition':32s} {'objs':>4s} {'center% med/p90/max':>21s} {'height% med/p90/max':>21s} "
        f"{'footprint% med/p90/max':>23s} {'fp %dist med/max':>16s} {'gravity deg med/max':>20s} {'s/scene':>7s} "
        f"{'within':>7s}"
    )
    print(header)
    for name, noise in CONDITIONS.items():
        start = time.perf_counter()
        results = [measure(seed, noise) for seed in range(args.scenes)]
        elapsed = (time.perf_counter() - start) / args.scenes
        objects = [o for r in results for o in r.objects]
        gravity = [r.gravity_error_deg for r in results if r.gravity_error_deg is not None]
        failures = sum(len(r.failures) for r in results)

        def stats(values: list[float]) -> str:
            v = np.asarray(values)
            return f"{np.median(v):6.2f}/{np.percentile(v, 90):6.2f}/{v.max():6.2f}"

        print(
            f"{name:32s} {len(objects):4d} {stats([o.center_error_pct for o in objects]):>21s} "
            f"{stats([o.height_error_pct for o in objects]):>21s} "
            f"{stats([o.footprint_error_pct for o in objects]):>23s} "
            f"{np.median([o.footprint_error_of_distance_pct for o in objects]):7.2f}/"
            f"{max(o.footprint_error_of_distance_pct for o in objects):7.2f} "
            f"{np.median(gravity):9.2f}/{max(gravity):9.2f} {elapsed:7.2f} {within(objects):6.1f}%"
            + (
                f"  ({failures} boxes failed, {args.scenes - len(gravity)} scenes without gravity)"
                if failures or len(gravity) < args.scenes
                else ""
            )
        )
        if categories and noise is None:  # where the tail comes from
            worst = sorted(
                objects, key=lambda o: -max(o.center_error_pct, o.height_error_pct, o.footprint_error_pct)
            )[:6]
            print(
                "    worst: "
                + ", ".join(
                    f"{categories[(o.scene_seed, o.box_index)]} (c {o.center_error_pct:.0f}%, h {o.height_error_pct:.0f}%, "
                    f"fp {o.footprint_error_pct:.0f}%)"
                    for o in worst
                )
            )


if __name__ == "__main__":
    main()
