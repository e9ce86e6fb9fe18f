"""The inbox sensor: a new shard spec in the inbox becomes a `source_shards` partition and one `shard_job` run for
that partition only.

Each tick lists the inbox (a directory or any fsspec URL; see hispatial_dagster/shards.py), fingerprints every spec
(spec content plus the listing of the location it points at) and compares with the cursor, a JSON map
`{shard: fingerprint}` persisted by Dagster between ticks and daemon restarts:

- shard not in the cursor -> add the partition (if not already registered) and request a run;
- fingerprint changed     -> request a run again (run_key = shard:fingerprint, so it is new);
- unchanged               -> nothing; the run_key would also be deduplicated by Dagster if it were requested.

The cursor only knows the runs this sensor requested. Before requesting a run, the sensor therefore also asks the
instance: a shard whose latest `source_images` materialization recorded the same spec fingerprint
(`SPEC_FINGERPRINT_KEY` metadata) is already built, whoever built it (the CLI, DVC, the UI, another daemon), and
gets no run. That is what keeps the first tick of a freshly opened UI over a demo-built instance from re-running
every shard (and, through automation, retraining the model).

An unusable spec (invalid fields, a path that does not exist, a `.JSON` suffix; see shards.ShardInbox.scan) creates
no partition and no run; it is logged once, naming its file and field, and listed in the tick's skip reason. The
cursor keeps a digest of each reported reason, so an unchanged bad spec is not reported again (nor re-requested
when the directory it points at changes); fixing the file triggers the shard. A spec that
disappears is dropped from the cursor but its partition and data are kept (deleting data is a human decision).
qa_dataset, checkpoint and benchmark_scores follow by declarative automation (hispatial_dagster/automation.py).
"""

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg

from hispatial_dagster.jobs import shard_job
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import DataRoot, SourceInbox
from hispatial_dagster.shards import SPEC_FINGERPRINT_KEY, InboxEntry, ShardSpec, fingerprint

CURSOR_VERSION = 1
SOURCE_IMAGES = dg.AssetKey("source_images")
_PAGE = 1000


def encode_cursor(fingerprints: dict[str, str], reported: dict[str, str] | None = None) -> str:
    """The cursor: `{shard: fingerprint}` of the shards seen, and `{spec file: reason digest}` of the invalid
    specs already reported (so each is reported once, not on every tick)."""
    data: dict = {"version": CURSOR_VERSION, "shards": dict(sorted(fingerprints.items()))}
    if reported:
        data["reported"] = dict(sorted(reported.items()))
    return json.dumps(data)


def _cursor_map(cursor: str | None, field: str) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    found = data.get(field) if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def decode_cursor(cursor: str | None) -> dict[str, str]:
    """The `{shard: fingerprint}` map; an empty or unreadable cursor means "nothing seen yet"."""
    return _cursor_map(cursor, "shards")


def decode_reported(cursor: str | None) -> dict[str, str]:
    """`{spec file: reason digest}` of the invalid specs already reported."""
    return _cursor_map(cursor, "reported")


def run_key(shard: str, fingerprint: str) -> str:
    return f"{shard}:{fingerprint[:16]}"


def _reason_digest(reason: str) -> str:
    return hashlib.sha256(reason.encode()).hexdigest()[:16]


@dataclass
class TickPlan:
    """What one sensor tick decided, computed without Dagster so it can be tested and benchmarked directly."""

    new_partitions: list[str] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (shard, fingerprint)
    cursor: dict[str, str] = field(default_factory=dict)
    new_errors: dict[str, str] = field(default_factory=dict)  # spec file -> reason, not reported before
    reported: dict[str, str] = field(default_factory=dict)  # spec file -> reason digest, for the cursor


def plan_tick(
    entries: list[InboxEntry],
    seen: dict[str, str],
    registered: set[str],
    errors: dict[str, str] | None = None,
    reported: dict[str, str] | None = None,
    materialized: dict[str, str] | None = None,
) -> TickPlan:
    """Partitions to add and runs to request for the valid specs; invalid ones (`errors`, from ShardInbox.scan)
    create nothing and are reported when their reason is new. A reason depends on the spec, not on the listing
    of the location it points at, so a bad spec over a changing directory is reported once. `seen` is the
    cursor; `materialized` maps shards to the fingerprint of their latest `source_images` materialization (only
    those the cursor does not already settle need to be looked up)."""
    materialized = materialized or {}
    plan = TickPlan()
    for entry in entries:
        if entry.shard not in registered:
            plan.new_partitions.append(entry.shard)
        if entry.fingerprint not in (seen.get(entry.shard), materialized.get(entry.shard)):
            plan.runs.append((entry.shard, entry.fingerprint))
        plan.cursor[entry.shard] = entry.fingerprint
    for name, reason in (errors or {}).items():
        digest = _reason_digest(reason)
        if (reported or {}).get(name) != digest:
            plan.new_errors[name] = reason
        plan.reported[name] = digest
    return plan


def recorded_fingerprint(metadata: dict) -> str | None:
    """The spec fingerprint a `source_images` materialization was built from.

    Materializations written before the fingerprint was recorded still carry the spec itself; for a spec that
    points at no location the fingerprint is a function of the spec alone and is recomputed from it."""
    value = metadata.get(SPEC_FINGERPRINT_KEY)
    if value is not None:
        return str(value.value)
    spec = metadata.get("spec")
    if spec is None or not isinstance(spec.value, dict):
        return None
    try:
        recorded = ShardSpec.model_validate(spec.value)
    except ValueError:
        return None
    return fingerprint(recorded) if recorded.path is None else None


def materialized_fingerprints(instance: dg.DagsterInstance, shards: Iterable[str]) -> dict[str, str]:
    """`{shard: fingerprint}` from the latest `source_images` materialization of each given shard (newest first,
    paged, so a shard materialized many times costs one read of its history at most)."""
    wanted = set(shards)
    found: dict[str, str] = {}
    if not wanted:
        return found
    cursor = None
    settled: set[str] = set()
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=SOURCE_IMAGES, asset_partitions=sorted(wanted)),
            limit=_PAGE,
            cursor=cursor,
        )
        for record in result.records:
            materialization = record.asset_materialization
            partition = record.partition_key
            if materialization is None or partition is None or partition in settled:
                continue
            settled.add(partition)  # newest first: only the latest materialization of a shard counts
            value = recorded_fingerprint(dict(materialization.metadata))
            if value is not None:
                found[partition] = value
        if not result.has_more or settled >= wanted:
            return found
        cursor = result.cursor


def _interval_s() -> int:
    return int(os.environ.get("HISPATIAL_SENSOR_INTERVAL_S", "30"))


@dg.sensor(
    name="shard_inbox_sensor",
    target=shard_job,
    minimum_interval_seconds=_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each new or changed shard spec in the inbox and runs shard_job for that shard only.",
)
def shard_inbox_sensor(
    context: dg.SensorEvaluationContext, data_root: DataRoot, source_inbox: SourceInbox
) -> dg.SensorResult | dg.SkipReason:
    inbox = source_inbox.inbox(data_root.root)
    entries, errors = inbox.scan()
    registered = set(context.instance.get_dynamic_partitions(SOURCE_SHARDS))
    seen = decode_cursor(context.cursor)
    unsettled = [e.shard for e in entries if e.shard in registered and seen.get(e.shard) != e.fingerprint]
    plan = plan_tick(
        entries,
        seen,
        registered,
        errors,
        decode_reported(context.cursor),
        materialized=materialized_fingerprints(context.instance, unsettled),
    )
    for reason in plan.new_errors.values():
        context.log.warning(f"invalid shard spec, no partition created: {reason}")
    cursor = encode_cursor(plan.cursor, plan.reported)
    if not plan.runs and not plan.new_partitions:
        context.update_cursor(cursor)
        invalid = f"; {len(errors)} invalid: {', '.join(sorted(errors))}" if errors else ""
        return dg.SkipReason(f"{len(entries)} shard(s) in {inbox.url}, none new or changed{invalid}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key(shard, fingerprint),
                partition_key=shard,
                tags={"hispatial/shard": shard, "hispatial/fingerprint": fingerprint[:16]},
            )
            for shard, fingerprint in plan.runs
        ],
        dynamic_partitions_requests=(
            [dg.AddDynamicPartitionsRequest(SOURCE_SHARDS, plan.new_partitions)]
            if plan.new_partitions
            else []
        ),
        cursor=cursor,
    )
