"""Jobs, all defined with AssetSelection objects (string selections clash with sam2's ANTLR pin; see
INSTALL-NOTES). A Dagster job holds one partitioning, so the graph is three jobs:

- `shard_job`: the six per-shard stages (and their checks) for one `source_shards` partition;
- `dataset_job`: qa_dataset and checkpoint (unpartitioned);
- `benchmark_job`: benchmark_scores for one benchmark partition.

`hispatial demo` runs them in that order; in the daemon, the inbox sensor launches `shard_job` and declarative
automation takes the rest.
"""

from __future__ import annotations

import dagster as dg

from hispatial_dagster.assets import benchmark_scores, checkpoint, qa_dataset, shard_assets
from hispatial_dagster.partitions import benchmarks, source_shards

shard_job = dg.define_asset_job(
    "shard_job",
    selection=dg.AssetSelection.assets(*shard_assets),
    partitions_def=source_shards,
    description="The per-shard stages, source_images through qa_shards, for one source shard.",
)

dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=dg.AssetSelection.assets(qa_dataset, checkpoint),
    description="The QA dataset over all materialized shards, then the checkpoint trained on it.",
)

benchmark_job = dg.define_asset_job(
    "benchmark_job",
    selection=dg.AssetSelection.assets(benchmark_scores),
    partitions_def=benchmarks,
    description="Scores of the latest checkpoint on one benchmark.",
)

all_jobs = [shard_job, dataset_job, benchmark_job]
