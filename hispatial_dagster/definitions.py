"""The HiSpatial code location: read this object and you know the product.

    DAGSTER_HOME=$PWD/data/.dagster dagster dev -h 127.0.0.1 -m hispatial_dagster.definitions

Assets (hispatial_dagster/assets.py) and their checks (checks.py), the resources that carry everything
environmental (resources.py), three jobs (jobs.py), the inbox sensor (sensors.py) and the declarative-automation
sensor that moves qa_dataset -> checkpoint -> benchmark_scores along (automation.py).
"""

from __future__ import annotations

import os

import dagster as dg

from hispatial_dagster.assets import all_assets
from hispatial_dagster.checks import all_checks
from hispatial_dagster.jobs import all_jobs
from hispatial_dagster.resources import (
    DataRoot,
    EvalSettings,
    FilterSettings,
    LLMEndpoint,
    MLflowTracking,
    QASettings,
    SourceInbox,
    SyntheticSource,
    TrainingSettings,
    WildModels,
)
from hispatial_dagster.sensors import shard_inbox_sensor


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources from the environment (every field has an offline default)."""
    return {
        "data_root": DataRoot(),
        "source_inbox": SourceInbox(),
        "synthetic": SyntheticSource(),
        "filters": FilterSettings(),
        "qa": QASettings(),
        "llm": LLMEndpoint(),
        "training": TrainingSettings(),
        "evaluation_settings": EvalSettings(),
        "mlflow_tracking": MLflowTracking(),
        "wild_models": WildModels(),
    }


automation_sensor = dg.AutomationConditionSensorDefinition(
    "default_automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(os.environ.get("HISPATIAL_AUTOMATION_INTERVAL_S", "30")),
    description="Evaluates the automation conditions of qa_dataset, checkpoint and benchmark_scores.",
)


def make_executor() -> dg.ExecutorDefinition:
    """Locally, steps of one run execute in parallel subprocesses (HISPATIAL_MAX_CONCURRENT); GPU stages are further
    limited by the `gpu` pool across all runs (hispatial_dagster/instance.py). On Kubernetes
    (HISPATIAL_EXECUTOR=k8s, needs dagster-k8s) each step is its own pod with the resources of k8s_step_config.yaml.
    """
    if os.environ.get("HISPATIAL_EXECUTOR", "multiprocess") == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return dg.multiprocess_executor.configured(
        {"max_concurrent": int(os.environ.get("HISPATIAL_MAX_CONCURRENT", "2"))}
    )


def build_defs(resources: dict[str, dg.ConfigurableResource] | None = None) -> dg.Definitions:
    """The code location with the given resources (default: from the environment, read now)."""
    return dg.Definitions(
        assets=all_assets,
        asset_checks=all_checks,
        jobs=all_jobs,
        sensors=[shard_inbox_sensor, automation_sensor],
        resources=resources or default_resources(),
        executor=make_executor(),
    )


defs = build_defs()
