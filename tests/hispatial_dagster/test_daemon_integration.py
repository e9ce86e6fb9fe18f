"""End to end through the real services: `dagster-webserver` and `dagster-daemon` on 127.0.0.1 (each in its own
process group, ended at the end), a shard spec dropped into the inbox, and the GraphQL API showing that exactly
that shard's partitions materialized, in one run launched by the inbox sensor, and that qa_dataset followed by
declarative automation. Slow: a few minutes on 2 busy cores."""

import json
import os
import time
from pathlib import Path

import pytest

from hispatial_dagster.instance import prepare_instance
from hispatial_dagster.shards import SHARD_STAGES, ShardInbox, ShardSpec
from tests.hispatial_dagster.servers import (
    REPO,
    dagster_daemon,
    dagster_webserver,
    free_port,
    graphql,
    running,
    wait_for_dagster,
)

pytestmark = pytest.mark.slow

RUNS_QUERY = """
query { runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }
"""
PARTITIONS_QUERY = """
query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
  assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } }
"""
MATERIALIZED_QUERY = """
query { assetOrError(assetKey: {path: ["qa_dataset"]}) { ... on Asset {
  assetMaterializations(limit: 1) { runId metadataEntries { label } } } } }
"""


def test_inbox_shard_materializes_through_daemon(tmp_path: Path) -> None:
    root = tmp_path / "data"
    home = prepare_instance(
        root
    )  # as `hispatial ui` does: processes started together would race on the schemas
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HISPATIAL_DATA_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "HISPATIAL_SENSOR_INTERVAL_S": "5",
        "HISPATIAL_AUTOMATION_INTERVAL_S": "5",
        "HISPATIAL_AUTOMATION": "off",
        "HISPATIAL_AUTOMATION_QA_DATASET": "eager",
        "HISPATIAL_MAX_CONCURRENT": "1",
        "PYTHONPATH": str(REPO),
    }
    webserver, daemon = dagster_webserver(port, env, tmp_path), dagster_daemon(env, tmp_path)
    with running(webserver, daemon) as procs:
        wait_for_dagster(port, procs)

        # Two shards' worth of inbox: one valid spec, one broken one that must be ignored.
        ShardInbox(str(root / "inbox")).write(
            "synthetic-007", ShardSpec(kind="synthetic", seed=7, num_scenes=3)
        )
        (root / "inbox" / "broken-000.json").write_text("{not json")

        keys = [{"path": [name]} for name in [*SHARD_STAGES, "qa_dataset"]]
        deadline = time.time() + 540
        while True:
            nodes = graphql(port, PARTITIONS_QUERY, {"keys": keys[:-1]})["assetNodes"]
            status = {n["assetKey"]["path"][0]: n["assetPartitionStatuses"] for n in nodes}
            done = all(
                status.get(s, {}).get("materializedPartitions") == ["synthetic-007"] for s in SHARD_STAGES
            )
            qa_dataset = graphql(port, MATERIALIZED_QUERY)["assetOrError"]
            if done and qa_dataset.get("assetMaterializations"):
                break
            assert not any(s.get("failedPartitions") for s in status.values()), status
            assert time.time() < deadline, f"{status}\n{daemon.log_tail()}"
            assert all(p.alive() for p in procs), daemon.log_tail()
            time.sleep(5)

        runs = graphql(port, RUNS_QUERY)["runsOrError"]["results"]
        shard_runs = [r for r in runs if r["jobName"] == "shard_job"]
        assert len(shard_runs) == 1 and shard_runs[0]["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in shard_runs[0]["tags"]}
        assert tags["dagster/partition"] == "synthetic-007" and tags["hispatial/shard"] == "synthetic-007"
        assert tags["dagster/sensor_name"] == "shard_inbox_sensor"
        # qa_dataset was launched by declarative automation, not by us or the inbox sensor.
        automation_runs = [r for r in runs if r["jobName"] != "shard_job"]
        assert automation_runs and all(
            {t["key"]: t["value"] for t in r["tags"]}.get("dagster/sensor_name")
            == "default_automation_condition_sensor"
            for r in automation_runs
        )
        manifest = json.loads((root / "qa_dataset" / "_manifest.json").read_text())
        assert [entry["shard"] if isinstance(entry, dict) else entry for entry in manifest["shards"]] == [
            "synthetic-007"
        ]
        assert not (root / "source_images" / "broken-000").exists()
