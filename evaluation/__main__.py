"""CLI: score a predictions file (any model's outputs) or a checkpoint on one benchmark.

python -m evaluation score --benchmark cv_bench --predictions preds.jsonl --data nyu-visionx/CV-Bench
python -m evaluation score --benchmark custom --checkpoint checkpoints/run1 --root data --heldout-shard s-009
python -m evaluation items --benchmark 3dsrbench --data ccvl/3DSRBench --out items.jsonl   (for external systems)
python -m evaluation compare --out comparison.png runA=data/benchmark_scores runB=other/benchmark_scores
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.config import BENCHMARKS, EvalConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation")
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="score one benchmark")
    score.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    score.add_argument("--predictions", type=Path, help="JSONL of {id, prediction}")
    score.add_argument("--checkpoint", type=Path, help="checkpoint directory (instead of --predictions)")
    score.add_argument("--data", help="local path or Hugging Face dataset id of the benchmark")
    score.add_argument("--root", type=Path, default=Path("."), help="data root (custom benchmark, outputs)")
    score.add_argument("--output-dir", type=Path)
    score.add_argument("--heldout-shard", action="append", default=[])
    score.add_argument("--limit", type=int)
    score.add_argument(
        "--no-judge", action="store_true", help="use the rule-based judge even if an endpoint is set"
    )
    score.add_argument("--mlflow-tracking-uri")
    export = sub.add_parser("items", help="export a benchmark's prompts and images for an external system")
    export.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    export.add_argument("--data", help="local path or Hugging Face dataset id of the benchmark")
    export.add_argument("--root", type=Path, default=Path("."))
    export.add_argument("--heldout-shard", action="append", default=[])
    export.add_argument("--out", type=Path, required=True)
    compare = sub.add_parser("compare", help="comparison table and bar chart across runs, with paper rows")
    compare.add_argument("runs", nargs="+", help="NAME=DIR where DIR holds <benchmark>/report.json")
    compare.add_argument(
        "--out", type=Path, required=True, help="bar chart PNG; the table goes next to it as CSV"
    )
    args = parser.parse_args(argv)

    if args.command == "score":
        from evaluation.run import score_benchmark

        config = EvalConfig(
            data={args.benchmark: args.data} if args.data else {},
            predictions={args.benchmark: args.predictions} if args.predictions else {},
            output_dir=args.output_dir,
            heldout_shards=args.heldout_shard,
            limit=args.limit,
            use_judge=not args.no_judge,
            mlflow_tracking_uri=args.mlflow_tracking_uri,
        )
        report = score_benchmark(args.root, args.benchmark, args.checkpoint, config)
        print(json.dumps(report.metadata(), indent=2, default=str))
        return 0 if report.status == "ok" else 1

    if args.command == "items":
        from evaluation.run import export_items

        config = EvalConfig(
            data={args.benchmark: args.data} if args.data else {}, heldout_shards=args.heldout_shard
        )
        print(export_items(args.root, args.benchmark, config, args.out), "items written to", args.out)
        return 0

    from evaluation.report import comparison_table, load_reports, plot_comparison

    runs = {}
    for spec in args.runs:
        name, _, directory = spec.partition("=")
        runs[name] = load_reports(Path(directory))
    table = comparison_table(runs)
    table.to_csv(args.out.with_suffix(".csv"))
    plot_comparison(table, args.out)
    print(table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
