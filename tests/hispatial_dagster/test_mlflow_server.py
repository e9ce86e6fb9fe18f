"""The real MLflow tracking server (`mlflow/server.sh`, SQLite backend, proxied artifacts) with our real training
entry point pointed at it over HTTP: the run, its params, metrics and the checkpoint artifact must be visible through
the server's REST API, i.e. to any other client of that server. Slow: server start + a tiny training run."""

import os
import urllib.parse
from pathlib import Path

import pytest

from tests.hispatial_dagster.servers import (
    REPO,
    free_port,
    http_get,
    http_json,
    running,
    start_service,
    wait_until,
)
from tests.training.blocks import write_block_root
from training.config import TrainConfig
from training.train import train_checkpoint

pytestmark = pytest.mark.slow
EXPERIMENT = "hispatial-server-test"


def test_training_run_is_visible_through_the_tracking_server(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "server" / "artifacts"),
        "MLFLOW_PORT": str(port),
    }
    (tmp_path / "server").mkdir()
    server = start_service("mlflow", ["bash", str(REPO / "mlflow" / "server.sh")], env, tmp_path)
    with running(server):
        assert wait_until(lambda: http_get(f"{base}/health"), [server], 120, "mlflow server") == b"OK"

        root = tmp_path / "data"
        write_block_root(root, num_scenes=10)
        config = TrainConfig.preset("tiny").model_copy(
            update={"max_steps": 3, "batch_size": 4, "log_every_n_steps": 1, "checkpoint_name": "served"}
        )
        config.mlflow.tracking_uri = base
        config.mlflow.experiment = EXPERIMENT
        config.data.max_val_items = 4
        config.data.val_fraction = 0.3  # a few held-out scenes, so there is a validation metric to see
        report = train_checkpoint(root, config)
        assert report.tracking_uri == base and report.num_steps == 3

        api = f"{base}/api/2.0/mlflow"
        experiment = http_json(f"{api}/experiments/get-by-name?experiment_name={EXPERIMENT}")["experiment"]
        found = http_json(
            f"{api}/runs/search",
            {"experiment_ids": [experiment["experiment_id"]], "filter": "attributes.status = 'FINISHED'"},
        )["runs"]
        assert [r["info"]["run_id"] for r in found] == [report.run_id]

        run = http_json(f"{api}/runs/get?run_id={report.run_id}")["run"]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert params["max_steps"] == "3" and params["batch_size"] == "4"
        assert params["model.variant"] == config.model.variant
        assert int(params["num_parameters"]) > 0
        assert metrics["val/accuracy/all"] == pytest.approx(report.metrics["val/accuracy/all"])
        assert 0.0 <= metrics["val/accuracy/all"] <= 1.0
        assert "train/loss" in metrics
        history = http_json(f"{api}/metrics/get-history?run_id={report.run_id}&metric_key=train/loss")
        assert [m["step"] for m in history["metrics"]] == [0, 1, 2]  # logged every step
        assert tags["checkpoint_dir"] == str(report.checkpoint_dir.resolve())

        # Artifacts go through the server (proxied), not into the client's working directory.
        assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:")
        query = urllib.parse.urlencode({"run_id": report.run_id, "path": "checkpoint"})
        listed = {f["path"]: f for f in http_json(f"{api}/artifacts/list?{query}")["files"]}
        weights = report.checkpoint_dir / "model.safetensors"
        assert int(listed["checkpoint/model.safetensors"]["file_size"]) == weights.stat().st_size
        assert "checkpoint/config.json" in listed
        stored = list((tmp_path / "server" / "artifacts").rglob("model.safetensors"))
        assert len(stored) == 1 and stored[0].read_bytes() == weights.read_bytes()
