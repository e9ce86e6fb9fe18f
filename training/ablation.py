"""The paper's ablations (4.4, 6.3) as one experiment: levels and 3D inputs, several seeds, one MLflow parent run.

Conditions: the level arms (all levels; without L0+L1; without L1+L2) with the base variant, and all levels with
each further model variant (rgb, rel_depth, xyz). Each condition trains once per seed as a normal
`train_checkpoint` run (a child run of the parent); arm runs are identical except that draws from their excluded
levels become general VQA samples, so the remaining tasks are seen exactly as often as in the full mixture. Every
run is scored on the same held-out items (`DataConfig.val_seed`), so conditions compare item for item.

The parent run gets, from the children's per-item results (`eval/val_items.parquet`):
- `comparison/comparison.md|csv`: accuracy per level, and length success (SpatialRGPT 25% rule, the paper's
  quantitative measure) on L1/L2, each as mean [95% interval], pooled over seeds and items;
- `comparison/differences.md|csv`: the paper's directions as paired differences with their intervals (Table 5:
  removing L0+L1 lowers L2, removing L1+L2 lowers L3; Table 6: xyz > rel_depth > rgb on quantitative L1/L2);
- `comparison/intervals.csv` (per level and per task), `items.parquet` (every item of every run), a plot with error
  bars, and metrics `<condition>/<measure>/<level>` with `/ci_low` and `/ci_high`.
Intervals are percentile bootstraps over held-out scenes and seeds (evaluation/intervals.py says why).

CLI: `python -m training.ablation --root data --preset tiny --max-steps 600 --seeds 0 1 2
--variants rgb rel_depth xyz` (400 held-out items per level and 600 length questions unless told otherwise).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.tracking import MlflowClient

from assets.records import Level
from assets.storage import atomic_write_bytes, atomic_write_json, atomic_write_text
from evaluation.intervals import Interval, bootstrap_difference, bootstrap_mean, interval_table
from training.config import VARIANTS, MLflowConfig, TrainConfig
from training.mlflow_runs import ensure_experiment, load_val_items
from training.train import TrainReport, resolve_tracking, train_checkpoint

ARMS: dict[str, tuple[Level, ...]] = {
    "all_levels": (),
    "without_L0_L1": (Level.L0, Level.L1),
    "without_L1_L2": (Level.L1, Level.L2),
}
LEVELS = [lv.value for lv in Level]
QUANTITATIVE_LEVELS = ("L1", "L2")  # paper Table 6: quantitative L1/L2 tasks


@dataclass(frozen=True)
class Condition:
    arm: str
    variant: str

    @property
    def name(self) -> str:
        return f"{self.arm}/{self.variant}"


@dataclass(frozen=True)
class Direction:
    """A claim of the paper as a paired comparison: `better` beats `worse` on `measure` over `levels`."""

    label: str
    better: Condition
    worse: Condition
    measure: str  # "correct" (exact-match accuracy) or "quantitative" (length success, 25% rule)
    levels: tuple[str, ...]


def ablation_conditions(arms: Sequence[str], variants: Sequence[str], base_variant: str) -> list[Condition]:
    """The level arms with the base variant, then all levels with each variant; each condition once."""
    out: list[Condition] = []
    for condition in [
        *(Condition(arm, base_variant) for arm in arms),
        *(Condition("all_levels", v) for v in variants),
    ]:
        if condition not in out:
            out.append(condition)
    return out


def paper_directions(base_variant: str) -> list[Direction]:
    full = Condition("all_levels", base_variant)
    return [
        Direction(
            "Table 5: removing L0+L1 lowers L2",
            full,
            Condition("without_L0_L1", base_variant),
            "correct",
            ("L2",),
        ),
        Direction(
            "Table 5: removing L1+L2 lowers L3",
            full,
            Condition("without_L1_L2", base_variant),
            "correct",
            ("L3",),
        ),
        Direction(
            "Table 6: xyz > rel_depth, quantitative L1/L2",
            Condition("all_levels", "xyz"),
            Condition("all_levels", "rel_depth"),
            "quantitative",
            QUANTITATIVE_LEVELS,
        ),
        Direction(
            "Table 6: rel_depth > rgb, quantitative L1/L2",
            Condition("all_levels", "rel_depth"),
            Condition("all_levels", "rgb"),
            "quantitative",
            QUANTITATIVE_LEVELS,
        ),
    ]


@dataclass
class AblationReport:
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    runs: dict[str, list[TrainReport]]  # condition name -> one report per seed
    items: (
        pd.DataFrame
    )  # every held-out item of every run: condition, arm, variant, seed, scene_id, correct, ...
    table: pd.DataFrame  # one row per condition: <measure>_<level> mean, _ci_low, _ci_high
    differences: pd.DataFrame  # one row per paper direction: mean, ci_low, ci_high, verdict
    output_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ tables


def _levels(items: pd.DataFrame, levels: Sequence[str] | None) -> pd.DataFrame:
    return items if levels is None else items[items["level"].isin(list(levels))]


# (measure, key, levels pooled): the comparison table's columns; measure "accuracy" scores `correct` (exact
# match), "quantitative" scores `quantitative` (length success, 25% rule)
COLUMNS: list[tuple[str, str, tuple[str, ...] | None]] = [
    *(("accuracy", lv, (lv,)) for lv in [*LEVELS, "general"]),
    ("accuracy", "all", None),
    *(("quantitative", lv, (lv,)) for lv in QUANTITATIVE_LEVELS),
    ("quantitative", "L1_L2", QUANTITATIVE_LEVELS),
]
SCORE = {"accuracy": "correct", "quantitative": "quantitative"}


def comparison_table(items: pd.DataFrame, conditions: Sequence[str], resamples: int = 2000) -> pd.DataFrame:
    """One row per condition: accuracy per level and overall, length success on L1, L2 and L1+L2; each as
    `<measure>_<key>` (pooled mean), `..._ci_low`, `..._ci_high` (95% bootstrap over scenes and seeds), `..._n`."""
    rows = []
    for condition in conditions:
        part = items[items["condition"] == condition]
        row: dict[str, object] = {"condition": condition, "seeds": part["seed"].nunique()}
        for measure, key, levels in COLUMNS:
            interval = bootstrap_mean(_levels(part, levels), SCORE[measure], resamples=resamples)
            row |= {
                f"{measure}_{key}": interval.mean,
                f"{measure}_{key}_ci_low": interval.low,
                f"{measure}_{key}_ci_high": interval.high,
                f"{measure}_{key}_n": interval.n_items,
            }
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def direction_table(
    items: pd.DataFrame, directions: Sequence[Direction], resamples: int = 2000
) -> pd.DataFrame:
    """Each paper direction as a paired difference (better - worse) on the shared items, with its interval and a
    verdict: `agrees` (interval above 0), `disagrees` (below 0) or `not resolved` (contains 0)."""
    rows = []
    present = set(items["condition"])
    for d in directions:
        if d.better.name not in present or d.worse.name not in present:
            continue
        a = _levels(items[items["condition"] == d.better.name], d.levels)
        b = _levels(items[items["condition"] == d.worse.name], d.levels)
        diff = bootstrap_difference(a, b, d.measure, resamples=resamples)
        better, worse = (bootstrap_mean(x, d.measure, resamples=resamples) for x in (a, b))
        rows.append(
            {
                "direction": d.label,
                "better": d.better.name,
                "worse": d.worse.name,
                "measure": d.measure,
                "levels": "+".join(d.levels),
                "better_mean": better.mean,
                "worse_mean": worse.mean,
                "difference": diff.mean,
                "ci_low": diff.low,
                "ci_high": diff.high,
                "items": diff.n_items,
                "scenes": diff.n_scenes,
                "seeds": diff.n_seeds,
                "verdict": verdict(diff),
            }
        )
    return pd.DataFrame(rows)


def verdict(diff: Interval) -> str:
    if np.isnan(diff.mean):
        return "no shared items"
    if diff.low > 0:
        return "agrees"
    if diff.high < 0:
        return "disagrees"
    return "not resolved"


def _fmt(mean: float, low: float, high: float) -> str:
    return "n/a" if pd.isna(mean) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def markdown_tables(table: pd.DataFrame, differences: pd.DataFrame) -> str:
    """The parent run's comparison as Markdown: every number with its 95% interval."""

    def section(measure: str, keys: Sequence[str], title: str) -> str:
        shown = pd.DataFrame(
            {
                key: [
                    _fmt(r[f"{measure}_{key}"], r[f"{measure}_{key}_ci_low"], r[f"{measure}_{key}_ci_high"])
                    for _, r in table.iterrows()
                ]
                for key in keys
            },
            index=table.index,
        )
        shown.insert(0, "seeds", table["seeds"])
        n = {key: int(table[f"{measure}_{key}_n"].max()) for key in keys}
        items = ", ".join(f"{k}: {v}" for k, v in n.items())
        return f"### {title}\n\nitems per condition (all seeds): {items}\n\n{shown.to_markdown()}\n"

    parts = [
        section("accuracy", [*LEVELS, "all"], "Exact-match accuracy per level, mean [95% CI]"),
        section(
            "quantitative",
            [*QUANTITATIVE_LEVELS, "L1_L2"],
            "Length success (within 25%) on free-form L1/L2 questions, mean [95% CI]",
        ),
    ]
    if not differences.empty:
        shown = differences.assign(
            difference=[_fmt(r.difference, r.ci_low, r.ci_high) for r in differences.itertuples()]
        )[
            [
                "direction",
                "better",
                "worse",
                "levels",
                "better_mean",
                "worse_mean",
                "difference",
                "items",
                "scenes",
                "seeds",
                "verdict",
            ]
        ]
        parts.append(
            "### The paper's directions: paired difference (better - worse), mean [95% CI]\n\n"
            + shown.to_markdown(index=False, floatfmt=".3f")
            + "\n"
        )
    return "\n".join(parts)


def _plot(table: pd.DataFrame, path: Path) -> None:
    """Bars with 95% interval whiskers: accuracy per level (left), length success on L1/L2 (right)."""
    fig = Figure(figsize=(11, 3.8))  # no pyplot: no global state, no GUI backend
    panels = [
        ("accuracy", LEVELS, "exact-match accuracy"),
        ("quantitative", [*QUANTITATIVE_LEVELS, "L1_L2"], "length success (25% rule)"),
    ]
    for index, (measure, keys, label) in enumerate(panels):
        ax = fig.add_subplot(1, 2, index + 1)
        width = 0.8 / max(1, len(table))
        x = np.arange(len(keys))
        for i, (condition, row) in enumerate(table.iterrows()):
            mean = np.array([row[f"{measure}_{k}"] for k in keys], dtype=float)
            low = np.array([row[f"{measure}_{k}_ci_low"] for k in keys], dtype=float)
            high = np.array([row[f"{measure}_{k}_ci_high"] for k in keys], dtype=float)
            ax.bar(
                x + (i - (len(table) - 1) / 2) * width,
                np.nan_to_num(mean),
                width,
                label=str(condition),
                yerr=np.nan_to_num([mean - low, high - mean]),
                capsize=2,
            )
        ax.set_xticks(x, [k.replace("_", "+") for k in keys])
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"held-out {label}")
        ax.set_title(f"{label}, 95% CI (scenes x seeds)", fontsize=9)
        if index == 0:
            ax.legend(title="condition", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parent_metrics(table: pd.DataFrame, differences: pd.DataFrame) -> dict[str, float]:
    """`<condition>/<measure>/<key>` with `.../ci_low` and `.../ci_high`; `direction/<i>/difference|ci_low|ci_high`
    for the i-th row of the directions table."""
    metrics: dict[str, float] = {}
    for condition, row in table.iterrows():
        for measure, key, _ in COLUMNS:
            for suffix, column in (("", ""), ("/ci_low", "_ci_low"), ("/ci_high", "_ci_high")):
                value = row[f"{measure}_{key}{column}"]
                if pd.notna(value):
                    metrics[f"{condition}/{measure}/{key}{suffix}"] = float(value)
    for i, row in enumerate(differences.itertuples()):
        for column in ("difference", "ci_low", "ci_high"):
            value = getattr(row, column)
            if pd.notna(value):
                metrics[f"direction/{i}/{column}"] = float(value)
    return metrics


# ------------------------------------------------------------------------------------------ the experiment


def _condition_config(
    config: TrainConfig, condition: Condition, seed: int, tracking_uri: str, stamp: str
) -> TrainConfig:
    name = f"{condition.arm}-{condition.variant}-s{seed}-{stamp}"
    return config.model_copy(
        update={
            "seed": seed,
            "model": config.model.model_copy(update={"variant": condition.variant}),
            "data": config.data.model_copy(update={"excluded_levels": list(ARMS[condition.arm])}),
            "mlflow": MLflowConfig(
                tracking_uri=tracking_uri,
                experiment=config.mlflow.experiment,
                run_name=name,
                log_model_artifacts=config.mlflow.log_model_artifacts,
            ),
            "checkpoint_name": f"ablation-{name}",
        },
        deep=True,
    )


def run_ablation(
    root: Path,
    config: TrainConfig,
    *,
    mlflow_dir: Path | None = None,
    arms: Sequence[str] = tuple(ARMS),
    variants: Sequence[str] = (),
    seeds: Sequence[int] = (0, 1, 2),
    resamples: int = 2000,
) -> AblationReport:
    """Train every condition once per seed as child runs of a new parent run; log the comparison, with
    intervals, to the parent."""
    root = Path(root)
    unknown = sorted(set(arms) - set(ARMS)) + sorted(set(variants) - set(VARIANTS))
    if unknown or not seeds:
        raise ValueError(f"unknown arms/variants {unknown} or no seeds ({list(seeds)})")
    conditions = ablation_conditions(arms, variants, config.model.variant)
    if not conditions:
        raise ValueError("nothing to train: no arms and no variants")
    tracking_uri, artifact_location = resolve_tracking(config, mlflow_dir)
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, config.mlflow.experiment, artifact_location)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = client.create_run(
        experiment_id,
        run_name=f"ablation-{stamp}",
        tags={
            "kind": "level_ablation",
            "variant": config.model.variant,
            "arms": ",".join(arms),
            "variants": ",".join(c.variant for c in conditions),
            "seeds": ",".join(map(str, seeds)),
        },
    )
    parent_id = parent.info.run_id
    runs: dict[str, list[TrainReport]] = {}
    frames: list[pd.DataFrame] = []
    try:
        for condition in conditions:
            for seed in seeds:
                report = train_checkpoint(
                    root,
                    _condition_config(config, condition, seed, tracking_uri, stamp),
                    mlflow_dir=mlflow_dir,
                )
                for key, value in {
                    "mlflow.parentRunId": parent_id,
                    "ablation_arm": condition.arm,
                    "ablation_condition": condition.name,
                    "seed": str(seed),
                }.items():
                    client.set_tag(report.run_id, key, value)
                runs.setdefault(condition.name, []).append(report)
                items = load_val_items(client, report.run_id)
                if items is not None and not items.empty:
                    frames.append(
                        items.assign(
                            condition=condition.name,
                            arm=condition.arm,
                            variant=condition.variant,
                            seed=seed,
                            run_id=report.run_id,
                        )
                    )
        if not frames:
            raise ValueError("no run has held-out items: raise DataConfig.val_fraction or add scenes")
        items = pd.concat(frames, ignore_index=True)
        items["quantitative"] = items["quantitative"].astype(float)
        names = [c.name for c in conditions]
        table = comparison_table(items, names, resamples)
        differences = direction_table(items, paper_directions(config.model.variant), resamples)
        output_dir = root / "ablations" / f"ablation-{stamp}"
        output_dir.mkdir(parents=True, exist_ok=True)
        _write_outputs(output_dir, items, table, differences, runs, resamples)
        client.log_artifacts(parent_id, str(output_dir), "comparison")
        metrics = parent_metrics(table, differences)
        for key, value in metrics.items():
            client.log_metric(parent_id, key, value)
        client.set_terminated(parent_id, "FINISHED")
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    return AblationReport(
        parent_id, experiment_id, tracking_uri, runs, items, table, differences, output_dir, metrics
    )


def run_level_ablation(
    root: Path,
    config: TrainConfig,
    *,
    mlflow_dir: Path | None = None,
    arms: Sequence[str] = tuple(ARMS),
    seeds: Sequence[int] = (0,),
) -> AblationReport:
    """The three level arms with the config's variant (paper Table 5); `run_ablation` with no extra variants."""
    return run_ablation(root, config, mlflow_dir=mlflow_dir, arms=arms, seeds=seeds)


def _write_outputs(
    output_dir: Path,
    items: pd.DataFrame,
    table: pd.DataFrame,
    differences: pd.DataFrame,
    runs: dict[str, list[TrainReport]],
    resamples: int,
) -> None:
    atomic_write_text(output_dir / "comparison.csv", table.to_csv())
    atomic_write_text(output_dir / "comparison.md", markdown_tables(table, differences))
    atomic_write_text(output_dir / "differences.csv", differences.to_csv(index=False))
    per_key = pd.concat(
        [
            interval_table(items, "condition", "level", "correct", resamples=resamples).assign(
                measure="accuracy"
            ),
            interval_table(items, "condition", "task", "correct", resamples=resamples).assign(
                measure="accuracy"
            ),
            interval_table(items, "condition", "level", "quantitative", resamples=resamples).assign(
                measure="quantitative"
            ),
        ],
        ignore_index=True,
    )
    atomic_write_text(output_dir / "intervals.csv", per_key.to_csv(index=False))
    buffer = io.BytesIO()
    items.to_parquet(buffer, index=False)
    atomic_write_bytes(output_dir / "items.parquet", buffer.getvalue())
    _plot(table, output_dir / "comparison.png")
    atomic_write_json(
        output_dir / "runs.json",
        {
            name: [
                {"run_id": r.run_id, "checkpoint_dir": str(r.checkpoint_dir), "seconds": round(r.seconds, 1)}
                for r in reports
            ]
            for name, reports in runs.items()
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--arms", nargs="*", choices=sorted(ARMS), default=list(ARMS))
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=sorted(VARIANTS),
        default=[],
        help="also train all levels with these variants (paper Table 6)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--val-items-per-level",
        type=int,
        default=400,
        help="held-out items per level, split over its tasks (DataConfig; README says why)",
    )
    parser.add_argument(
        "--val-quantitative-items",
        type=int,
        default=600,
        help="free-form length questions (L1/L2) in the held-out set, for Table 6 (DataConfig)",
    )
    parser.add_argument("--val-fraction", type=float, help="share of scenes held out (DataConfig)")
    args = parser.parse_args(argv)
    config = TrainConfig.preset(args.preset)
    if args.max_steps is not None:
        config = config.model_copy(update={"max_steps": args.max_steps})
    data_updates = {
        k: v
        for k, v in {
            "val_items_per_level": args.val_items_per_level,
            "val_quantitative_items": args.val_quantitative_items,
            "val_fraction": args.val_fraction,
        }.items()
        if v is not None
    }
    if data_updates:
        config = config.model_copy(update={"data": config.data.model_copy(update=data_updates)})
    config = TrainConfig.model_validate(config.model_dump())
    report = run_ablation(args.root, config, arms=args.arms, variants=args.variants, seeds=args.seeds)
    print(markdown_tables(report.table, report.differences))
    print(f"parent run {report.parent_run_id} at {report.tracking_uri}; outputs in {report.output_dir}")


if __name__ == "__main__":
    main()
