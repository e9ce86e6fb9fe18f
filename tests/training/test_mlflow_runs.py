"""MLflow as its users expect: experiments of the model-development kind (the UI opens on runs, not on GenAI
traces), and each run's data as an MLflow input dataset, read back through the MLflow client."""

import hashlib
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from assets.qa.dataset import file_digest
from evaluation.items import AnswerKind, EvalItem
from evaluation.report import BenchmarkReport, log_to_mlflow
from evaluation.run import benchmark_dataset
from training.config import MLflowConfig, tiny_train_config
from training.mlflow_runs import DIGEST_CHARS, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT, ensure_experiment
from training.train import train_checkpoint

from .blocks import write_block_root


def _uri(tmp_path: Path) -> str:
    (tmp_path / "mlflow").mkdir(exist_ok=True)
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def test_experiments_are_model_development_experiments(tmp_path: Path) -> None:
    client = MlflowClient(_uri(tmp_path))
    new = ensure_experiment(client, "fresh")
    assert client.get_experiment(new).tags[EXPERIMENT_KIND_TAG] == MODEL_DEVELOPMENT
    # An experiment created elsewhere without a kind gets ours; one with a kind chosen by a person keeps it.
    plain = client.create_experiment("plain")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    assert ensure_experiment(client, "plain") == plain
    ensure_experiment(client, "chosen")
    assert client.get_experiment(plain).tags[EXPERIMENT_KIND_TAG] == MODEL_DEVELOPMENT
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_training_run_logs_its_qa_release_as_input_dataset(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_block_root(root, num_scenes=6)
    uri = _uri(tmp_path)
    config = tiny_train_config(
        max_steps=2, batch_size=2, mlflow=MLflowConfig(tracking_uri=uri, experiment="t")
    )
    config.data.max_val_items = 2
    report = train_checkpoint(root, config, mlflow_dir=tmp_path / "mlflow")

    client = MlflowClient(uri)
    assert client.get_experiment_by_name("t").tags[EXPERIMENT_KIND_TAG] == MODEL_DEVELOPMENT
    [logged] = client.get_run(report.run_id).inputs.dataset_inputs
    # The release's own digest rule (assets.qa.dataset), over the shards the run read.
    shards = [(p.parent.name, file_digest(p)) for p in sorted((root / "qa_shards").glob("*/qa.parquet"))]
    assert logged.dataset.name == "hispatial-qa"
    assert logged.dataset.digest == hashlib.sha256(json.dumps(shards).encode()).hexdigest()[:DIGEST_CHARS]
    assert str((root / "qa_shards").resolve()) in logged.dataset.source
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "training"
    columns = {c["name"] for c in json.loads(logged.dataset.schema)["mlflow_colspec"]}
    assert {"question", "answer", "level", "task", "options", "direction"} <= columns


def test_benchmark_run_logs_its_items_as_input_dataset(tmp_path: Path) -> None:
    items = [
        EvalItem(item_id=str(i), benchmark="cv_bench", prompt=f"q{i}", kind=AnswerKind.CHOICE, answer="A")
        for i in range(3)
    ]
    dataset = benchmark_dataset("cv_bench", "nyu-visionx/CV-Bench", items)
    report = BenchmarkReport(benchmark="cv_bench", status="ok", metrics={"accuracy": 0.5})
    uri = _uri(tmp_path)
    run_id = log_to_mlflow(report, uri, "eval", None, {"benchmark": "cv_bench"}, dataset=dataset)

    client = MlflowClient(uri)
    assert client.get_experiment_by_name("eval").tags[EXPERIMENT_KIND_TAG] == MODEL_DEVELOPMENT
    [logged] = client.get_run(run_id).inputs.dataset_inputs
    assert logged.dataset.name == "cv_bench" and logged.dataset.digest == dataset["digest"][:DIGEST_CHARS]
    assert "nyu-visionx/CV-Bench" in logged.dataset.source
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "evaluation"
    # The digest follows the items: another answer key is another dataset.
    items[0].answer = "B"
    assert benchmark_dataset("cv_bench", "nyu-visionx/CV-Bench", items)["digest"] != dataset["digest"]


@pytest.mark.parametrize("source", ["owner/name", "/does/not/exist/here"])
def test_dataset_source_kinds(source: str) -> None:
    from training.mlflow_runs import dataset_source

    kind = type(dataset_source(source)).__name__
    assert kind == ("HuggingFaceDatasetSource" if source == "owner/name" else "LocalArtifactDatasetSource")
