"""Partitions: one per source shard (added at run time by the inbox sensor or `hispatial demo`) and one per
benchmark (fixed when the code location loads)."""

from __future__ import annotations

import os

import dagster as dg

SOURCE_SHARDS = "source_shards"

# The benchmarks the paper reports on, plus our own ground-truth benchmark built from synthetic scenes. Only
# `custom` needs no download; the others score once their data is placed under <data root>/benchmarks/<name>/.
DEFAULT_BENCHMARKS = (
    "custom",
    "cv_bench_3d",
    "3dsrbench",
    "embspatial",
    "robospatial",
    "spatialrgpt",
    "qspatial",
)


def benchmark_names() -> list[str]:
    """Benchmarks as partitions: env HISPATIAL_BENCHMARKS (comma separated) or the evaluation package's registry."""
    configured = os.environ.get("HISPATIAL_BENCHMARKS", "")
    if configured.strip():
        return [name.strip() for name in configured.split(",") if name.strip()]
    try:
        from evaluation.config import BENCHMARKS  # the evaluation package's registry
    except ImportError:
        return list(DEFAULT_BENCHMARKS)
    return list(BENCHMARKS)


source_shards = dg.DynamicPartitionsDefinition(name=SOURCE_SHARDS)
benchmarks = dg.StaticPartitionsDefinition(benchmark_names())
