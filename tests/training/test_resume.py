"""A training run killed with SIGKILL mid-way continues from its last resume checkpoint, in the same MLflow run, to
the very same weights as an uninterrupted run (bit-identical on CPU: every example is a function of its global
index, and model, AdamW state, LR schedule and sampler position all come back from the checkpoint). Issue #17; and
issue #19 (7): before, a killed run stayed RUNNING in MLflow for ever; now the next start marks it KILLED."""

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
STEPS = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A data root, an MLflow store, and the uninterrupted run every resumed run must reproduce."""
    root = tmp_path_factory.mktemp("resume-blocks")
    write_block_root(root, num_scenes=10)
    (root / "mlflow").mkdir()
    straight = train_checkpoint(root, _config(root, "straight"))
    assert straight.resumed_from_step is None
    return root, load_file(straight.checkpoint_dir / "model.safetensors")


def _config(root: Path, name: str, **overrides) -> TrainConfig:
    """Configs that differ only in checkpoint_name train identically (and have separate resume state)."""
    base = tiny_train_config(
        max_steps=STEPS,
        batch_size=4,
        log_every_n_steps=2,
        checkpoint_every_n_steps=2,
        checkpoint_name=name,
        mlflow=MLflowConfig(
            tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            experiment="test-resume",
            log_model_artifacts=False,
        ),
    )
    base.data.max_val_items = 4
    base.eval_max_new_tokens = 2
    return base.model_copy(update=overrides)


def _spawn(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.victim", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


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


def _assert_same_weights(expected: dict, checkpoint_dir: Path) -> None:
    got = load_file(Path(checkpoint_dir) / "model.safetensors")
    assert sorted(got) == sorted(expected)
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"resumed weights differ from the uninterrupted run in {different[:5]}"


def test_a_sigkilled_run_is_marked_killed_then_resumes_to_the_uninterrupted_weights(setup, tmp_path):
    root, straight = setup
    config = _config(root, "killed")
    config_path = tmp_path / "config.json"
    config_path.write_text(config.model_dump_json())
    proc = _spawn(["train", str(root), str(config_path), "4"])  # slowed from step 4: killed mid-way
    killed_at = _kill_after_checkpoint(proc, root, config, min_step=4)
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "checkpoints" / "killed").exists()  # killed before its final checkpoint
    client = MlflowClient(config.mlflow.tracking_uri)
    run_id = open_resume_state(root, config).record["mlflow_run_id"]
    assert client.get_run(run_id).info.status == "RUNNING"  # all a SIGKILL leaves behind

    # issue #19 (7): the next start of any training on this root (here another config, which does not resume it)
    # marks the dead run KILLED
    other = train_checkpoint(root, _config(root, "other", max_steps=1, checkpoint_every_n_steps=0))
    killed = client.get_run(run_id)
    assert other.run_id != run_id and killed.info.status == "KILLED" and killed.info.end_time is not None
    assert "died without finishing" in killed.data.tags[ORPHAN_TAG]

    resumed = train_checkpoint(root, config)  # the same command again
    assert resumed.resumed_from_step == killed_at and 4 <= killed_at < STEPS
    assert resumed.num_steps == STEPS and resumed.run_id == run_id  # the same MLflow run continued
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["hispatial.resumes"] == "1"
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert min(steps) < killed_at < max(steps)  # one loss curve across the kill
    assert not open_resume_state(root, config).directory.exists()  # finished: resume state removed
    _assert_same_weights(straight, resumed.checkpoint_dir)


@pytest.mark.slow  # ~90 s on the 2 shared cores (a Dagster child process, then a resumed run): see the report
def test_the_checkpoint_asset_resumes_when_re_materialized_after_a_kill(setup):
    """The Dagster `checkpoint` asset's process is SIGKILLed mid-training; materializing it again continues the same
    MLflow run from the resume checkpoint and ends at the uninterrupted run's weights."""
    from hispatial_dagster.resources import TrainingSettings

    from .victim import materialize_checkpoint

    root, straight = setup
    wanted = _config(root, "asset")
    options = wanted.model_dump(mode="json", exclude_none=True)  # the tiny preset overridden to exactly this
    assert TrainingSettings(preset="tiny", options=options).config() == wanted
    proc = _spawn(["asset", str(root), wanted.mlflow.tracking_uri, json.dumps(options)])
    killed_at = _kill_after_checkpoint(proc, root, wanted, min_step=2)
    run_id = open_resume_state(root, wanted).record["mlflow_run_id"]

    result = materialize_checkpoint(str(root), wanted.mlflow.tracking_uri, options)
    meta = {k: v.value for k, v in result.asset_materializations_for_node("checkpoint")[0].metadata.items()}
    assert meta["resumed_from_step"] == killed_at and meta["mlflow_run_id"] == run_id
    assert MlflowClient(wanted.mlflow.tracking_uri).get_run(run_id).info.status == "FINISHED"
    _assert_same_weights(straight, Path(meta["checkpoint_dir"]))
