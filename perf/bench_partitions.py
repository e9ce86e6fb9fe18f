"""How the graph's per-partition overhead grows with the number of shards (dynamic partitions), 10 to 1,000.

For each size N, on a fresh data root and SQLite-backed Dagster instance (our dagster.yaml, `open_instance`):
- `add`: adding N `source_shards` partitions one call each, as `hispatial register` and sensor ticks do over
  time, and `add 1 more`: one further partition once N exist (the marginal cost: should not grow with N);
- `run`: the wall time of one `shard_job` run (all six shard stages, in-process as the CLI's `run_job`) of a
  one-scene synthetic shard with N partitions registered (median of `--runs`): the per-run fixed overhead,
  which should not grow with N either;
- `status`: `hispatial status`'s read (`asset_status`: partition statuses, plus staleness of the materialized
  ones) over all N (+1) partitions of the six shard stages, first with only the `--runs` partitions materialized,
  then with every partition materialized (recorded as runless materialization events, so 1,000 shards need not
  be computed): expected to grow linearly, i.e. a constant cost per partition.

    .venv/bin/python perf/bench_partitions.py [--sizes 10 100 1000] [--runs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from hispatial_dagster.cli import run_job
from hispatial_dagster.instance import open_instance
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.shards import SHARD_STAGES, ShardInbox, ShardSpec
from hispatial_dagster.status import asset_status


def measure(size: int, runs: int, workdir: Path) -> dict[str, float]:
    """All timings for one size on a fresh data root under `workdir`."""
    root = workdir / f"n{size}"
    os.environ["HISPATIAL_DATA_ROOT"] = str(root)
    os.environ.pop("DAGSTER_HOME", None)  # open_instance puts it under this root
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    from hispatial_dagster.definitions import build_defs

    instance = open_instance(root)
    keys = [f"synthetic-{i:05d}" for i in range(size)]
    start = time.perf_counter()
    for key in keys:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [key])
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    instance.add_dynamic_partitions(SOURCE_SHARDS, ["synthetic-extra"])
    add_one_s = time.perf_counter() - start
    assert len(instance.get_dynamic_partitions(SOURCE_SHARDS)) == size + 1

    defs = build_defs()
    inbox = ShardInbox(str(root / "inbox"))
    run_s = []
    for i in range(runs):
        inbox.write(keys[i], ShardSpec(kind="synthetic", seed=i, num_scenes=1))
        start = time.perf_counter()
        result = run_job(defs, "shard_job", instance, partition_key=keys[i])
        run_s.append(time.perf_counter() - start)
        if not result.success:
            raise RuntimeError(f"shard_job failed for {keys[i]} at N={size}")

    def timed_status(expected_materialized: int) -> float:
        best, rows = float("inf"), []
        for _ in range(2):
            start = time.perf_counter()
            rows = asset_status(instance, defs)
            best = min(best, time.perf_counter() - start)
        per_shard = [r for r in rows if r["asset"] in SHARD_STAGES]
        fresh = sum(r["status"] == "materialized" for r in per_shard)
        stale = sum(r["status"].startswith("stale") for r in per_shard)
        assert len(per_shard) == 6 * (size + 1), len(per_shard)
        assert fresh + stale == expected_materialized, (fresh, stale, expected_materialized)
        return best

    status_s = timed_status(6 * runs)
    # Then every registered partition materialized (recorded without running the stages, as an external tool
    # reporting its output would), so the read also resolves staleness for all of them.
    for key in [*keys[runs:], "synthetic-extra"]:
        for asset in SHARD_STAGES:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=key))
    status_all_s = timed_status(6 * (size + 1))
    instance.dispose()
    return {
        "partitions": size,
        "add_s": add_s,
        "add_one_more_s": add_one_s,
        "run_s": statistics.median(run_s),
        "status_s": status_s,
        "status_all_s": status_all_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=2, help="shard_job runs per size (median reported)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if min(args.sizes) < args.runs:
        parser.error("every size must be at least --runs")
    os.environ.setdefault("HISPATIAL_LOG_LEVEL", "ERROR")

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmp:
        for size in args.sizes:
            results.append(measure(size, args.runs, Path(tmp)))
            Console(stderr=True).print(
                f"N={size}: " + ", ".join(f"{k}={v:.3g}" for k, v in results[-1].items())
            )

    table = Table(
        title="Per-partition overhead (SQLite instance; runs: one-scene synthetic shard, all 6 stages)"
    )
    headers = [
        "N",
        "add N (s)",
        "s/partition",
        "add 1 more",
        "run (s)",
        "run: marginal/partition",
        "status (s)",
        "status: marginal/partition",
        "status all mat. (s)",
        "all mat.: marginal/partition",
    ]
    for column in headers:
        table.add_column(column, justify="right")
    base = results[0]

    def marginal(r: dict, name: str) -> str:
        """Growth of a fixed cost per registered partition, against the smallest size."""
        extra = r["partitions"] - base["partitions"]
        return f"{(r[name] - base[name]) / extra * 1e3:+.3f} ms" if extra else "-"

    for r in results:
        n = r["partitions"]
        table.add_row(
            str(n),
            f"{r['add_s']:.3f}",
            f"{r['add_s'] / n * 1e3:.2f} ms",
            f"{r['add_one_more_s'] * 1e3:.1f} ms",
            f"{r['run_s']:.2f}",
            marginal(r, "run_s"),
            f"{r['status_s']:.3f}",
            marginal(r, "status_s"),
            f"{r['status_all_s']:.3f}",
            marginal(r, "status_all_s"),
        )  # fmt: skip
    Console(width=180).print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
