"""TrainReport and BenchmarkReport are one shape (assets.stage.RunReport), and the Dagster layer reads that shape."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.stage import RunReport
from evaluation.report import BenchmarkReport
from hispatial_dagster.assets import _run_result
from hispatial_dagster.resources import MLflowTracking
from training.train import TrainReport


def _train_report(tmp_path: Path) -> TrainReport:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"weights")
    return TrainReport(
        checkpoint_dir=tmp_path / "ckpt",
        run_id="abc",
        experiment_id="7",
        tracking_uri="sqlite:///x.db",
        metrics={"val/loss/all": 1.5},
        num_steps=3,
        seconds=2.0,
        preview=[{"task": "size", "answer": "1 m"}],
    )


def test_both_reports_are_run_reports(tmp_path):
    assert isinstance(_train_report(tmp_path), RunReport)
    assert isinstance(BenchmarkReport(benchmark="cv_bench", status="ok"), RunReport)


def test_run_result_from_a_train_report(tmp_path):
    tracking = MLflowTracking(tracking_uri="sqlite:///other.db", ui_url="http://127.0.0.1:5000")
    result = _run_result(_train_report(tmp_path), tracking)
    meta = result.metadata
    assert meta["mlflow_run_id"] == "abc" and "/#/experiments/7/runs/abc" in meta["mlflow_run_url"].url
    assert meta["mlflow_tracking_uri"] == "sqlite:///x.db"  # the run's own store, not the resource default
    assert meta["checkpoint_dir"] == dg.MetadataValue.path(str(tmp_path / "ckpt"))
    assert meta["metric/val/loss/all"] == 1.5 and meta["num_steps"] == 3
    assert "preview" in meta and result.data_version is not None and meta["content_digest"]


def test_run_result_from_a_benchmark_report(tmp_path):
    report = BenchmarkReport(
        benchmark="cv_bench",
        status="ok",
        metrics={"accuracy": 0.5},
        per_category={"count": {"accuracy": 0.25}},
        output_dir=tmp_path,
        predictions_path=tmp_path / "predictions.parquet",
        mlflow_run_id="r1",
    )
    tracking = MLflowTracking(tracking_uri="sqlite:///other.db", ui_url="http://127.0.0.1:5000")
    meta = _run_result(report, tracking).metadata
    assert meta["mlflow_run_id"] == "r1" and meta["mlflow_tracking_uri"] == "sqlite:///other.db"
    assert meta["output_dir"] == dg.MetadataValue.path(str(tmp_path))
    assert meta["predictions_path"] == dg.MetadataValue.path(str(tmp_path / "predictions.parquet"))
    assert meta["metric/accuracy"] == 0.5 and "per_category" in meta and "preview" not in meta
