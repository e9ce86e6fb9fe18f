"""MLflow across runs: register the best checkpoint per model variant, and compare level-ablation runs.

Training (training/train.py) logs one MLflow run per checkpoint with tags `variant` (rgb / xyz / rel_depth),
`levels` (e.g. `L0+L1+L2+L3`, or `L2+L3` for an ablation arm) and `checkpoint_dir`, metrics such as
`val/accuracy/all` and `val/accuracy/level/<L>`, and the checkpoint files under the artifact path `checkpoint`.
This module reads those runs back with `mlflow.search_runs`, so it works on any tracking server, not only on runs
made by this process; `compare` also reads each run's per-item results (`eval/val_items.parquet`) and puts a 95%
bootstrap interval over scenes and runs around every level (evaluation/intervals.py). CLI: `hispatial mlflow
register|compare`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

LEVELS = ("L0", "L1", "L2", "L3")
DEFAULT_EXPERIMENT = "hispatial-training"
DEFAULT_METRIC = "val/accuracy/all"


@dataclass(frozen=True)
class Registration:
    variant: str
    model_name: str
    version: str
    run_id: str
    metric: float


def runs_frame(tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT) -> pd.DataFrame:
    """All finished runs of the experiment as a DataFrame (`metrics.*`, `params.*`, `tags.*` columns)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        return pd.DataFrame()
    return mlflow.search_runs(
        experiment_names=[experiment], filter_string="attributes.status = 'FINISHED'", output_format="pandas"
    )


def best_runs_per_variant(runs: pd.DataFrame, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One row per `tags.variant`: the run with the highest `metric` (runs without the metric are ignored).

    Only full-mixture runs compete (ablation arms train on fewer levels and are not release candidates): a run
    whose `levels` tag names fewer than the four levels is skipped."""
    column = f"metrics.{metric}"
    if runs.empty or column not in runs or "tags.variant" not in runs:
        return pd.DataFrame()
    candidates = runs.dropna(subset=[column, "tags.variant"])
    if "tags.levels" in candidates:
        full = candidates["tags.levels"].fillna("+".join(LEVELS)) == "+".join(LEVELS)
        candidates = candidates[full]
    if candidates.empty:
        return candidates
    best = candidates.loc[candidates.groupby("tags.variant")[column].idxmax()]
    return best.sort_values("tags.variant").reset_index(drop=True)


def register_best_checkpoints(
    tracking_uri: str,
    experiment: str = DEFAULT_EXPERIMENT,
    metric: str = DEFAULT_METRIC,
    model_prefix: str = "hispatial",
    alias: str = "best",
) -> list[Registration]:
    """Register each variant's best run's `checkpoint` artifact as a model version named `<prefix>-<variant>` and
    point the alias `best` at it. Re-running with no better run registers nothing new (the alias already points
    at that run's version)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    registrations = []
    for _, row in best_runs_per_variant(runs_frame(tracking_uri, experiment), metric).iterrows():
        variant, run_id = str(row["tags.variant"]), str(row["run_id"])
        name = f"{model_prefix}-{variant}"
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name, description=f"HiSpatial {variant} checkpoints; alias '{alias}' = highest {metric}"
            )
        existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
        if existing:
            version = existing[0].version
        else:
            source = f"{row['artifact_uri'].rstrip('/')}/checkpoint"
            version = client.create_model_version(name, source=source, run_id=run_id).version
        client.set_registered_model_alias(name, alias, version)
        registrations.append(
            Registration(variant, name, str(version), run_id, float(row[f"metrics.{metric}"]))
        )
    return registrations


def level_ablation_table(
    runs: pd.DataFrame,
    metric_prefix: str = "val/accuracy/level",
    group_tag: str = "levels",
    items: dict[str, pd.DataFrame] | None = None,
    resamples: int = 2000,
) -> pd.DataFrame:
    """Mean per-level accuracy over runs grouped by a tag (default `levels`: which levels they trained on; or
    `variant`), with the number of runs; the paper's inter-level ablation table (6.3) from whatever runs exist.

    With `items` (run id -> that run's per-item results, `load_run_items`), each level also gets `<L>_ci_low` /
    `<L>_ci_high`: a 95% percentile bootstrap over held-out scenes and runs (the runs of a group are its seeds;
    evaluation/intervals.py), and `runs_with_items` says how many of the group's runs it rests on."""
    tag = f"tags.{group_tag}"
    if runs.empty or tag not in runs:
        return pd.DataFrame()
    columns = {
        f"metrics.{metric_prefix}/{lv}": lv
        for lv in (*LEVELS, "general")
        if f"metrics.{metric_prefix}/{lv}" in runs
    }
    if not columns:
        return pd.DataFrame()
    index_name = "trained_levels" if group_tag == "levels" else group_tag
    frame = runs[[tag, "run_id", *columns]].rename(columns={tag: index_name, **columns})
    table = frame.drop(columns="run_id").groupby(index_name).mean(numeric_only=True)
    table["runs"] = frame.groupby(index_name).size()
    if items:
        _add_intervals(table, frame, items, resamples)
    if group_tag == "levels":
        return table.sort_index(key=lambda idx: -idx.str.count(r"\+"))
    return table.sort_index()


def _add_intervals(
    table: pd.DataFrame, frame: pd.DataFrame, items: dict[str, pd.DataFrame], resamples: int
) -> None:
    from evaluation.intervals import bootstrap_mean

    for group, runs_of_group in frame.groupby(table.index.name):
        parts = [
            items[r].assign(seed=r) for r in runs_of_group["run_id"] if r in items and not items[r].empty
        ]
        table.loc[group, "runs_with_items"] = len(parts)
        if not parts:
            continue
        pooled = pd.concat(parts, ignore_index=True)
        for level in [c for c in (*LEVELS, "general") if c in table]:
            interval = bootstrap_mean(pooled[pooled["level"] == level], "correct", resamples=resamples)
            table.loc[group, f"{level}_ci_low"] = interval.low
            table.loc[group, f"{level}_ci_high"] = interval.high


def load_run_items(tracking_uri: str, run_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Per-item validation results (`eval/val_items.parquet`) of the runs that logged them."""
    from mlflow.tracking import MlflowClient

    from training.mlflow_runs import load_val_items

    client = MlflowClient(tracking_uri=tracking_uri)
    found = {run_id: load_val_items(client, run_id) for run_id in run_ids}
    return {run_id: frame for run_id, frame in found.items() if frame is not None}


def display_rows(table: pd.DataFrame) -> list[dict[str, object]]:
    """The table as printable rows: `mean [ci_low, ci_high]` per level where intervals exist."""
    rows = []
    for group, row in table.iterrows():
        shown: dict[str, object] = {table.index.name or "group": group}
        for column, value in row.items():
            column = str(column)
            if column.endswith(("_ci_low", "_ci_high")):
                continue
            if f"{column}_ci_low" in row and pd.notna(row[f"{column}_ci_low"]):
                shown[column] = f"{value:.3f} [{row[f'{column}_ci_low']:.3f}, {row[f'{column}_ci_high']:.3f}]"
            elif column in ("runs", "runs_with_items"):
                shown[column] = int(value) if pd.notna(value) else 0
            else:
                shown[column] = f"{value:.3f}" if isinstance(value, float) and pd.notna(value) else "n/a"
        rows.append(shown)
    return rows


def plot_ablation(table: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: accuracy per level (x) for each group (bars), with 95% interval whiskers where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    levels = [lv for lv in LEVELS if lv in table]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(table))
    x = np.arange(len(levels))
    for i, (group, row) in enumerate(table.iterrows()):
        mean = row[levels].astype(float).to_numpy()
        err = None
        if all(f"{lv}_ci_low" in row for lv in levels):
            low = row[[f"{lv}_ci_low" for lv in levels]].astype(float).to_numpy()
            high = row[[f"{lv}_ci_high" for lv in levels]].astype(float).to_numpy()
            err = np.nan_to_num([mean - low, high - mean])
        ax.bar(
            x + (i - (len(table) - 1) / 2) * width,
            np.nan_to_num(mean),
            width,
            yerr=err,
            capsize=2,
            label=str(group),
        )
    ax.set_xticks(x, levels)
    ax.set_xlabel("evaluated level")
    ax.set_ylabel("held-out accuracy")
    ax.legend(title=table.index.name or "group", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
