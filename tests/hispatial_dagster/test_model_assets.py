"""qa_dataset -> checkpoint -> benchmark_scores[custom] with the real training and evaluation code (tiny model,
a few steps) on a temporary instance and MLflow store (about 15 s on CPU)."""

import json
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from hispatial_dagster import assets as hs_assets
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import EvalSettings, MLflowTracking, TrainingSettings
from hispatial_dagster.shards import ShardInbox, ShardSpec
from tests.hispatial_dagster.test_assets import STAGES, metadata_of, resources


def test_dataset_checkpoint_benchmark(tmp_path: Path) -> None:
    root = tmp_path / "data"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    inbox = ShardInbox(str(root / "inbox"))
    shards = ["synthetic-000", "synthetic-001"]
    for i, shard in enumerate(shards):
        inbox.write(shard, ShardSpec(kind="synthetic", seed=20 + i, num_scenes=6))
    res = {
        **resources(root),
        "training": TrainingSettings(preset="tiny", options={"max_steps": 4, "data": {"max_val_items": 8}}),
        "evaluation_settings": EvalSettings(options={"limit": 8}),
        "mlflow_tracking": MLflowTracking(tracking_uri=uri),
    }
    every = [*STAGES, *hs_assets.dataset_assets]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, shards)
        for shard in shards:
            dg.materialize(every, selection=STAGES, partition_key=shard, instance=instance, resources=res)
        model = dg.materialize(
            every, selection=[hs_assets.qa_dataset, hs_assets.checkpoint], instance=instance, resources=res
        )
        scores = dg.materialize(
            every,
            selection=[hs_assets.benchmark_scores],
            partition_key="custom",
            instance=instance,
            resources=res,
        )

    dataset = metadata_of(model, hs_assets.qa_dataset)
    assert json.loads(json.dumps(dataset["shards"])) == shards

    trained = metadata_of(model, hs_assets.checkpoint)
    checkpoint_dir = Path(trained["checkpoint_dir"])
    assert (checkpoint_dir / "model.safetensors").exists()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(trained["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert trained["mlflow_run_url"].endswith(trained["mlflow_run_id"])
    assert trained["metric/val/accuracy/all"] == pytest.approx(run.data.metrics["val/accuracy/all"])
    # the checkpoint is also a registered pyfunc model of its run (inference.pyfunc), servable as is
    assert (
        trained["mlflow_registered_model"] == "models:/hispatial-xyz/1"
        and "pyfunc_error" not in run.data.tags
    )
    assert client.get_model_version("hispatial-xyz", "1").run_id == run.info.run_id

    scored = metadata_of(scores, hs_assets.benchmark_scores)
    assert scored["status"] == "ok" and 0 < scored["num_items"] <= 8
    assert Path(scored["checkpoint_dir"]) == checkpoint_dir
    assert Path(scored["predictions_path"]).exists()
    assert client.get_run(scored["mlflow_run_id"]).info.status == "FINISHED"
    # the comparison with the paper's numbers, in the output and on the asset page
    assert (Path(scored["output_dir"]) / "comparison.csv").exists()
    assert "| this checkpoint |" in scored["comparison_with_paper"]
    assert "| paper: HiSpatial-3B |" in scored["comparison_with_paper"]
