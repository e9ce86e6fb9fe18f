"""A training run killed with SIGKILL mid-way continues from its last resume checkpoint, in the same MLflow run, to
the very same weights as an uninterrupted run (bit-identical on CPU: every example is a function of its global
index, and model, AdamW state, LR schedule and sampler position all come back from the checkpoint). Issue #17; and
issue #19 (7): the killed run does not stay RUNNING in MLflow."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from training.config import MLflowConfig, TrainConfig, tiny_train_config
from training.distributed import ORPHAN_TAG, open_resume_state
from training.train import train_checkpoint

from .blocks import write_block_root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def block_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume-blocks")
    write_block_root(root, num_scenes=10)
    return root


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    (tmp_path / "mlflow").mkdir(exist_ok=True)
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    base = tiny_train_config(max_steps=20, batch_size=4, log_every_n_steps=2, checkpoint_every_n_steps=4,
                             mlflow=MLflowConfig(tracking_uri=uri, experiment="test-resume",
                                                 log_model_artifacts=False))
    base.data.max_val_items = 4
    base.eval_max_new_tokens = 2
    return base.model_copy(update=overrides)


def _start_victim(root: Path, config: TrainConfig, tmp_path: Path, slow_after: int) -> subprocess.Popen:
    config_path = tmp_path / f"{config.checkpoint_name}.json"
    config_path.write_text(config.model_dump_json())
    return _spawn(["train", str(root), str(config_path), str(slow_after)])


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.training.victim", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_after_checkpoint(proc: subprocess.Popen, root: Path, config: TrainConfig, min_step: int) -> int:
    """SIGKILL the child once its resume checkpoint has reached `min_step`; return that step."""
    state = open_resume_state(root, config)
    deadline = time.time() + 240
    while time.time() < deadline:
        assert proc.poll() is None, f"training child ended before it was killed: {proc.stderr.read()[-3000:]}"
        last = state.last_checkpoint
        if last is not None:
            step = int(torch.load(last, map_location="cpu", weights_only=True)["global_step"])
            if step >= min_step:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                return step
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no resume checkpoint appeared in time")


def test_a_sigkilled_run_resumes_to_the_uninterrupted_weights_in_the_same_mlflow_run(block_root, tmp_path):
    uninterrupted = train_checkpoint(block_root, _config(tmp_path, checkpoint_name="straight"))
    assert uninterrupted.resumed_from_step is None

    config = _config(tmp_path, checkpoint_name="killed")
    proc = _start_victim(block_root, config, tmp_path, slow_after=8)
    killed_at = _kill_after_checkpoint(proc, block_root, config, min_step=8)
    assert proc.returncode == -signal.SIGKILL
    assert not (block_root / "checkpoints" / "killed").exists()  # killed mid-way, before its final checkpoint
    client = MlflowClient(config.mlflow.tracking_uri)
    run_id = open_resume_state(block_root, config).record["mlflow_run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"  # what a SIGKILL leaves behind

    resumed = train_checkpoint(block_root, config)
    assert resumed.resumed_from_step == killed_at and 8 <= killed_at < 20
    assert resumed.num_steps == 20
    assert resumed.run_id == run_id  # the same MLflow run continued
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["hispatial.resumes"] == "1"
    assert ORPHAN_TAG in run.data.tags  # its kill is on record
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert min(steps) < killed_at < max(steps)  # one loss curve across the kill
    assert not open_resume_state(block_root, config).directory.exists()  # finished: resume state removed

    a = load_file(uninterrupted.checkpoint_dir / "model.safetensors")
    b = load_file(resumed.checkpoint_dir / "model.safetensors")
    assert sorted(a) == sorted(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"resumed weights differ from the uninterrupted run in {different[:5]}"


def test_a_killed_run_is_marked_killed_in_mlflow_on_the_next_start(block_root, tmp_path):
    """Issue #19 (7): before, a SIGKILLed run stayed RUNNING in MLflow for ever. The next start of any training on
    the same data root (here a different config, which does not resume it) marks it KILLED."""
    config = _config(tmp_path, checkpoint_name="orphan", max_steps=40)
    proc = _start_victim(block_root, config, tmp_path, slow_after=0)
    _kill_after_checkpoint(proc, block_root, config, min_step=4)
    client = MlflowClient(config.mlflow.tracking_uri)
    run_id = open_resume_state(block_root, config).record["mlflow_run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"

    other = train_checkpoint(block_root, _config(tmp_path, checkpoint_name="other", max_steps=2,
                                                 checkpoint_every_n_steps=0))
    assert other.run_id != run_id
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None and "died without finishing" in run.data.tags[ORPHAN_TAG]
    assert client.get_run(other.run_id).info.status == "FINISHED"


def test_the_checkpoint_asset_resumes_when_re_materialized_after_a_kill(block_root, tmp_path):
    """The Dagster `checkpoint` asset's run is SIGKILLed mid-training; materializing it again continues the same
    MLflow run from the resume checkpoint and ends at the uninterrupted run's weights."""
    from hispatial_dagster import assets as hs_assets
    from hispatial_dagster.resources import TrainingSettings

    from .victim import materialize_checkpoint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    options = {"max_steps": 16, "batch_size": 4, "checkpoint_every_n_steps": 2, "checkpoint_name": "asset",
               "eval_max_new_tokens": 2, "data": {"max_val_items": 4}, "mlflow": {"log_model_artifacts": False}}
    config = TrainingSettings(preset="tiny", options=options).config(uri)
    proc = _spawn(["asset", str(block_root), uri, json.dumps(options)])
    killed_at = _kill_after_checkpoint(proc, block_root, config, min_step=2)
    run_id = open_resume_state(block_root, config).record["mlflow_run_id"]

    result = materialize_checkpoint(str(block_root), uri, options)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("checkpoint")[0].metadata.items()}
    assert meta["resumed_from_step"] == killed_at and meta["mlflow_run_id"] == run_id
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    assert hs_assets.checkpoint.key.to_user_string() == "checkpoint"

    straight = train_checkpoint(block_root, config.model_copy(update={"checkpoint_name": "asset-straight"}))
    a = load_file(straight.checkpoint_dir / "model.safetensors")
    b = load_file(Path(meta["checkpoint_dir"]) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
