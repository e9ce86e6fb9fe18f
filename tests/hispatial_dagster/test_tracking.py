"""Registry helper and ablation comparison against a real (temporary SQLite) MLflow store."""

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hispatial_dagster import tracking


def _log_run(
    client: MlflowClient, experiment_id: str, tmp: Path, variant: str, levels: str, acc: dict
) -> str:
    run = client.create_run(experiment_id, tags={"variant": variant, "levels": levels})
    for key, value in acc.items():
        client.log_metric(run.info.run_id, key, value)
    ckpt = tmp / f"ckpt-{run.info.run_id}"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    client.log_artifacts(run.info.run_id, str(ckpt), "checkpoint")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment("hispatial-training", artifact_location=str(tmp / "artifacts"))
    full = "L0+L1+L2+L3"
    runs = {
        "xyz_low": _log_run(
            client,
            experiment_id,
            tmp,
            "xyz",
            full,
            {"val/accuracy/all": 0.40, "val/accuracy/level/L0": 0.5, "val/accuracy/level/L3": 0.2},
        ),
        "xyz_high": _log_run(
            client,
            experiment_id,
            tmp,
            "xyz",
            full,
            {"val/accuracy/all": 0.60, "val/accuracy/level/L0": 0.7, "val/accuracy/level/L3": 0.4},
        ),
        "rgb": _log_run(
            client,
            experiment_id,
            tmp,
            "rgb",
            full,
            {"val/accuracy/all": 0.30, "val/accuracy/level/L0": 0.3, "val/accuracy/level/L3": 0.1},
        ),
        # An ablation arm with a higher score must not become the released checkpoint.
        "xyz_ablation": _log_run(
            client,
            experiment_id,
            tmp,
            "xyz",
            "L2+L3",
            {"val/accuracy/all": 0.90, "val/accuracy/level/L0": 0.1, "val/accuracy/level/L3": 0.5},
        ),
    }
    yield uri, runs
    mlflow.set_tracking_uri(None)


def test_register_best_per_variant(store) -> None:
    uri, runs = store
    registrations = {r.variant: r for r in tracking.register_best_checkpoints(uri)}
    assert set(registrations) == {"xyz", "rgb"}
    assert registrations["xyz"].run_id == runs["xyz_high"] and registrations["xyz"].metric == pytest.approx(
        0.6
    )
    client = MlflowClient(tracking_uri=uri)
    best = client.get_model_version_by_alias("hispatial-xyz", "best")
    assert best.run_id == runs["xyz_high"] and best.source.endswith("/checkpoint")
    # Idempotent: no second version for the same run.
    tracking.register_best_checkpoints(uri)
    assert len(client.search_model_versions("name = 'hispatial-xyz'")) == 1


def test_level_ablation_table(store, tmp_path: Path) -> None:
    uri, _ = store
    table = tracking.level_ablation_table(tracking.runs_frame(uri))
    assert list(table.index) == ["L0+L1+L2+L3", "L2+L3"]
    full = table.loc["L0+L1+L2+L3"]
    assert full["L0"] == pytest.approx((0.5 + 0.7 + 0.3) / 3) and full["runs"] == 3
    assert table.loc["L2+L3", "L3"] == pytest.approx(0.5)
    png = tracking.plot_ablation(table, tmp_path / "ablation.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_missing_experiment_is_empty(store) -> None:
    uri, _ = store
    assert tracking.runs_frame(uri, "nope").empty
    assert tracking.register_best_checkpoints(uri, "nope") == []


def test_compare_shows_intervals_from_per_item_results(tmp_path: Path) -> None:
    """Two seeds of one condition, each with its per-item artifact: the comparison pools their items and
    puts a bootstrap interval around each level (CLI and plot show it)."""
    from training.mlflow_runs import log_val_items

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(
        "hispatial-training", artifact_location=str(tmp_path / "artifacts")
    )
    for seed, right in ((0, 30), (1, 50)):  # L2: 30 and 50 of 100 right; L3: all wrong
        run_id = client.create_run(
            experiment_id, tags={"variant": "xyz", "levels": "L0+L1+L2+L3"}
        ).info.run_id
        client.log_metric(run_id, "val/accuracy/level/L2", right / 100)
        client.log_metric(run_id, "val/accuracy/level/L3", 0.0)
        records = [
            {
                "item_id": f"i{i}",
                "scene_id": f"s{i // 4}",
                "level": "L2",
                "task": "relative_distance",
                "correct": float(i < right),
            }
            for i in range(100)
        ]
        records += [
            {
                "item_id": f"j{i}",
                "scene_id": f"t{i}",
                "level": "L3",
                "task": "spatial_counting",
                "correct": 0.0,
            }
            for i in range(20)
        ]
        log_val_items(client, run_id, records, seed=seed)
        client.set_terminated(run_id, "FINISHED")
    runs = tracking.runs_frame(uri)
    items = tracking.load_run_items(uri, list(runs["run_id"]))
    assert len(items) == 2
    table = tracking.level_ablation_table(runs, items=items, resamples=500)
    row = table.loc["L0+L1+L2+L3"]
    assert row["L2"] == pytest.approx(0.4) and row["runs_with_items"] == 2
    assert row["L2_ci_low"] < 0.4 < row["L2_ci_high"] and row["L2_ci_high"] - row["L2_ci_low"] > 0.1
    assert row["L3_ci_low"] == row["L3_ci_high"] == 0.0
    shown = tracking.display_rows(table)[0]
    assert shown["L2"].startswith("0.400 [") and shown["runs"] == 2
    png = tracking.plot_ablation(table, tmp_path / "ablation.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    by_variant = tracking.level_ablation_table(runs, group_tag="variant", items=items, resamples=200)
    assert list(by_variant.index) == ["xyz"]
    mlflow.set_tracking_uri(None)
