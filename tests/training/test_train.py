"""train_checkpoint end to end on block-world data: checkpoint + MLflow run that point at each other."""

import json

import pytest
from mlflow.tracking import MlflowClient

from training.checkpoints import load_checkpoint
from training.config import LoraConfig, MLflowConfig, TrainConfig, tiny_train_config
from training.train import resolve_tracking, train_checkpoint

from .blocks import write_block_root


@pytest.fixture(scope="module")
def block_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-blocks")
    write_block_root(root, num_scenes=10)
    return root


def _config(tmp_path, **overrides) -> TrainConfig:
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    (tmp_path / "mlflow").mkdir(exist_ok=True)
    base = tiny_train_config(
        max_steps=12,
        batch_size=4,
        log_every_n_steps=2,
        mlflow=MLflowConfig(tracking_uri=uri, experiment="test-training"),
    )
    base.data.max_val_items = 8
    return base.model_copy(update=overrides)


def test_train_checkpoint_writes_a_checkpoint_linked_to_its_mlflow_run(block_root, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-logged")
    config = _config(tmp_path, checkpoint_name="demo")
    report = train_checkpoint(block_root, config, mlflow_dir=tmp_path / "mlflow")

    assert report.num_steps == 12
    assert report.checkpoint_dir == block_root / "checkpoints" / "demo"
    files = {p.name for p in report.checkpoint_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    meta = json.loads((report.checkpoint_dir / "config.json").read_text())
    assert meta["mlflow_run_id"] == report.run_id

    client = MlflowClient(config.mlflow.tracking_uri)
    run = client.get_run(report.run_id)
    assert run.data.params["model.variant"] == "xyz"
    assert run.data.params["learning_rate"] == "0.001"
    assert run.data.params["data.general_fraction"] == str(1 / 8)
    assert run.data.tags["variant"] == "xyz" and run.data.tags["levels"] == "L0+L1+L2+L3"
    assert "train/loss" in run.data.metrics and "val/accuracy/all" in run.data.metrics
    assert any(k.startswith("train/loss/") for k in run.data.metrics)  # per-task losses
    history = client.get_metric_history(report.run_id, "train/loss")
    assert len(history) >= 5  # logged every 2 steps
    artifacts = {a.path for a in client.list_artifacts(report.run_id, "checkpoint")}
    assert "checkpoint/model.safetensors" in artifacts
    assert {a.path for a in client.list_artifacts(report.run_id, "config")} >= {"config/train_config.json"}
    logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
    assert "sk-test-not-logged" not in logged  # a secret in the environment never reaches MLflow

    model, processor, loaded_config = load_checkpoint(report.checkpoint_dir)
    assert loaded_config == config
    assert model.point_map_input == "xyz"
    assert 0.0 <= report.metrics["val/accuracy/all"] <= 1.0


def test_lora_rgb_variant_trains_and_saves_a_merged_model(block_root, tmp_path):
    config = _config(
        tmp_path,
        lora=LoraConfig(r=4, alpha=8),
        max_steps=4,
        checkpoint_name="lora",
        model=tiny_train_config().model.model_copy(update={"variant": "rgb"}),
    )
    report = train_checkpoint(block_root, config, mlflow_dir=tmp_path / "mlflow")
    model, _, _ = load_checkpoint(report.checkpoint_dir)
    assert not any("lora" in name for name in model.state_dict())
    run = MlflowClient(config.mlflow.tracking_uri).get_run(report.run_id)
    assert int(run.data.params["num_trainable_parameters"]) < int(run.data.params["num_parameters"]) / 2


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri("")  # nothing set in this process
    config = tiny_train_config()
    uri, artifacts = resolve_tracking(config, tmp_path / "store")
    assert uri == f"sqlite:///{(tmp_path / 'store' / 'mlflow.db').resolve()}"
    assert artifacts == (tmp_path / "store" / "artifacts").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_tracking(config, tmp_path / "store") == ("http://tracking.example:5000", None)
    explicit = config.model_copy(update={"mlflow": MLflowConfig(tracking_uri="sqlite:////x/y.db")})
    assert resolve_tracking(explicit, tmp_path) == ("sqlite:////x/y.db", "file:///x/artifacts")


def test_presets_resolve_and_carry_the_paper_hyper_parameters():
    paper = TrainConfig.preset("paper-448")
    assert paper.learning_rate == 2e-5 and paper.weight_decay == 0.1
    assert paper.model.image_size == 448 and paper.model.backbone == "google/paligemma2-3b-mix-448"
    assert TrainConfig.preset("tiny").model.image_size == 56
    with pytest.raises(KeyError, match="unknown training preset"):
        TrainConfig.preset("huge")
