"""The inbox sensor: new shard -> partition + one run for it; unchanged -> nothing; changed -> a new run; the
cursor survives a restart (a fresh context given the stored cursor)."""

import json
from pathlib import Path

import dagster as dg
import pytest

from hispatial_dagster.jobs import shard_job
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import DataRoot, SourceInbox
from hispatial_dagster.sensors import decode_cursor, encode_cursor, run_key, shard_inbox_sensor
from hispatial_dagster.shards import ShardInbox, ShardSpec, fingerprint


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _tick(instance: dg.DagsterInstance, root: Path, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"data_root": DataRoot(path=str(root)), "source_inbox": SourceInbox(url="")},
    )
    result = shard_inbox_sensor(context)
    # The daemon applies partition requests before launching runs; do the same here.
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result, result.cursor
    return result, context.cursor


def test_new_unchanged_changed(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    inbox = ShardInbox(str(tmp_path / "inbox"))
    inbox.write("synthetic-000", ShardSpec(kind="synthetic", seed=0, num_scenes=5))

    result, cursor = _tick(instance, tmp_path, None)
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests
    assert request.partitions_def_name == SOURCE_SHARDS and list(request.partition_keys) == ["synthetic-000"]
    [run] = result.run_requests
    assert run.partition_key == "synthetic-000"
    first_fp = fingerprint(ShardSpec(kind="synthetic", seed=0, num_scenes=5))
    assert run.run_key == run_key("synthetic-000", first_fp)
    assert instance.get_dynamic_partitions(SOURCE_SHARDS) == ["synthetic-000"]

    # Unchanged: no run, no partition request.
    result, cursor = _tick(instance, tmp_path, cursor)
    assert isinstance(result, dg.SkipReason)

    # A second shard arrives: only that shard runs.
    inbox.write("synthetic-001", ShardSpec(kind="synthetic", seed=1, num_scenes=5))
    result, cursor = _tick(instance, tmp_path, cursor)
    assert [r.partition_key for r in result.run_requests] == ["synthetic-001"]
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["synthetic-001"]]

    # The first shard's spec changes: it re-runs under a new run key, no new partition.
    inbox.write("synthetic-000", ShardSpec(kind="synthetic", seed=0, num_scenes=7))
    result, cursor = _tick(instance, tmp_path, cursor)
    [run] = result.run_requests
    assert run.partition_key == "synthetic-000" and run.run_key != run_key("synthetic-000", first_fp)
    assert not result.dynamic_partitions_requests
    assert sorted(instance.get_dynamic_partitions(SOURCE_SHARDS)) == ["synthetic-000", "synthetic-001"]


def test_cursor_survives_restart(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    ShardInbox(str(tmp_path / "inbox")).write("synthetic-000", ShardSpec(kind="synthetic"))
    _, cursor = _tick(instance, tmp_path, None)
    stored = json.loads(cursor)  # what Dagster persists between daemon restarts
    restarted, _ = _tick(instance, tmp_path, json.dumps(stored))
    assert isinstance(restarted, dg.SkipReason)
    assert decode_cursor(encode_cursor({"a": "1", "b": "2"})) == {"a": "1", "b": "2"}
    assert decode_cursor("not json") == {} and decode_cursor(None) == {}


def test_invalid_spec_is_skipped_until_fixed(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    (inbox_dir / "broken-000.json").write_text('{"kind": "synthetic", "num_scenes": -3}')
    (inbox_dir / "Bad Name.json").write_text('{"kind": "synthetic"}')
    result, cursor = _tick(instance, tmp_path, None)
    assert isinstance(result, dg.SkipReason)
    assert instance.get_dynamic_partitions(SOURCE_SHARDS) == []
    (inbox_dir / "broken-000.json").write_text('{"kind": "synthetic", "num_scenes": 3}')
    result, _ = _tick(instance, tmp_path, cursor)
    assert [r.partition_key for r in result.run_requests] == ["broken-000"]


def test_path_fingerprint_follows_files(tmp_path: Path) -> None:
    images = tmp_path / "raw"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"x" * 10)
    spec = ShardSpec(kind="images", path=str(images))
    before = fingerprint(spec)
    assert fingerprint(spec) == before
    (images / "b.jpg").write_bytes(b"y" * 3)
    assert fingerprint(spec) != before


def test_sensor_targets_shard_job() -> None:
    assert shard_inbox_sensor.job_name == shard_job.name
    assert shard_inbox_sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_inbox_at_an_fsspec_url(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """The inbox can be any fsspec URL (here the in-memory filesystem standing in for s3:// or gs://)."""
    url = f"memory://hispatial-test-{tmp_path.name}/inbox"
    ShardInbox(url).write("remote-000", ShardSpec(kind="synthetic", seed=9))
    context = dg.build_sensor_context(
        instance=instance,
        resources={"data_root": DataRoot(path=str(tmp_path)), "source_inbox": SourceInbox(url=url)},
    )
    result = shard_inbox_sensor(context)
    assert [r.partition_key for r in result.run_requests] == ["remote-000"]
    assert ShardInbox(url).read("remote-000").seed == 9
