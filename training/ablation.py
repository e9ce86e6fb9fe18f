"""The paper's inter-level ablation (4.4, 6.3) as one experiment: three arms, one MLflow parent run.

Arms: all levels; without L0+L1; without L1+L2. Each arm is a normal `train_checkpoint` run (a child run of the
parent), identical except that draws from its excluded levels become general VQA samples, so the remaining
tasks are seen exactly as often as in the full mixture. The parent run gets a per-level accuracy table (CSV and
Markdown) and a bar plot.

CLI: `python -m training.ablation --root data --preset tiny --max-steps 200`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from assets.records import Level
from assets.storage import atomic_write_bytes, atomic_write_text
from training.config import MLflowConfig, TrainConfig
from training.mlflow_runs import ensure_experiment
from training.train import TrainReport, resolve_tracking, train_checkpoint

ARMS: dict[str, tuple[Level, ...]] = {
    "all_levels": (),
    "without_L0_L1": (Level.L0, Level.L1),
    "without_L1_L2": (Level.L1, Level.L2),
}


@dataclass
class AblationReport:
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    arms: dict[str, TrainReport]
    table: pd.DataFrame  # one row per arm, columns "L0".."L3" accuracies and "general"
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)


def comparison_table(reports: dict[str, TrainReport], metric: str = "val/accuracy/level") -> pd.DataFrame:
    rows = []
    for arm, report in reports.items():
        row: dict[str, object] = {"arm": arm}
        for level in [*[lv.value for lv in Level], "general"]:
            row[level] = report.metrics.get(f"{metric}/{level}")
        row["all"] = report.metrics.get(metric.replace("/level", "/all"))
        rows.append(row)
    return pd.DataFrame(rows).set_index("arm")


def _plot(table: pd.DataFrame, path: Path) -> None:
    levels = [lv.value for lv in Level]
    fig = Figure(figsize=(7, 3.5))  # no pyplot: no global state, no GUI backend
    ax = fig.add_subplot()
    table[levels].astype(float).T.plot.bar(ax=ax)
    ax.set_ylabel("held-out accuracy")
    ax.set_xlabel("level")
    ax.set_title("Level ablation (paper 6.3)")
    ax.legend(title="arm", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_level_ablation(
    root: Path, config: TrainConfig, *, mlflow_dir: Path | None = None, arms: Sequence[str] = tuple(ARMS)
) -> AblationReport:
    """Train one checkpoint per arm as child runs of a new parent run; log the comparison to the parent."""
    root = Path(root)
    tracking_uri, artifact_location = resolve_tracking(config, mlflow_dir)
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, config.mlflow.experiment, artifact_location)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = client.create_run(
        experiment_id, run_name=f"level-ablation-{stamp}",
        tags={"kind": "level_ablation", "variant": config.model.variant, "arms": ",".join(arms)},
    )
    parent_id = parent.info.run_id
    reports: dict[str, TrainReport] = {}
    try:
        for arm in arms:
            excluded = list(ARMS[arm])
            arm_config = config.model_copy(
                update={
                    "data": config.data.model_copy(update={"excluded_levels": excluded}),
                    "mlflow": MLflowConfig(
                        tracking_uri=tracking_uri, experiment=config.mlflow.experiment,
                        run_name=f"{arm}-{stamp}", log_model_artifacts=config.mlflow.log_model_artifacts,
                    ),
                    "checkpoint_name": f"ablation-{stamp}-{arm}",
                },
                deep=True,
            )
            report = train_checkpoint(root, arm_config, mlflow_dir=mlflow_dir)
            client.set_tag(report.run_id, "mlflow.parentRunId", parent_id)
            client.set_tag(report.run_id, "ablation_arm", arm)
            reports[arm] = report
        table = comparison_table(reports)
        output_dir = root / "ablations" / f"level-ablation-{stamp}"
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / "comparison.csv", table.to_csv())
        atomic_write_text(output_dir / "comparison.md", table.to_markdown(floatfmt=".3f"))
        _plot(table, output_dir / "comparison.png")
        atomic_write_bytes(output_dir / "arms.json", json.dumps(
            {arm: {"run_id": r.run_id, "checkpoint_dir": str(r.checkpoint_dir)} for arm, r in reports.items()},
            indent=2).encode())
        client.log_artifacts(parent_id, str(output_dir), "comparison")
        metrics: dict[str, float] = {}
        for arm, row in table.iterrows():
            for column, value in row.items():
                if value is not None and pd.notna(value):
                    metrics[f"{arm}/accuracy/{column}"] = float(value)
        for key, value in metrics.items():
            client.log_metric(parent_id, key, value)
        client.set_terminated(parent_id, "FINISHED")
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    return AblationReport(parent_id, experiment_id, tracking_uri, reports, table, output_dir, metrics)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    args = parser.parse_args(argv)
    config = TrainConfig.preset(args.preset)
    if args.max_steps is not None:
        config = config.model_copy(update={"max_steps": args.max_steps})
    report = run_level_ablation(args.root, config, arms=args.arms)
    print(report.table.to_markdown(floatfmt=".3f"))
    print(f"parent run {report.parent_run_id} at {report.tracking_uri}; outputs in {report.output_dir}")


if __name__ == "__main__":
    main()
