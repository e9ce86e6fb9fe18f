"""Benchmark reports: per-item predictions (parquet), metrics (JSON, MLflow), and a comparison across runs with
the paper's published numbers (Tables 1-4) as reference rows."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from assets.storage import atomic_write_bytes, atomic_write_json, write_stage_manifest
from evaluation.items import ItemResult

# Paper Tables 1-4 (HiSpatial, arXiv version in /work/shared/paper): benchmark -> metric -> {model: value}.
REFERENCE: dict[str, dict[str, dict[str, float]]] = {
    "spatialrgpt": {
        "category/width_data": {"GPT-4o": 51.10, "GPT-5": 59.09, "PaliGemma2-3B": 20.3, "SpatialRGPT-8B": 48.90,
                                "HiSpatial-3B-RGB": 69.92, "HiSpatial-3B": 69.17, "HiSpatial-3B (GT depth)": 70.68},
        "category/height_data": {"GPT-4o": 68.40, "GPT-5": 67.66, "PaliGemma2-3B": 27.07, "SpatialRGPT-8B": 61.70,
                                 "HiSpatial-3B-RGB": 84.96, "HiSpatial-3B": 84.96, "HiSpatial-3B (GT depth)": 84.21},
        "category/direct_distance": {"GPT-4o": 29.70, "GPT-5": 29.72, "PaliGemma2-3B": 20.27, "SpatialRGPT-8B": 45.90,
                                     "HiSpatial-3B-RGB": 66.89, "HiSpatial-3B": 79.73, "HiSpatial-3B (GT depth)": 83.11},
        "category/horizontal_distance": {"GPT-4o": 25.40, "GPT-5": 25.21, "PaliGemma2-3B": 15.57,
                                         "SpatialRGPT-8B": 68.00, "HiSpatial-3B-RGB": 71.34, "HiSpatial-3B": 86.89,
                                         "HiSpatial-3B (GT depth)": 90.16},
        "category/vertical_distance": {"GPT-4o": 33.00, "GPT-5": 13.72, "PaliGemma2-3B": 22.64, "SpatialRGPT-8B": 56.60,
                                       "HiSpatial-3B-RGB": 68.87, "HiSpatial-3B": 75.47, "HiSpatial-3B (GT depth)": 79.25},
        "quantitative_avg": {"GPT-4o": 41.50, "GPT-5": 40.47, "PaliGemma2-3B": 21.18, "SpatialRGPT-8B": 56.22,
                             "MM-Spatial-3B": 68.70, "HiSpatial-3B-RGB": 72.43, "HiSpatial-3B": 79.28,
                             "HiSpatial-3B (GT depth)": 81.46},
    },
    "qspatial": {
        "split/QSpatial_plus": {"GPT-4o": 61.06, "GPT-5": 63.37, "PaliGemma2-3B": 36.63, "HiSpatial-3B-RGB": 76.24,
                                "HiSpatial-3B": 88.12},
        "split/QSpatial_scannet": {"GPT-4o": 69.41, "GPT-5": 73.53, "PaliGemma2-3B": 30.06, "HiSpatial-3B-RGB": 75.88,
                                   "HiSpatial-3B": 84.17, "HiSpatial-3B (GT depth)": 84.12},
        "accuracy": {"GPT-4o": 66.30, "GPT-5": 68.45, "PaliGemma2-3B": 32.84, "HiSpatial-3B-RGB": 76.01,
                     "HiSpatial-3B": 85.16},
    },
    "embspatial": {"accuracy": {"GPT-4o": 63.38, "Gemini-2.5-Pro": 76.67, "PaliGemma2-3B": 28.32,
                                "RoboRefer-8B-SFT": 72.53, "HiSpatial-3B-RGB": 79.78, "HiSpatial-3B": 80.71}},
    "robospatial": {"accuracy": {"GPT-4o": 77.20, "Gemini-2.5-Pro": 77.24, "PaliGemma2-3B": 71.54,
                                 "RoboRefer-8B-SFT": 84.55, "HiSpatial-3B-RGB": 83.74, "HiSpatial-3B": 86.18}},
    "cv_bench": {
        "cv_bench_3d": {"GPT-4o": 84.90, "Gemini-2.5-Pro": 90.80, "PaliGemma2-3B": 42.17, "RoboRefer-8B-SFT": 95.92,
                        "HiSpatial-3B-RGB": 95.58, "HiSpatial-3B": 97.58},
        "cv_bench_2d_relation": {"GPT-4o": 84.62, "Gemini-2.5-Pro": 93.54, "PaliGemma2-3B": 72.00,
                                 "RoboRefer-8B-SFT": 96.90, "HiSpatial-3B-RGB": 95.08, "HiSpatial-3B": 95.69},
    },
    "3dsrbench": {"accuracy": {"GPT-4o": 44.20, "Gemini-2.5-Pro": 48.47, "PaliGemma2-3B": 8.15,
                               "RoboRefer-8B-SFT": 51.24, "HiSpatial-3B-RGB": 64.34, "HiSpatial-3B": 63.81}},
    "custom": {
        "L1": {"GPT-5": 47.19, "Qwen3VL-8B": 12.70, "RoboRefer-8B-SFT": 58.63, "HiSpatial-3B": 92.18},
        "L2": {"GPT-5": 59.27, "Qwen3VL-8B": 22.52, "HiSpatial-3B": 67.21},
        "L3": {"GPT-5": 33.33, "Qwen3VL-8B": 25.64, "RoboRefer-8B-SFT": 26.92, "HiSpatial-3B": 47.44},
    },
    "mmbench": {"accuracy": {"PaliGemma2-3B": 49.86, "HiSpatial-3B": 69.67}},
    "pope": {"f1": {"PaliGemma2-3B": 87.00, "HiSpatial-3B": 87.97}},
    "seed": {"accuracy": {"PaliGemma2-3B": 48.32, "HiSpatial-3B": 63.51}},
    "realworldqa": {"accuracy": {"PaliGemma2-3B": 47.76, "HiSpatial-3B": 58.95}},
}  # fmt: skip


@dataclass
class BenchmarkReport:
    """What `score_benchmark` returns; the Dagster layer shows `metadata()`."""

    benchmark: str
    status: str  # "ok", "not configured", "failed"
    headline: str = "accuracy"
    metrics: dict[str, float] = field(default_factory=dict)
    per_category: dict[str, dict[str, float]] = field(default_factory=dict)
    num_items: int = 0
    num_unparseable: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    judge_mode: str = "none"  # "llm", "rule" or "none" (no judged items)
    judge_model: str = ""
    predictor: str = ""
    message: str = ""
    output_dir: Path | None = None
    predictions_path: Path | None = None
    mlflow_run_id: str | None = None
    build_rejections: int = 0

    @property
    def score(self) -> float:
        return self.metrics.get(self.headline, float("nan"))

    # assets.stage.RunReport (the run's experiment and tracking URI are the resource's: the report does not own them)
    @property
    def run_id(self) -> str | None:
        return self.mlflow_run_id

    @property
    def experiment_id(self) -> str | None:
        return None

    @property
    def tracking_uri(self) -> str | None:
        return None

    @property
    def preview(self) -> list[dict]:
        return []

    def paths(self) -> dict[str, Path]:
        return {
            name: path
            for name, path in (("output_dir", self.output_dir), ("predictions_path", self.predictions_path))
            if path is not None
        }

    def as_dict(self) -> dict[str, object]:
        d = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        d["score"] = self.score
        return d

    def metadata(self) -> dict[str, object]:
        """Flat JSON-safe values for asset metadata."""
        meta: dict[str, object] = {
            "status": self.status,
            "score": None if math.isnan(self.score) else round(self.score, 2),
            "headline_metric": self.headline,
            "num_items": self.num_items,
            "num_unparseable": self.num_unparseable,
            "judge_mode": self.judge_mode,
            "predictor": self.predictor,
        }
        lenient = self.metrics.get(f"lenient/{self.headline}")
        if lenient is not None:  # our more forgiving reading, beside (never instead of) the official score
            meta["lenient_score"] = None if math.isnan(lenient) else round(lenient, 2)
        if self.message:
            meta["message"] = self.message
        if self.predictions_path:
            meta["predictions_path"] = str(self.predictions_path)
        if self.mlflow_run_id:
            meta["mlflow_run_id"] = self.mlflow_run_id
        meta["per_category"] = {
            k: round(v.get("accuracy", float("nan")), 2) for k, v in self.per_category.items()
        }
        return meta


def results_frame(results: list[ItemResult]) -> pd.DataFrame:
    return pd.DataFrame([r.as_row() for r in results])


def write_report(
    report: BenchmarkReport,
    results: list[ItemResult],
    output_dir: Path,
    config: dict,
    final_dir: Path | None = None,
) -> None:
    """predictions.parquet (one row per item, with reason and judge record), report.json, config.json, and for a
    scored benchmark comparison.csv / comparison.md: this run beside the paper's numbers (Tables 1-4).

    `final_dir` is where `output_dir` will be renamed to when it is an atomic_dir temp directory: report.json
    records that path, not the temporary one."""
    output_dir.mkdir(parents=True, exist_ok=True)
    frame = results_frame(results)
    atomic_write_bytes(output_dir / "predictions.parquet", frame.to_parquet(index=False))
    report.output_dir = final_dir or output_dir
    report.predictions_path = report.output_dir / "predictions.parquet"
    atomic_write_json(output_dir / "report.json", report.as_dict())
    atomic_write_json(output_dir / "config.json", config)
    if report.status == "ok":  # the comparison with the paper's numbers, next to the scores it compares
        table = comparison_table({COMPARISON_ROW: [report]})
        atomic_write_bytes(output_dir / "comparison.csv", table.to_csv(index_label="model").encode())
        atomic_write_bytes(output_dir / "comparison.md", (comparison_markdown(table) + "\n").encode())
    # Every scored item stays in the denominator (a missing or unparseable answer is a wrong item with its reason
    # in predictions.parquet), so this stage rejects nothing: its manifest says so.
    write_stage_manifest(
        output_dir,
        stage="benchmark_scores",
        shard=report.benchmark,
        num_in=report.num_items,
        num_out=report.num_items,
        metadata={"status": report.status, "score": report.score},
    )


COMPARISON_ROW = "this checkpoint"


def comparison_markdown(table: pd.DataFrame) -> str:
    """The comparison table as GitHub markdown (rows = models, columns = benchmark/metric, "-" where a model has
    no number), for the asset page and comparison.md."""
    if table.empty:
        return "_(no metric of this benchmark has a paper value)_"
    header = ["model", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.iterrows():
        cells = ["-" if pd.isna(v) else f"{float(v):.2f}" for v in row]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines)


def _metric_key(name: str) -> str:
    """MLflow metric names allow alphanumerics, _ - . / and space."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def log_to_mlflow(
    report: BenchmarkReport,
    tracking_uri: str,
    experiment: str,
    run_name: str | None,
    params: dict[str, object],
    dataset: dict[str, Any] | None = None,
) -> str:
    """Log metrics (benchmark-prefixed) and the report directory as artifacts; returns the run id. `dataset`
    (keyword arguments of `training.mlflow_runs.log_dataset_input`) is logged as the run's evaluation input."""
    import mlflow

    from training.config import artifact_location_for
    from training.mlflow_runs import ensure_experiment, log_dataset_input

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp_id = ensure_experiment(client, experiment, artifact_location_for(tracking_uri))
    run = client.create_run(
        exp_id,
        run_name=run_name or f"eval-{report.benchmark}",
        tags={"benchmark": report.benchmark, "judge_mode": report.judge_mode, "predictor": report.predictor},
    )
    run_id = run.info.run_id
    try:
        if dataset is not None:
            log_dataset_input(client, run_id, context="evaluation", **dataset)
        for key, value in params.items():
            client.log_param(run_id, _metric_key(key)[:250], str(value)[:500])
        for key, value in report.metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                client.log_metric(run_id, _metric_key(f"{report.benchmark}/{key}"), float(value))
        if report.output_dir is not None:
            client.log_artifacts(
                run_id, str(report.output_dir), artifact_path=f"benchmark_scores/{report.benchmark}"
            )
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id


def comparison_table(
    reports: dict[str, list[BenchmarkReport]], include_reference: bool = True
) -> pd.DataFrame:
    """Rows = runs/checkpoints (name -> its reports) plus the paper's reference rows; columns =
    "benchmark/metric" for every metric that has a reference value or a headline."""
    rows: dict[str, dict[str, float]] = {}
    for run_name, run_reports in reports.items():
        row = rows.setdefault(run_name, {})
        for rep in run_reports:
            if rep.status != "ok":
                continue
            keys = set(REFERENCE.get(rep.benchmark, {})) | {rep.headline}
            for key in keys:
                if key in rep.metrics:
                    row[f"{rep.benchmark}/{key}"] = rep.metrics[key]
    if include_reference:
        columns = {c for row in rows.values() for c in row}
        for bench, metrics in REFERENCE.items():
            for metric, by_model in metrics.items():
                col = f"{bench}/{metric}"
                if reports and col not in columns:
                    continue
                for model, value in by_model.items():
                    rows.setdefault(f"paper: {model}", {})[col] = value
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.reindex(sorted(frame.columns), axis=1)


def comparison_from_mlflow(
    tracking_uri: str, experiment: str, include_reference: bool = True
) -> pd.DataFrame:
    """The comparison table built from every finished run of the evaluation experiment (one row per run name,
    latest run wins), so checkpoints scored at different times line up against each other and the paper."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame()
    rows: dict[str, dict[str, float]] = {}
    runs = client.search_runs(
        [exp.experiment_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time ASC"]
    )
    for run in runs:
        name = run.info.run_name or run.info.run_id
        row = rows.setdefault(name, {})
        for key, value in run.data.metrics.items():
            bench, _, metric = key.partition("/")
            if metric in REFERENCE.get(bench, {}) or metric == "accuracy":
                row[key] = value
    table = pd.DataFrame.from_dict(rows, orient="index")
    if include_reference and not table.empty:
        for bench, metrics in REFERENCE.items():
            for metric, by_model in metrics.items():
                if f"{bench}/{metric}" in table.columns:
                    for model, value in by_model.items():
                        table.loc[f"paper: {model}", f"{bench}/{metric}"] = value
    return table.reindex(sorted(table.columns), axis=1)


def plot_comparison(table: pd.DataFrame, path: Path) -> Path:
    """Grouped bar chart (one group per benchmark metric, one bar per run/reference row), written atomically."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(table.columns) + 2), 4.5))
    table.T.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("accuracy / success rate (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def load_reports(directory: Path) -> list[BenchmarkReport]:
    """Reports previously written under <directory>/<benchmark>/report.json (for comparison tables)."""
    out = []
    for path in sorted(Path(directory).glob("*/report.json")):
        data = json.loads(path.read_text())
        data.pop("score", None)
        for key in ("output_dir", "predictions_path"):
            data[key] = Path(data[key]) if data.get(key) else None
        out.append(BenchmarkReport(**data))
    return out
