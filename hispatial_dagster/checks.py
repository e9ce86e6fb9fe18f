"""Asset checks: each calls one function of `assets.checks` (plain Python, returns `(passed, metadata)`) on the
partition just materialized. They run in the same job as their asset (shard_job includes them) and show on the
asset's page in the UI; a failure is an ERROR-severity result, not a crashed run."""

import warnings
from collections.abc import Callable
from typing import Any

import dagster as dg

from hispatial_dagster.assets import object_clouds, object_references, point_maps, qa_dataset, qa_shards
from hispatial_dagster.metadata import _scalar_metadata
from hispatial_dagster.partitions import source_shards
from hispatial_dagster.resources import DataRoot

# Partitioned asset checks are a preview feature of Dagster 1.13; we rely on them knowingly (one check result per
# shard), so the warning is silenced here rather than in every test and CLI run.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=Warning
)


def _result(outcome: tuple[bool, dict[str, Any]]) -> dg.AssetCheckResult:
    passed, metadata = outcome
    return dg.AssetCheckResult(
        passed=bool(passed), severity=dg.AssetCheckSeverity.ERROR, metadata=_scalar_metadata(metadata)
    )


def _check_fn(name: str) -> Callable[..., tuple[bool, dict[str, Any]]]:
    from assets import checks  # imported when a check runs, so loading the code location stays light

    return getattr(checks, name)


@dg.asset_check(
    asset=point_maps, partitions_def=source_shards, description="No NaN/inf in stored point maps."
)
def point_maps_finite(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
    return _result(_check_fn("point_maps_finite")(data_root.root, context.partition_key))


@dg.asset_check(
    asset=object_clouds, partitions_def=source_shards, description="Object points lie inside their 3D boxes."
)
def points_in_boxes(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
    return _result(_check_fn("points_in_boxes")(data_root.root, context.partition_key))


@dg.asset_check(
    asset=object_clouds,
    partitions_def=source_shards,
    description="Every object's 2D box lies inside its image.",
)
def boxes_inside_image(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
    return _result(_check_fn("boxes_inside_image")(data_root.root, context.partition_key))


@dg.asset_check(
    asset=object_references, partitions_def=source_shards, description="References are unique within a scene."
)
def references_unique(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
    return _result(_check_fn("references_unique")(data_root.root, context.partition_key))


@dg.asset_check(
    asset=qa_shards,
    partitions_def=source_shards,
    description="qa.parquet has the QA schema; answers non-empty.",
)
def qa_schema(context: dg.AssetCheckExecutionContext, data_root: DataRoot) -> dg.AssetCheckResult:
    return _result(_check_fn("qa_schema")(data_root.root, context.partition_key))


def _release_check(name: str, description: str) -> dg.AssetChecksDefinition:
    """An asset check of the qa_dataset release: one part of its quality report against the thresholds
    (`assets.qa.quality.check_report`)."""

    @dg.asset_check(asset=qa_dataset, name=f"qa_dataset_{name}", description=description)
    def _check(data_root: DataRoot) -> dg.AssetCheckResult:
        from assets.qa.dataset import read_quality
        from assets.qa.quality import check_report

        return _result(check_report(read_quality(data_root.root), name))

    return _check


qa_dataset_checks = [
    _release_check("no_leaks", "No question names an object by the quantity or relation it asks about."),
    _release_check("answers_balanced", "Free-form answer classes within 1/k + 0.15 (the true/false bound)."),
    _release_check("no_duplicates_or_ambiguous", "No duplicate question, no ambiguous item."),
]

all_checks = [
    point_maps_finite,
    points_in_boxes,
    boxes_inside_image,
    references_unique,
    qa_schema,
    *qa_dataset_checks,
]
