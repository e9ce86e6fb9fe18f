"""MLflow across runs: register the best checkpoint per model variant, and compare level-ablation runs.

Training (training/train.py) logs one MLflow run per checkpoint with tags `variant` (rgb / xyz / rel_depth),
`levels` (e.g. `L0+L1+L2+L3`, or `L2+L3` for an ablation arm) and `checkpoint_dir`, metrics such as
`val/accuracy/all` and `val/accuracy/level/<L>`, and the checkpoint files under the artifact path `checkpoint`.
This module reads those runs back with `mlflow.search_runs`, so it works on any tracking server, not only on runs
made by this process. CLI: `hispatial mlflow register|compare`.
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
    runs: pd.DataFrame, metric_prefix: str = "val/accuracy/level", group_tag: str = "levels"
) -> pd.DataFrame:
    """Mean per-level accuracy over runs grouped by which levels they trained on (one row per `levels` tag),
    with the number of runs; the paper's inter-level ablation table (6.3) from whatever runs exist."""
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
    frame = runs[[tag, *columns]].rename(columns={tag: "trained_levels", **columns})
    table = frame.groupby("trained_levels").mean(numeric_only=True)
    table["runs"] = frame.groupby("trained_levels").size()
    return table.sort_index(key=lambda idx: -idx.str.count(r"\+"))


def plot_ablation(table: pd.DataFrame, path: Path) -> Path:
    """Grouped bars: accuracy per level (x) for each trained-level set (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [lv for lv in LEVELS if lv in table]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    table[levels].astype(float).T.plot.bar(ax=ax)
    ax.set_xlabel("evaluated level")
    ax.set_ylabel("held-out accuracy")
    ax.legend(title="trained on", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
