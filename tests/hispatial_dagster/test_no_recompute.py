"""Opening the UI over a built instance must not recompute the world (issue: first sensor tick, data versions,
what may run by itself).

One real instance is built the way the demo builds it (every shard stage and qa_dataset materialized in process,
from specs in the inbox), then the two things a freshly started daemon evaluates are run against it: the inbox
sensor's first tick (no cursor) and the declarative-automation evaluation. Neither may request anything. Then the
cases that must request something: an edited spec requests exactly that shard; qa_dataset re-materialized with
identical content leaves checkpoint alone, new content triggers it.
"""

from pathlib import Path

import dagster as dg
import pytest

from hispatial_dagster import assets as hs_assets
from hispatial_dagster.automation import automation_setting, downstream_condition
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import (
    DataRoot,
    EvalSettings,
    MLflowTracking,
    SourceInbox,
    TrainingSettings,
)
from hispatial_dagster.sensors import materialized_fingerprints, plan_tick, shard_inbox_sensor
from hispatial_dagster.shards import SPEC_FINGERPRINT_KEY, InboxEntry, ShardInbox, ShardSpec, fingerprint

from .test_assets import STAGES
from .test_assets import resources as shard_resources

SHARDS = {
    "synthetic-000": ShardSpec(kind="synthetic", seed=0, num_scenes=3),
    "synthetic-001": ShardSpec(kind="synthetic", seed=1, num_scenes=3),
}


def resources(root: Path) -> dict:
    """The shard stages' test resources, plus what the whole-dataset assets need (their conditions are evaluated)."""
    return {
        **shard_resources(root),
        "training": TrainingSettings(),
        "evaluation_settings": EvalSettings(),
        "mlflow_tracking": MLflowTracking(tracking_uri=f"sqlite:///{root}/mlflow.db"),
    }


def build_shard(root: Path, instance: dg.DagsterInstance, shard: str) -> None:
    result = dg.materialize(
        hs_assets.all_assets,
        selection=STAGES,
        partition_key=shard,
        instance=instance,
        resources=resources(root),
    )
    assert result.success


def build_dataset(root: Path, instance: dg.DagsterInstance) -> str:
    result = dg.materialize(
        hs_assets.all_assets, selection=[hs_assets.qa_dataset], instance=instance, resources=resources(root)
    )
    assert result.success
    event = instance.get_latest_materialization_event(hs_assets.qa_dataset.key)
    return event.asset_materialization.tags["dagster/data_version"]


def code_location(root: Path) -> dg.Definitions:
    return dg.Definitions(assets=hs_assets.all_assets, resources=resources(root))


def first_tick(root: Path, instance: dg.DagsterInstance, cursor: str | None = None):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"data_root": DataRoot(path=str(root)), "source_inbox": SourceInbox(url="")},
    )
    return shard_inbox_sensor(context)


def requested(result) -> list[str]:
    return [r.partition_key for r in result.run_requests] if isinstance(result, dg.SensorResult) else []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """An instance built like the demo builds it: specs in the inbox, every stage materialized by the CLI route."""
    root = tmp_path_factory.mktemp("data")
    inbox = ShardInbox(str(root / "inbox"))
    for shard, spec in SHARDS.items():
        inbox.write(shard, spec)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, list(SHARDS))
        for shard in SHARDS:
            build_shard(root, instance, shard)
        version = build_dataset(root, instance)
        yield root, instance, version


def test_source_images_records_the_spec_fingerprint(built) -> None:
    root, instance, _ = built
    assert materialized_fingerprints(instance, SHARDS) == {s: fingerprint(spec) for s, spec in SHARDS.items()}


def test_first_sensor_tick_over_a_built_instance_requests_nothing(built) -> None:
    root, instance, _ = built
    result = first_tick(root, instance, cursor=None)  # a daemon that has never ticked: no cursor
    assert requested(result) == []
    assert not (isinstance(result, dg.SensorResult) and result.dynamic_partitions_requests)


def test_first_automation_evaluation_requests_nothing(built) -> None:
    """The daemon's first automation tick over a built instance with no checkpoint: nothing runs by itself."""
    root, instance, _ = built
    result = dg.evaluate_automation_conditions(defs=code_location(root), instance=instance)
    assert result.total_requested == 0, [r.key for r in result.results if r.num_requested]


def test_an_edited_spec_requests_exactly_that_shard(built, tmp_path: Path) -> None:
    root, instance, _ = built
    inbox = ShardInbox(str(root / "inbox"))
    inbox.write("synthetic-001", ShardSpec(kind="synthetic", seed=1, num_scenes=4))
    try:
        assert requested(first_tick(root, instance, cursor=None)) == ["synthetic-001"]
    finally:
        inbox.write("synthetic-001", SHARDS["synthetic-001"])
    assert requested(first_tick(root, instance, cursor=None)) == []


def test_expensive_assets_follow_new_data_versions_only(built, monkeypatch: pytest.MonkeyPatch) -> None:
    """qa_dataset re-run with identical content: checkpoint stays put. New QA content: checkpoint is requested."""
    root, instance, version = built
    checkpoint = hs_assets.checkpoint.key
    first = dg.evaluate_automation_conditions(defs=code_location(root), instance=instance)
    assert first.total_requested == 0

    assert build_dataset(root, instance) == version  # re-touched, same content, same data version
    touched = dg.evaluate_automation_conditions(
        defs=code_location(root), instance=instance, cursor=first.cursor
    )
    assert touched.get_num_requested(checkpoint) == 0

    # New content: one shard gets more scenes (the spec edit a user makes), its stages and the release re-run.
    ShardInbox(str(root / "inbox")).write("synthetic-001", ShardSpec(kind="synthetic", seed=1, num_scenes=4))
    build_shard(root, instance, "synthetic-001")
    assert build_dataset(root, instance) != version
    changed = dg.evaluate_automation_conditions(
        defs=code_location(root), instance=instance, cursor=touched.cursor
    )
    assert changed.get_num_requested(checkpoint) == 1
    # Handled once: the next tick without further changes requests nothing again.
    again = dg.evaluate_automation_conditions(
        defs=code_location(root), instance=instance, cursor=changed.cursor
    )
    assert again.get_num_requested(checkpoint) == 0


def test_plan_tick_trusts_the_materialized_fingerprint() -> None:
    spec = ShardSpec(kind="synthetic", seed=5)
    entry = InboxEntry(shard="s", spec=spec, fingerprint=fingerprint(spec))
    assert plan_tick([entry], seen={}, registered={"s"}, materialized={"s": entry.fingerprint}).runs == []
    assert plan_tick([entry], seen={}, registered={"s"}, materialized={"s": "other"}).runs == [
        ("s", entry.fingerprint)
    ]
    assert plan_tick([entry], seen={"s": entry.fingerprint}, registered={"s"}).runs == []


def test_automation_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HISPATIAL_AUTOMATION", raising=False)
    for name in ("qa_dataset", "checkpoint", "benchmark_scores"):
        monkeypatch.delenv(f"HISPATIAL_AUTOMATION_{name.upper()}", raising=False)
    assert automation_setting("qa_dataset") == "eager"
    assert downstream_condition("checkpoint").get_label() == "on_new_data"
    assert downstream_condition("benchmark_scores").get_label() == "on_new_data"
    assert SPEC_FINGERPRINT_KEY == "spec_fingerprint"
