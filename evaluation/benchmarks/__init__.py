"""Benchmark registry: each name maps to its loader, its official per-item reading (the default score, see
evaluation.official), our lenient scoring rules (the `lenient` metric set) and its authors' aggregate metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evaluation import official
from evaluation.benchmarks import cv_bench, embspatial, general, qspatial, robospatial, spatialrgpt, threedsr
from evaluation.config import EvalConfig
from evaluation.extract import extract_qspatial
from evaluation.items import EvalItem, ItemResult
from evaluation.scoring import QSPATIAL_RULE, SPATIALRGPT_RULE, NumericRule, ScoringRules

Aggregate = tuple[dict[str, float], dict[str, dict[str, float]]]
# official(config, judge_client, lenient_scorer) -> per-item official scorer; the client is an OpenAI-compatible
# endpoint (assets.llm.LLMClient) for benchmarks whose authors judge with an LLM, else ignored.
OfficialFactory = Callable[[EvalConfig, object | None, official.OfficialScorer], official.OfficialScorer]


def _static(scorer: official.OfficialScorer) -> OfficialFactory:
    return lambda config, client, lenient: scorer


def _spatialrgpt_official(config: EvalConfig, client: object | None, lenient: official.OfficialScorer):
    templates = (
        official.load_spatialrgpt_templates(config.spatialrgpt_templates)
        if config.spatialrgpt_templates
        else None
    )
    return official.SpatialRGPTScorer(client, templates, lenient)


def _vlmevalkit_official(config: EvalConfig, client: object | None, lenient: official.OfficialScorer):
    return official.VLMEvalKitMCQScorer(client)


def _embspatial_official(config: EvalConfig, client: object | None, lenient: official.OfficialScorer):
    return official.EmbSpatialScorer(client)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    load: Callable[[Path, EvalConfig], list[EvalItem]] | None  # None: built from the data root (custom)
    aggregate: Callable[[list[EvalItem], list[ItemResult], EvalConfig], Aggregate]
    rules: Callable[[EvalConfig], ScoringRules] = lambda config: ScoringRules()
    headline: str = "accuracy"
    official: OfficialFactory | None = (
        None  # None: the benchmark has no separate official reading (custom, POPE..)
    )
    official_judged: bool = False  # the official path asks an LLM judge (the report says which judge decided)
    official_without_judge: str = "exact matching"  # what decides on the official path when no judge is set


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
    "cv_bench": BenchmarkSpec(
        "cv_bench", cv_bench.load, cv_bench.aggregate, official=_static(official.cv_bench)
    ),
    "embspatial": BenchmarkSpec(
        "embspatial",
        embspatial.load,
        embspatial.aggregate,
        official=_embspatial_official,
        official_judged=True,
    ),
    "robospatial": BenchmarkSpec(
        "robospatial", robospatial.load, robospatial.aggregate, official=_static(official.robospatial)
    ),
    "3dsrbench": BenchmarkSpec(
        "3dsrbench", threedsr.load, threedsr.aggregate, official=_vlmevalkit_official, official_judged=True
    ),
    "spatialrgpt": BenchmarkSpec(
        "spatialrgpt",
        spatialrgpt.load,
        spatialrgpt.aggregate,
        lambda config: ScoringRules(numeric=SPATIALRGPT_RULE, default_unit="m"),
        headline="Quan_overall_acc",
        official=_spatialrgpt_official,
        official_judged=True,
        official_without_judge="rule fallback (not official)",
    ),
    "qspatial": BenchmarkSpec(
        "qspatial",
        qspatial.load,
        qspatial.aggregate,
        lambda config: ScoringRules(numeric=QSPATIAL_RULE, length_extractor=extract_qspatial),
        official=_static(official.qspatial),
    ),
    "mmbench": BenchmarkSpec(
        "mmbench",
        general.load_mmbench,
        general.aggregate_mcq,
        official=_vlmevalkit_official,
        official_judged=True,
    ),
    "pope": BenchmarkSpec("pope", general.load_pope, general.aggregate_pope, headline="f1"),
    "seed": BenchmarkSpec("seed", general.load_seed, general.aggregate_mcq),
    "realworldqa": BenchmarkSpec("realworldqa", general.load_realworldqa, general.aggregate_mcq),
}
