"""The qa_dataset asset on a real shard: both exports on disk, the quality report in its metadata and in an MLflow
run, and the three release checks passing; a release with a leak fails its check; the optional curation stages
run when switched on."""

import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from hispatial_dagster import assets as hs_assets
from hispatial_dagster import checks as hs_checks
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import LLMEndpoint, MLflowTracking
from hispatial_dagster.shards import ShardInbox, ShardSpec
from tests.assets.qa.test_curation import rewriter
from tests.hispatial_dagster.test_assets import STAGES, metadata_of, resources
from tests.openai_server import serve

SHARD = "synthetic-000"
EVERY = [*STAGES, hs_assets.qa_dataset, *hs_checks.qa_dataset_checks]
RELEASE = dg.AssetSelection.assets(hs_assets.qa_dataset)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release")
    root = tmp / "data"
    ShardInbox(str(root / "inbox")).write(SHARD, ShardSpec(kind="synthetic", seed=0, num_scenes=4))
    res = {**resources(root), "mlflow_tracking": MLflowTracking(tracking_uri=f"sqlite:///{tmp / 'ml.db'}")}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        dg.materialize(EVERY, selection=STAGES, partition_key=SHARD, instance=instance, resources=res)
        yield root, instance, res


def test_qa_dataset_exports_reports_and_checks(materialized) -> None:
    root, instance, res = materialized
    release = dg.materialize(EVERY, selection=RELEASE, instance=instance, resources=res)
    out = root / "qa_dataset"
    assert (out / "llava.json").exists() and list((out / "hf" / "data").glob("train-*.parquet"))
    meta = metadata_of(release, hs_assets.qa_dataset)
    assert meta["quality_leaks_leaks_total"] == 0 and meta["mlflow_run_id"]
    assert meta["export_llava_records"] == meta["num_rows"]
    assert "curation_conversations" not in meta  # the model stages are off by default
    results = {e.check_name: e.passed for e in release.get_asset_check_evaluations()}
    assert results == {
        "qa_dataset_no_leaks": True,
        "qa_dataset_answers_balanced": True,
        "qa_dataset_no_duplicates_or_ambiguous": True,
    }


def test_optional_curation_stages(materialized, monkeypatch) -> None:
    root, instance, res = materialized
    monkeypatch.setenv("HISPATIAL_QA_REPHRASE_IMAGES", "2")
    monkeypatch.setenv("HISPATIAL_QA_DIVERSE_SUBSET", "2")
    monkeypatch.setenv("HISPATIAL_QA_CLIP_MODEL", "tiny")
    with pytest.raises(dg.Failure, match="no LLM endpoint"):
        dg.materialize(EVERY, selection=RELEASE, instance=instance, resources=res)
    with serve(rewriter()) as server:
        endpoint = {"llm": LLMEndpoint(base_url=server.base_url, model="m")}
        release = dg.materialize(EVERY, selection=RELEASE, instance=instance, resources={**res, **endpoint})
    meta = metadata_of(release, hs_assets.qa_dataset)
    assert meta["curation_conversations"] == 2 and meta["curation_subset_size"] == 2
    assert len(json.loads((root / "qa_dataset" / "curation" / "conversations.json").read_text())) == 2


def test_a_leaky_release_fails_its_check(materialized) -> None:
    root, instance, res = materialized
    # a shard whose question names an object by what it asks about
    path = root / "qa_shards" / SHARD / "qa.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    row = next(r for r in rows if r["task"] == "relative_direction" and r["subtask"] == "right")
    row["references"] = ["the rightmost cabinet", "the leftmost cabinet"]
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)
    leaky = dg.materialize(EVERY, selection=RELEASE, instance=instance, resources=res)
    failed = {e.check_name: e for e in leaky.get_asset_check_evaluations()}
    assert not failed["qa_dataset_no_leaks"].passed
    assert failed["qa_dataset_no_leaks"].metadata["leaks_direction_both"].value == 1
    assert json.loads((root / "qa_dataset" / "quality.json").read_text())["leaks"]["leaks_total"] == 1
