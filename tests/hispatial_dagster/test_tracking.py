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
