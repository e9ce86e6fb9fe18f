"""Entry point of the `benchmark_scores` asset: load a benchmark, get predictions, score, report.

    score_benchmark(root, "cv_bench", checkpoint_dir, EvalConfig(data={"cv_bench": "nyu-visionx/CV-Bench"}))

Every item loaded is in the denominator: a missing prediction, a missing image, an unparseable answer or a failed
judge reply is a wrong item with its reason in predictions.parquet, never a dropped one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from assets.llm import LLMClient
from assets.point_maps import PointMapEstimator
from assets.stage import DataError
from assets.storage import atomic_dir
from evaluation.benchmarks import REGISTRY, BenchmarkSpec
from evaluation.benchmarks.common import resolve_source
from evaluation.config import EvalConfig
from evaluation.items import AnswerKind, EvalItem, ItemResult
from evaluation.judge import make_judge
from evaluation.predictors import ModelPredictor, PredictionsFile, Predictor
from evaluation.report import BenchmarkReport, log_to_mlflow, write_report
from evaluation.scoring import Judge, score_item

log = logging.getLogger(__name__)


def load_items(root: Path, benchmark: str, config: EvalConfig) -> tuple[list[EvalItem], int]:
    """The benchmark's items (and how many rows the custom builder rejected). Raises DataError when the data is
    not configured or cannot be read."""
    spec = _spec(benchmark)
    rejected = 0
    if spec.load is None:
        from evaluation.custom import build_custom_benchmark

        items, build_report = build_custom_benchmark(root, config)
        rejected = len(build_report.rejections)
        for rejection in build_report.rejections[:20]:
            log.warning("custom benchmark: %s: %s", rejection.item, rejection.reason)
    else:
        if benchmark not in config.data:
            raise _NotConfigured(f"no data path configured for {benchmark} (EvalConfig.data[{benchmark!r}])")
        items = spec.load(resolve_source(config.data[benchmark]), config)
    if not items:
        raise DataError(f"{benchmark}: no items found")
    repeated = [item_id for item_id, n in Counter(it.item_id for it in items).items() if n > 1]
    if repeated:  # the same item loaded twice (two copies of a table) would count twice
        raise DataError(f"{benchmark}: {len(repeated)} item ids occur more than once, e.g. {repeated[:5]}")
    return (items[: config.limit] if config.limit else items), rejected


def _judge_cache(config: EvalConfig, out_root: Path) -> dict[str, Path]:
    """Judge replies are cached (keyed by prompt hash) next to the scores unless the environment says where."""
    return (
        {}
        if os.environ.get(f"{config.judge_env_prefix}_CACHE_DIR")
        else {"cache_dir": out_root / "_judge_cache"}
    )


class _NotConfigured(DataError):
    pass


def _spec(benchmark: str) -> BenchmarkSpec:
    if benchmark not in REGISTRY:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[benchmark]


def _predict(
    predictor: Predictor, items: Sequence[EvalItem], needs_images: bool, chunk: int
) -> tuple[list[str | None], dict[str, str]]:
    """Predictions aligned with `items` plus a reason for each item that got none. Items go to the predictor in
    chunks; a chunk that fails on bad data (a corrupt image) is retried item by item, so one bad item costs one
    item, not the run."""
    reasons: dict[str, str] = {}
    outputs: list[str | None] = [None] * len(items)
    runnable = []
    for position, item in enumerate(items):
        if needs_images and not item.has_image:
            reasons[item.item_id] = "missing image"
        else:
            runnable.append(position)
    for start in range(0, len(runnable), chunk):
        positions = runnable[start : start + chunk]
        try:
            for position, out in zip(
                positions, predictor.predict([items[p] for p in positions]), strict=True
            ):
                outputs[position] = out
        except DataError:
            for position in positions:
                try:
                    outputs[position] = predictor.predict([items[position]])[0]
                except DataError as err:
                    reasons[items[position].item_id] = f"inference failed: {err}"
    return outputs, reasons


def score_items(
    items: Sequence[EvalItem],
    predictions: Sequence[str | None],
    spec: BenchmarkSpec,
    config: EvalConfig,
    judge: Judge | None = None,
    reasons: dict[str, str] | None = None,
    judge_client: object | None = None,
) -> tuple[list[ItemResult], dict[str, float], dict[str, dict[str, float]]]:
    """Score predictions (aligned with items) and aggregate them the benchmark authors' way.

    Where the benchmark has an official reading (`spec.official`), it decides each item and the metrics are the
    official ones; our own reading is scored too and reported beside them as `lenient/<metric>` (and per item as
    `lenient_correct`). `judge_client` is the OpenAI-compatible endpoint an official LLM-judged path uses."""
    rules = spec.rules(config)
    scored: dict[int, ItemResult] = {}

    def lenient(item: EvalItem, prediction: str | None) -> ItemResult:
        """Our reading, computed once per item (an official rule fallback reuses it: one judge call, not two)."""
        if id(item) not in scored:
            scored[id(item)] = score_item(item, prediction, rules, judge)
        return dataclasses.replace(scored[id(item)])

    official = spec.official(config, judge_client, lenient) if spec.official is not None else None
    if official is not None and hasattr(official, "prepare"):  # scorers that decide whole groups at once
        official.prepare(items, predictions)
    results = []
    lenient_results = []
    for item, prediction in zip(items, predictions, strict=True):
        result = lenient(item, prediction)
        if official is not None:
            lenient_results.append(result)
            loose = result
            result = official(item, prediction)
            result.lenient_correct, result.lenient_parsed = loose.correct, loose.parsed
        if prediction is None and reasons and item.item_id in reasons:
            result.reason = reasons[item.item_id]
        results.append(result)
    metrics, per_category = spec.aggregate(list(items), results, config)
    if official is not None:
        lenient_metrics, _ = spec.aggregate(list(items), lenient_results, config)
        metrics.update({f"lenient/{key}": value for key, value in lenient_metrics.items()})
    return results, metrics, per_category


def score_benchmark(
    root: Path,
    benchmark: str,
    checkpoint_dir: Path | None,
    config: EvalConfig,
    predictor: Predictor | None = None,
    judge_client: LLMClient | None = None,
    estimator: PointMapEstimator | None = None,
) -> BenchmarkReport:
    """Score one benchmark and write `<output_dir>/<benchmark>/` (predictions.parquet, report.json, config.json).

    Predictions come from `predictor` if given, else `config.predictions[benchmark]` (a JSONL file), else the
    checkpoint (point maps: the benchmark's ground-truth depth where it has one, else `estimator`, e.g. the
    point_maps stage's MoGe-2 estimator). A benchmark without data or without any prediction source returns status "not configured"; one
    whose data cannot be read returns "failed" with the message; neither raises.
    """
    spec = _spec(benchmark)
    root = Path(root)
    out_root = Path(config.output_dir) if config.output_dir else root / "benchmark_scores"
    report = BenchmarkReport(benchmark=benchmark, status="ok", headline=spec.headline)
    try:
        items, report.build_rejections = load_items(root, benchmark, config)
    except _NotConfigured as err:
        report.status, report.message = "not configured", str(err)
        return report
    except DataError as err:
        report.status = "not configured" if benchmark == "custom" and "held-out" in str(err) else "failed"
        report.message = str(err)
        return report

    needs_images = False
    if predictor is None:
        if benchmark in config.predictions:
            try:
                predictor = PredictionsFile(config.predictions[benchmark])
                predictor.check_ids([it.item_id for it in items], subset=config.limit is not None)
            except (DataError, OSError) as err:
                report.status, report.message = "failed", f"predictions file: {err}"
                return report
        elif checkpoint_dir is not None:
            predictor = ModelPredictor(
                checkpoint_dir, config.batch_size, config.max_new_tokens, config.point_maps, estimator
            )
            needs_images = True
        else:
            report.status = "not configured"
            report.message = "no predictions file and no checkpoint"
            return report
    else:
        needs_images = isinstance(predictor, ModelPredictor)
    report.predictor = predictor.name
    predictions, reasons = _predict(predictor, items, needs_images, max(config.batch_size, 1) * 8)

    judge = None
    if any(it.kind == AnswerKind.JUDGED for it in items):
        client = judge_client
        if client is None and config.use_judge:
            # Judge replies are cached (keyed by prompt hash) next to the scores unless the environment says where.
            client = LLMClient.from_env(config.judge_env_prefix, **_judge_cache(config, out_root))
        judge = make_judge(client, config.l3_relative_error)
        report.judge_mode, report.judge_model = judge.mode, judge.model

    official_client = None
    if spec.official_judged:
        if config.use_judge:
            official_client = judge_client or LLMClient.from_env(
                config.judge_env_prefix, **_judge_cache(config, out_root)
            )
        if official_client is not None:
            report.judge_mode, report.judge_model = "official prompts, llm", str(official_client.config.model)
        else:
            report.judge_mode, report.judge_model = spec.official_without_judge, "rule-based"
    results, report.metrics, report.per_category = score_items(
        items, predictions, spec, config, judge, reasons, official_client
    )
    report.num_items = len(results)
    report.num_unparseable = sum(1 for r in results if r.reason.startswith("unparseable"))
    report.failure_reasons = dict(Counter(r.reason.split(":")[0] for r in results if r.reason))
    if isinstance(predictor, ModelPredictor):
        report.metrics.update({f"point_maps/{k}": float(v) for k, v in predictor.point_map_sources.items()})

    with atomic_dir(out_root / benchmark) as tmp:
        write_report(report, results, tmp, config.model_dump(mode="json"), final_dir=out_root / benchmark)
    report.output_dir = out_root / benchmark
    report.predictions_path = report.output_dir / "predictions.parquet"

    tracking_uri = config.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking_uri:
        params = {
            "benchmark": benchmark,
            "predictor": report.predictor,
            "judge_mode": report.judge_mode,
            "checkpoint_dir": str(checkpoint_dir or ""),
        }
        dataset = benchmark_dataset(benchmark, config.data.get(benchmark) or root / "qa_dataset", items)
        report.mlflow_run_id = log_to_mlflow(
            report, tracking_uri, config.mlflow_experiment, config.run_name, params, dataset=dataset
        )
    return report


ITEMS_SCHEMA = pa.schema(
    [
        pa.field(name, pa.string(), nullable=False)
        for name in ("item_id", "prompt", "answer", "category", "split")
    ]
)


def benchmark_dataset(benchmark: str, source: str | Path, items: list[EvalItem]) -> dict[str, object]:
    """The scored items as an MLflow input dataset: the digest covers exactly what was asked and expected, so
    two runs with the same digest were scored on the same items whatever the data's location."""
    digest = hashlib.sha256()
    for item in items:
        for name in ITEMS_SCHEMA.names:
            digest.update(str(getattr(item, name)).encode() + b"\0")
    return {"name": benchmark, "digest": digest.hexdigest(), "source": source, "schema": ITEMS_SCHEMA}


def export_items(root: Path, benchmark: str, config: EvalConfig, out_path: Path) -> int:
    """Write the benchmark's items as JSONL ({id, prompt, question, kind, options, labels, image_png_b64}) so an
    external system can answer exactly these prompts and images (boxes drawn) and be scored with a predictions
    file. An item whose image is missing is written with image_png_b64 = null. Returns the number of items."""
    import base64
    import io
    import json

    from assets.storage import atomic_write_text
    from evaluation.predictors import item_image

    items, _ = load_items(root, benchmark, config)
    lines = []
    for item in items:
        try:
            buf = io.BytesIO()
            item_image(item).save(buf, format="PNG")
            image = base64.b64encode(buf.getvalue()).decode("ascii")
        except DataError:
            image = None
        lines.append(
            json.dumps(
                {
                    "id": item.item_id,
                    "prompt": item.prompt,
                    "question": item.question,
                    "kind": item.kind.value,
                    "options": item.options,
                    "labels": item.labels,
                    "image_png_b64": image,
                }
            )
        )
    atomic_write_text(Path(out_path), "".join(line + "\n" for line in lines))
    return len(lines)
