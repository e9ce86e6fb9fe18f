"""How the inbox sensor scales with the number of shards: tick time and per-partition overhead, 10 to 1,000 shards.

For each size N: write N shard specs into a fresh inbox, then time, on a fresh SQLite-backed Dagster instance,
- `first tick`: the sensor's evaluation when all N shards are new (scan + fingerprint + N run requests), plus
  applying its N partition additions (what the daemon does before launching runs);
- `steady tick`: the next evaluation with nothing changed (the cost paid every interval, forever);
- `one new`: a tick after one more shard arrives.

    .venv/bin/python perf/bench_sensor.py [--sizes 10 100 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
from rich.console import Console
from rich.table import Table

from hispatial_dagster.resources import DataRoot, SourceInbox
from hispatial_dagster.sensors import shard_inbox_sensor
from hispatial_dagster.shards import ShardInbox, ShardSpec


def _tick(instance: dg.DagsterInstance, root: Path, cursor: str | None) -> tuple[float, object, str | None]:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"data_root": DataRoot(path=str(root)), "source_inbox": SourceInbox(url="")},
    )
    start = time.perf_counter()
    result = shard_inbox_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        cursor = result.cursor
    else:
        cursor = context.cursor
    return time.perf_counter() - start, result, cursor


def measure(size: int, repeats: int = 3) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        inbox = ShardInbox(str(root / "inbox"))
        for i in range(size):
            inbox.write(f"synthetic-{i:05d}", ShardSpec(kind="synthetic", seed=i, num_scenes=50))
        with dg.instance_for_test(temp_dir=tmp) as instance:
            first, result, cursor = _tick(instance, root, None)
            assert len(result.run_requests) == size
            steady = []
            for _ in range(repeats):
                seconds, result, cursor = _tick(instance, root, cursor)
                assert isinstance(result, dg.SkipReason)
                steady.append(seconds)
            inbox.write("synthetic-new", ShardSpec(kind="synthetic", seed=size, num_scenes=50))
            one_new, result, cursor = _tick(instance, root, cursor)
            assert [r.partition_key for r in result.run_requests] == ["synthetic-new"]
    steady_s = statistics.median(steady)
    return {
        "shards": size,
        "first_s": first,
        "first_ms/shard": 1000 * first / size,
        "steady_s": steady_s,
        "steady_ms/shard": 1000 * steady_s / size,
        "one_new_s": one_new,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rows = [measure(size, args.repeats) for size in args.sizes]
    table = Table(title="shard_inbox_sensor scaling (local inbox, SQLite instance)")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
