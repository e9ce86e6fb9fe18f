"""What `hispatial status` shows: materialized / stale (with its cause) / failed / in progress / missing for every
asset and partition, read from the Dagster instance.

Kept apart from the CLI because it is the one place that reads Dagster's notion of staleness (partly private API
in 1.13: the imports Dagster's own data-version test helper uses), and because it has a bulk path of its own for
the shard stages, tested against Dagster's resolver (tests/hispatial_dagster/test_cli.py) and measured by
perf/bench_partitions.py.
"""

from __future__ import annotations

from typing import Any

from hispatial_dagster.shards import SHARD_STAGES

STAGES = (*SHARD_STAGES, "qa_dataset", "checkpoint", "benchmark_scores")


def asset_status(instance: Any, defs: Any, batched_staleness: bool = True) -> list[dict[str, str]]:
    """One row per asset and partition: materialized / stale / failed / in progress / missing.

    Staleness of the shard stages is read in bulk (`_shard_staleness`); `batched_staleness=False` asks Dagster's
    resolver partition by partition instead (what the bulk read is tested against)."""
    import dagster as dg

    # Staleness is not public API in 1.13; these are the imports dagster's own data_versions test helper uses.
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.storage.partition_status_cache import AssetPartitionStatus
    from dagster._time import get_current_datetime

    asset_graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)
    rows: list[dict[str, str]] = []
    history: dict = {}  # materialization records per asset, shared between a stage and the one after it
    for name in STAGES:
        key = dg.AssetKey(name)
        if not asset_graph.has(key):
            continue
        partitions_def = asset_graph.get(key).partitions_def
        keys: list[str | None] = (
            list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))
            if partitions_def
            else [None]
        )
        statuses = (
            instance.get_status_by_partition(key, [k for k in keys if k], partitions_def) or {}
            if partitions_def
            else {}
        )
        batched = (
            _shard_staleness(instance, asset_graph, key, [k for k in keys if k], history)
            if partitions_def and batched_staleness
            else None
        )
        for partition in keys:
            if partitions_def:
                status = statuses.get(partition)
                state = {
                    AssetPartitionStatus.MATERIALIZED: "materialized",
                    AssetPartitionStatus.FAILED: "failed",
                    AssetPartitionStatus.IN_PROGRESS: "in progress",
                }.get(status, "missing")
            else:
                state = _unpartitioned_state(instance, key)
            if state == "materialized" and batched is not None:
                state = batched.get(partition or "", state)
            elif state == "materialized":
                stale = resolver.get_status(key, partition)
                if stale.value != "FRESH":
                    causes = resolver.get_stale_causes(key, partition)
                    state = f"stale ({causes[0].reason})" if causes else "stale"
            rows.append({"asset": name, "partition": partition or "-", "status": state})
    return rows


def _unpartitioned_state(instance: Any, key: Any) -> str:
    """materialized / failed / in progress / missing for an unpartitioned asset (qa_dataset, checkpoint).

    Dagster's partition status cache covers partitioned assets only; for the others the event log says which run
    last planned a materialization. When that plan is newer than the last materialization, its run decides: still
    going is "in progress", ended without materializing (failed, canceled, killed) is "failed"."""
    import dagster as dg

    latest = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    materialized = latest[0].storage_id if latest else None
    planned = instance.get_latest_planned_materialization_info(key)
    if planned is not None and (materialized is None or planned.storage_id > materialized):
        run = instance.get_run_by_id(planned.run_id)
        if run is not None and not run.is_finished:
            return "in progress"
        if run is None or run.status != dg.DagsterRunStatus.SUCCESS:
            return "failed"
    return "materialized" if materialized is not None else "missing"


def _shard_staleness(
    instance: Any, asset_graph: Any, key: Any, partitions: list[str], history: dict
) -> dict[str, str] | None:
    """Staleness of every materialized partition of a shard asset, from one paged read per asset.

    Dagster's stale-status resolver asks the event log several times per partition (measured: +20 ms per
    materialized shard, 20 s at 1,000 shards). A shard stage depends only on the same shard of the stage before it,
    and for such a dependency the resolver's rule is simple: a partition is stale when its upstream partition was
    materialized again after the one it read (the `input_event_pointer` tag) with a different data version, or
    when its code version changed. That needs only each asset's materialization history, read newest first in
    pages over all partitions and shared between an asset and the stage after it (`history`). None (the caller
    falls back to the resolver) for an asset whose dependencies are partitioned differently."""
    node = asset_graph.get(key)
    parents = list(node.parent_keys)
    if any(asset_graph.get(p).partitions_def != node.partitions_def for p in parents):
        return None
    for asset_key in (key, *parents):
        if asset_key not in history:
            history[asset_key] = _materialization_history(instance, asset_key, partitions)
    states: dict[str, str] = {}
    for partition, records in history[key].items():
        _, timestamp, tags = records[0]  # the latest materialization
        states[partition] = _stale_state(node, parents, partition, timestamp, tags, history) or "materialized"
    return states


def _stale_state(
    node: Any, parents: list, partition: str, timestamp: float, tags: dict, history: dict
) -> str | None:
    """Dagster's rule for one partition whose dependencies are the same partition of `parents`, or None when
    fresh: with provenance (a run recorded its code version and input pointers), a changed code version, a
    dependency it did not read, or a dependency materialized again since with another data version; without
    (an externally reported materialization), a dependency materialized after it."""
    from dagster._core.definitions.data_version import (
        CODE_VERSION_TAG,
        DATA_VERSION_TAG,
        get_input_event_pointer_tag,
    )

    if CODE_VERSION_TAG not in tags:
        for parent in parents:
            upstream = history[parent].get(partition, [])
            if not upstream or upstream[0][1] > timestamp:
                return f"stale ({parent.to_user_string()} changed)"
        return None
    if node.code_version is not None and tags[CODE_VERSION_TAG] != node.code_version:
        return "stale (code version changed)"
    for parent in parents:
        read = tags.get(get_input_event_pointer_tag(parent))
        if read is None:
            return f"stale (new dependency on {parent.to_user_string()})"
        upstream = history[parent].get(partition, [])
        if not upstream or upstream[0][0] <= int(read):
            continue
        before = next((t for sid, _, t in upstream if sid <= int(read)), {})
        if before.get(DATA_VERSION_TAG) != upstream[0][2].get(DATA_VERSION_TAG):
            return f"stale ({parent.to_user_string()} changed)"
    return None


def _materialization_history(instance: Any, key: Any, partitions: list[str], page: int = 1000) -> dict:
    """{partition: [(storage id, timestamp, tags), ...] newest first} of an asset's materializations, read a page
    at a time."""
    import dagster as dg

    found: dict[str, list[tuple[int, float, dict[str, str]]]] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions), limit=page, cursor=cursor
        )
        for record in result.records:
            if record.partition_key is not None:
                tags = dict(record.asset_materialization.tags or {})
                found.setdefault(record.partition_key, []).append((record.storage_id, record.timestamp, tags))
        if not result.has_more:
            return found
        cursor = result.cursor
