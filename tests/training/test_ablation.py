"""The level-ablation experiment: three child runs under one parent, and the comparison logged to the parent."""

import pytest
from mlflow.tracking import MlflowClient

from training.ablation import ARMS, run_level_ablation
from training.config import MLflowConfig, tiny_train_config

from .blocks import write_block_root


def test_level_ablation_runs_three_arms_as_child_runs(tmp_path):
    root = tmp_path / "data"
    write_block_root(root, num_scenes=8)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_train_config(max_steps=3, batch_size=2, log_every_n_steps=1,
                               mlflow=MLflowConfig(tracking_uri=uri, experiment="test-ablation",
                                                   log_model_artifacts=False))
    config.data.max_val_items = 4
    config.data.val_fraction = 0.3  # some of the 8 scenes held out, so every arm has validation metrics
    report = run_level_ablation(root, config, mlflow_dir=tmp_path)

    assert set(report.arms) == set(ARMS)
    client = MlflowClient(uri)
    parent = client.get_run(report.parent_run_id)
    assert parent.info.status == "FINISHED"
    children = client.search_runs([report.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{report.parent_run_id}'")
    assert sorted(r.data.tags["ablation_arm"] for r in children) == sorted(ARMS)
    levels = {r.data.tags["ablation_arm"]: r.data.tags["levels"] for r in children}
    assert levels == {"all_levels": "L0+L1+L2+L3", "without_L0_L1": "L2+L3", "without_L1_L2": "L0+L3"}
    params = {r.data.tags["ablation_arm"]: r.data.params["data.excluded_levels"] for r in children}
    assert params["without_L1_L2"] == "['L1', 'L2']"

    artifacts = {a.path for a in client.list_artifacts(report.parent_run_id, "comparison")}
    assert {"comparison/comparison.csv", "comparison/comparison.md", "comparison/comparison.png"} <= artifacts
    assert list(report.table.index) == list(ARMS)
    assert {"L0", "L1", "L2", "L3", "general", "all"} <= set(report.table.columns)
    assert report.table.loc["all_levels", "all"] == pytest.approx(
        report.arms["all_levels"].metrics["val/accuracy/all"])
    assert (report.output_dir / "comparison.png").stat().st_size > 1000
