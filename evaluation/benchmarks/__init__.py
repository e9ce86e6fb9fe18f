"""Benchmark registry: each name maps to its loader, its scoring rules and its authors' aggregate metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evaluation.benchmarks import cv_bench, embspatial, general, qspatial, robospatial, spatialrgpt, threedsr
from evaluation.config import EvalConfig
from evaluation.extract import extract_qspatial
from evaluation.items import EvalItem, ItemResult
from evaluation.scoring import QSPATIAL_RULE, SPATIALRGPT_RULE, NumericRule, ScoringRules

Aggregate = tuple[dict[str, float], dict[str, dict[str, float]]]


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    load: Callable[[Path, EvalConfig], list[EvalItem]] | None  # None: built from the data root (custom)
    aggregate: Callable[[list[EvalItem], list[ItemResult], EvalConfig], Aggregate]
    rules: Callable[[EvalConfig], ScoringRules] = lambda config: ScoringRules()
    headline: str = "accuracy"


def _custom_rules(config: EvalConfig) -> ScoringRules:
    from evaluation.custom import L3

    return ScoringRules(
        numeric=SPATIALRGPT_RULE,
        angle_threshold_deg=config.angle_threshold_deg,
        default_unit="m",
        numeric_by_category=((L3, NumericRule("relative_error", threshold=config.l3_relative_error)),),
    )


def _custom_aggregate(items, results, config):  # imported lazily: custom imports assets records only
    from evaluation.custom import aggregate

    return aggregate(items, results, config)


def _custom_3d_load(path: Path, config: EvalConfig) -> list[EvalItem]:  # lazily: it imports the QA engine
    from evaluation.custom_3d import load

    return load(path, config)


REGISTRY: dict[str, BenchmarkSpec] = {
    "custom": BenchmarkSpec("custom", None, _custom_aggregate, _custom_rules),
    "custom_3d": BenchmarkSpec("custom_3d", _custom_3d_load, _custom_aggregate, _custom_rules),
    "cv_bench": BenchmarkSpec("cv_bench", cv_bench.load, cv_bench.aggregate),
    "embspatial": BenchmarkSpec("embspatial", embspatial.load, embspatial.aggregate),
    "robospatial": BenchmarkSpec("robospatial", robospatial.load, robospatial.aggregate),
    "3dsrbench": BenchmarkSpec("3dsrbench", threedsr.load, threedsr.aggregate),
    "spatialrgpt": BenchmarkSpec(
        "spatialrgpt",
        spatialrgpt.load,
        spatialrgpt.aggregate,
        lambda config: ScoringRules(numeric=SPATIALRGPT_RULE, default_unit="m"),
        headline="quantitative_avg",
    ),
    "qspatial": BenchmarkSpec(
        "qspatial",
        qspatial.load,
        qspatial.aggregate,
        lambda config: ScoringRules(numeric=QSPATIAL_RULE, length_extractor=extract_qspatial),
    ),
    "mmbench": BenchmarkSpec("mmbench", general.load_mmbench, general.aggregate_mcq),
    "pope": BenchmarkSpec("pope", general.load_pope, general.aggregate_pope, headline="f1"),
    "seed": BenchmarkSpec("seed", general.load_seed, general.aggregate_mcq),
    "realworldqa": BenchmarkSpec("realworldqa", general.load_realworldqa, general.aggregate_mcq),
}
