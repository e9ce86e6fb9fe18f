"""The paper's two ablation directions at toy scale, with 95% intervals: does the tiny model reproduce them?

    python perf/bench_ablation.py                       # the full toy run: < 1 hour on 2 idle cores
    python perf/bench_ablation.py --scenes 60 --max-steps 100 --seeds 0 1 --val-items-per-level 40 \
        --val-quantitative-items 80 --threads 1 --label "reduced run"   # < 15 min on a loaded machine

1. Variants (paper Table 6): xyz > rel_depth > rgb on the quantitative L1/L2 questions (free-form lengths,
   success = within 25%, SpatialRGPT's rule).
2. Levels (paper Table 5): removing L0+L1 from training lowers L2 accuracy.

What runs: synthetic scenes with exact 3D ground truth go through the real chain (source_images ... qa_shards,
qa_dataset: `assets.*` entry points, no Dagster), then `training.ablation.run_ablation` trains the tiny model for
the conditions all_levels/xyz, without_L0_L1/xyz, all_levels/rel_depth and all_levels/rgb, once per seed, into a
local MLflow store, and reads the paper's directions off paired bootstrap differences over held-out scenes and
seeds. The printed Markdown (with `--out DIR` also DIR/bench_ablation.md and .json) is what the README shows. The power figure says how many items per level a 95% interval of +-2.5 points needs at the accuracy the
runs reached, with the design effect measured on their items (questions of one scene are correlated).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.intervals import design_effect, items_for_half_width
from training.ablation import markdown_tables, run_ablation
from training.config import MLflowConfig, TrainConfig


def build_root(root: Path, scenes: int, seed: int) -> dict[str, float]:
    """The demo's chain on one synthetic shard, in process; returns seconds per stage."""
    from assets.filtering import filter_shard
    from assets.objects import object_clouds_shard
    from assets.point_maps import point_maps_shard
    from assets.qa.dataset import build_qa_dataset
    from assets.qa.shards import qa_shard
    from assets.references import references_shard
    from assets.synthetic import SyntheticConfig, write_synthetic_shard

    shard = "bench-ablation"
    stages = {
        "source_images": lambda: write_synthetic_shard(
            root, shard, SyntheticConfig(num_scenes=scenes, seed=seed)
        ),
        "filtered_images": lambda: filter_shard(root, shard),
        "point_maps": lambda: point_maps_shard(root, shard),
        "object_clouds": lambda: object_clouds_shard(root, shard),
        "object_references": lambda: references_shard(root, shard),
        "qa_shards": lambda: qa_shard(root, shard),
        "qa_dataset": lambda: build_qa_dataset(root, [shard]),
    }
    seconds = {}
    for name, stage in stages.items():
        started = time.perf_counter()
        stage()
        seconds[name] = round(time.perf_counter() - started, 1)
    return seconds


def power_lines(items: pd.DataFrame) -> list[str]:
    """Items per level for a +-2.5-point 95% interval at the accuracy reached, with the measured design effect."""
    lines = []
    for measure, levels in (("correct", ("L2",)), ("quantitative", ("L1", "L2"))):
        part = items[items["level"].isin(levels) & items[measure].notna()]
        if part.empty:
            continue
        one_run = part[part["run_id"] == part["run_id"].iloc[0]]
        p = float(np.clip(part[measure].mean(), 0.02, 0.98))
        deff = design_effect(one_run, measure)
        deff = 1.0 if not np.isfinite(deff) else max(deff, 1.0)
        per_run = len(one_run)
        lines.append(
            f"- {measure} on {'+'.join(levels)}: p = {part[measure].mean():.3f}, {per_run} items per run over "
            f"{one_run['scene_id'].nunique()} scenes, design effect {deff:.2f} (1 where not measurable); a 95% interval of +-2.5 points "
            f"needs {items_for_half_width(p, 0.025, design_effect=deff)} items per run "
            f"({items_for_half_width(0.5, 0.025, design_effect=deff)} at p = 0.5)"
        )
    return lines


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, help="data root to build (or reuse); default: a temp dir")
    parser.add_argument("--out", type=Path, help="write bench_ablation.md and .json here")
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--val-fraction", type=float, default=0.3)
    parser.add_argument("--val-items-per-level", type=int, default=400)
    parser.add_argument(
        "--val-quantitative-items",
        type=int,
        default=600,
        help="free-form length questions (L1/L2) in the held-out set, for Table 6",
    )
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--arms", nargs="*", default=["all_levels", "without_L0_L1"])
    parser.add_argument("--variants", nargs="*", default=["rgb", "rel_depth", "xyz"])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads; 1 on a machine shared with other jobs (2 threads on an oversubscribed "
        "2-core machine ran evaluation 5x slower than 1); 0 = torch's default",
    )
    parser.add_argument("--label", default="", help="a note printed above the table (e.g. 'reduced run')")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-ablation-") as tmp:
        root = args.root or Path(tmp) / "data"
        stage_seconds = {} if (root / "qa_dataset").exists() else build_root(root, args.scenes, seed=0)
        config = TrainConfig.preset("tiny")
        config = config.model_copy(
            update={
                "max_steps": args.max_steps,
                "batch_size": args.batch_size,
                "data": config.data.model_copy(
                    update={
                        "val_fraction": args.val_fraction,
                        "val_items_per_level": args.val_items_per_level,
                        "val_quantitative_items": args.val_quantitative_items,
                    }
                ),
                "mlflow": MLflowConfig(
                    tracking_uri=f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                    experiment="bench-ablation",
                    log_model_artifacts=False,
                ),
            }
        )
        config = TrainConfig.model_validate(config.model_dump())
        train_started = time.perf_counter()
        report = run_ablation(
            root,
            config,
            mlflow_dir=Path(tmp),
            arms=args.arms,
            variants=args.variants,
            seeds=args.seeds,
            resamples=args.resamples,
        )
        train_seconds = time.perf_counter() - train_started
        markdown = markdown_tables(report.table, report.differences)
        power = power_lines(report.items)
    total = time.perf_counter() - started
    command = "python perf/bench_ablation.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    header = (
        f"{args.label + ': ' if args.label else ''}`{command.strip()}`; {args.scenes} synthetic scenes, "
        f"{args.val_fraction:.0%} held out, tiny model, {args.max_steps} steps x batch {args.batch_size}, seeds "
        f"{' '.join(map(str, args.seeds))}; {total / 60:.1f} min wall ({train_seconds / 60:.1f} training + eval) "
        f"on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}.\n"
    )
    text = header + "\n" + markdown + "\n### Power\n\n" + "\n".join(power) + "\n"
    print(text)
    results: dict[str, object] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "seconds": {"total": round(total, 1), "training_and_eval": round(train_seconds, 1), **stage_seconds},
        "table": json.loads(report.table.reset_index().to_json(orient="records")),
        "differences": json.loads(report.differences.to_json(orient="records")),
        "power": power,
    }
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_ablation.md").write_text(text)
        (args.out / "bench_ablation.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
