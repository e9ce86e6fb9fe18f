"""The qa_dataset asset on a real shard: both exports on disk, the quality report in its metadata and in an MLflow
run, and the three release checks passing; a release with a leak fails its check."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from hispatial_dagster import assets as hs_assets
from hispatial_dagster import checks as hs_checks
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import MLflowTracking
from hispatial_dagster.shards import ShardInbox, ShardSpec
from tests.hispatial_dagster.test_assets import STAGES, metadata_of, resources

SHARD = "synthetic-000"


def test_qa_dataset_exports_reports_and_checks(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ShardInbox(str(root / "inbox")).write(SHARD, ShardSpec(kind="synthetic", seed=0, num_scenes=4))
    res = {**resources(root), "mlflow_tracking": MLflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}")}
    every = [*STAGES, hs_assets.qa_dataset, *hs_checks.qa_dataset_checks]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        dg.materialize(every, selection=STAGES, partition_key=SHARD, instance=instance, resources=res)
        release = dg.materialize(every, selection=dg.AssetSelection.assets(hs_assets.qa_dataset),
                                 instance=instance, resources=res)
        out = root / "qa_dataset"
        assert (out / "llava.json").exists() and list((out / "hf" / "data").glob("train-*.parquet"))
        meta = metadata_of(release, hs_assets.qa_dataset)
        assert meta["quality_leaks_leaks_total"] == 0 and meta["mlflow_run_id"]
        assert meta["export_llava_records"] == meta["num_rows"]
        results = {e.check_name: e.passed for e in release.get_asset_check_evaluations()}
        assert results == {"qa_dataset_no_leaks": True, "qa_dataset_answers_balanced": True,
                           "qa_dataset_no_duplicates_or_ambiguous": True}

        # a shard whose question names an object by what it asks about: the release check fails
        path = root / "qa_shards" / SHARD / "qa.parquet"
        table = pq.read_table(path)
        rows = table.to_pylist()
        row = next(r for r in rows if r["task"] == "relative_direction" and r["subtask"] == "right")
        row["references"] = ["the rightmost cabinet", "the leftmost cabinet"]
        pq.write_table(table.from_pylist(rows, schema=table.schema), path)
        leaky = dg.materialize(every, selection=dg.AssetSelection.assets(hs_assets.qa_dataset),
                               instance=instance, resources=res)
        failed = {e.check_name: e for e in leaky.get_asset_check_evaluations()}
        assert not failed["qa_dataset_no_leaks"].passed
        assert failed["qa_dataset_no_leaks"].metadata["leaks_direction_both"].value == 1
        assert json.loads((out / "quality.json").read_text())["leaks"]["leaks_total"] == 1
