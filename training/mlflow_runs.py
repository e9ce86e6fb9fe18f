"""MLflow as its users expect it: experiments that open on their runs, and the data each run consumed as an input.

MLflow 3 opens an experiment in its GenAI view (traces) unless the experiment is tagged as model development
(`mlflow.experimentKind`); our experiments hold training and scoring runs, so every experiment we create or reuse
carries the model-development kind. Each training run logs its QA release, and each benchmark run its benchmark
items, as an MLflow *input dataset* (name, digest, source, schema): that fills the runs table's "Dataset" column and
is the lineage from a QA release to the checkpoint trained on it. Only metadata is logged (`MetaDataset`): the rows
stay where they are, so a release of millions of rows costs nothing here.

Used by training (training/train.py, training/ablation.py) and evaluation (evaluation/report.py) alike.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"  # the kind whose UI opens on the runs table
DIGEST_CHARS = (
    36  # MLflow's limit for a dataset digest: our sha256 digests are logged by their first 36 hex digits
)


def ensure_experiment(client: Any, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name` (an `mlflow.MlflowClient`'s), created as a model-development experiment if
    missing; an existing experiment without a kind gets ours (a kind set by a person is left alone)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=artifact_location, tags={EXPERIMENT_KIND_TAG: MODEL_DEVELOPMENT}
            )
        except MlflowException:  # created by a concurrent run between the lookup and the create
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)
    return experiment.experiment_id


def _mlflow_type(arrow_type: pa.DataType) -> Any:
    from mlflow.types import DataType
    from mlflow.types.schema import Array

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return DataType.string
    if pa.types.is_boolean(arrow_type):
        return DataType.boolean
    if pa.types.is_integer(arrow_type):
        return DataType.long if arrow_type.bit_width > 32 else DataType.integer
    if pa.types.is_floating(arrow_type):
        return DataType.double if arrow_type.bit_width > 32 else DataType.float
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return DataType.binary
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return Array(_mlflow_type(arrow_type.value_type))
    raise TypeError(f"no MLflow type for arrow type {arrow_type}")


def mlflow_schema(schema: pa.Schema) -> Any:
    """An `mlflow.types.Schema` with one column per arrow field (nullable fields are optional columns)."""
    from mlflow.types import ColSpec, Schema

    return Schema([ColSpec(_mlflow_type(f.type), f.name, required=not f.nullable) for f in schema])


def dataset_source(location: str | Path) -> Any:
    """Where a dataset lives, as an MLflow dataset source: a local path, or a Hugging Face dataset id."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

    text = str(location)
    if not Path(text).expanduser().exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", text):
        return HuggingFaceDatasetSource(path=text)
    with (
        warnings.catch_warnings()
    ):  # two registered local-path sources match a path; MLflow picks one and says so
        warnings.simplefilter("ignore")
        return resolve_dataset_source(str(Path(text).expanduser().resolve()))


def log_dataset_input(
    client: Any,
    run_id: str,
    *,
    name: str,
    digest: str,
    source: str | Path,
    schema: pa.Schema | None = None,
    context: str = "training",
) -> None:
    """Log a dataset the run consumed (metadata only) with its context tag (`training`, `evaluation`)."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = MetaDataset(
        source=dataset_source(source),
        name=name,
        digest=digest[:DIGEST_CHARS],
        schema=mlflow_schema(schema) if schema is not None else None,
    )
    client.log_inputs(
        run_id,
        datasets=[
            DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        ],
    )


def log_qa_release(client: Any, run_id: str, root: Path) -> None:
    """The QA data the run trains on as its training input: the release under `<root>/qa_dataset` (its manifest
    digest), or, without a release, the QA shards themselves under the same digest rule."""
    from assets.qa.dataset import STAGE, manifest_path, release_manifest, unreleased_digest
    from assets.qa.shards import QA_SCHEMA
    from assets.qa.shards import STAGE as SHARD_STAGE

    release = Path(root) / STAGE
    if manifest_path(root) is not None:
        source, digest = release, str(release_manifest(root)["dataset_digest"])
    else:
        source, digest = Path(root) / SHARD_STAGE, unreleased_digest(root)
    log_dataset_input(
        client,
        run_id,
        name="hispatial-qa",
        digest=digest,
        source=source,
        schema=QA_SCHEMA,
        context="training",
    )


VAL_ITEMS_ARTIFACT = "eval/val_items.parquet"


def log_val_items(client: Any, run_id: str, records: list[dict], **columns: object) -> None:
    """Log a run's per-item validation results (one row per item: item_id, scene_id, level, task, correct,
    quantitative, ...) as the parquet artifact `eval/val_items.parquet`; `columns` (seed, variant, levels) are
    added to every row so that tables pooled over runs still say where each row came from."""
    frame = pd.DataFrame(records).assign(**columns)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(VAL_ITEMS_ARTIFACT).name
        frame.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), str(Path(VAL_ITEMS_ARTIFACT).parent))


def load_val_items(client: Any, run_id: str) -> Any:
    """A run's per-item validation results (pandas DataFrame), or None for a run that logged none (runs made
    before per-item logging existed, or without held-out scenes)."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, VAL_ITEMS_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return None
        return pd.read_parquet(path)


def log_release_to_mlflow(root: Path, tracking_uri: str, experiment: str | None = None) -> str:
    """One MLflow run per QA release in `experiment` (default `hispatial-qa-dataset`): the quality counts as
    metrics, the quality report, manifest and plots as artifacts, the dataset digest as a tag and the release as
    the run's input dataset. Client calls only: no process-wide active experiment or run is left behind (the
    checkpoint step that follows in the same process starts its own runs). Returns the run id."""
    from mlflow import MlflowClient

    from assets.qa.dataset import (
        ANSWER_PLOT,
        MANIFEST,
        PLOT,
        QUALITY,
        QUALITY_EXPERIMENT,
        STAGE,
        quality_metadata,
        read_quality,
        release_manifest,
    )
    from training.config import artifact_location_for

    out_dir = Path(root) / STAGE
    quality = read_quality(root)
    manifest = release_manifest(root)
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(
        client, experiment or QUALITY_EXPERIMENT, artifact_location_for(tracking_uri)
    )
    run = client.create_run(
        experiment_id,
        run_name=f"qa_dataset-{manifest['dataset_digest'][:12]}",
        tags={"dataset_digest": manifest["dataset_digest"]},
    )
    run_id = run.info.run_id
    try:
        metrics = {k: float(v) for k, v in quality_metadata(quality).items()} | {
            "num_rows": float(manifest["num_rows"])
        }
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        log_qa_release(client, run_id, root)
        for name in (QUALITY, MANIFEST, PLOT, ANSWER_PLOT, "curation/report.json"):
            if (out_dir / name).exists():
                client.log_artifact(run_id, str(out_dir / name), artifact_path="qa_dataset")
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    return run_id
