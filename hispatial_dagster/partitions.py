"""Partitions: one per source shard (added at run time by the inbox sensor or `hispatial demo`) and one per
benchmark (fixed when the code location loads)."""

from __future__ import annotations

import json
import os

import dagster as dg

SOURCE_SHARDS = "source_shards"


def benchmark_names() -> list[str]:
    """Benchmarks as partitions: env HISPATIAL_BENCHMARKS (comma separated), else `custom` (built from our own
    synthetic scenes, needs no download) plus every benchmark the evaluation options give data or predictions
    for (HISPATIAL_EVAL_OPTIONS, see evaluation.config.EvalConfig). Benchmarks nobody placed data for are left
    out, so automation never launches runs that can only fail with "not configured"."""
    configured = os.environ.get("HISPATIAL_BENCHMARKS", "")
    if configured.strip():
        return [name.strip() for name in configured.split(",") if name.strip()]
    from evaluation.config import BENCHMARKS

    options = json.loads(os.environ.get("HISPATIAL_EVAL_OPTIONS", "") or "{}")
    with_data = set(options.get("data", {})) | set(options.get("predictions", {})) | {"custom"}
    return [name for name in BENCHMARKS if name in with_data]


source_shards = dg.DynamicPartitionsDefinition(name=SOURCE_SHARDS)
benchmarks = dg.StaticPartitionsDefinition(benchmark_names())
