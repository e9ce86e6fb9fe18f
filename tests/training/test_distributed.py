"""DDP and FSDP really run: two processes on CPU (gloo), launched by torchrun around `python -m training.train`
(the same command a cluster runs), against a single-process run with the same global batch and seed.

Lightning's own `fsdp` strategy (FSDP1) refuses a CPU accelerator, so `strategy="fsdp"` is FSDP2 (`fully_shard`)
through Lightning's ModelParallelStrategy, which runs on CPU with gloo: the tests exercise the very sharded path a
GPU cluster runs.

Tolerance: every example is a function of its global index and DDP/FSDP average the ranks' gradients of their
local means, so the math is that of one process; what differs is float32 summation order (all-reduce /
reduce-scatter vs one backward over the whole batch) and each rank padding its half-batch to its own longest
sequence (other matmul shapes). Measured over these 6 steps: 1.3e-7 relative on the loss (DDP), 6.7e-8 (FSDP), and
1e-7 absolute on any weight. We allow 1e-5 on both (AdamW divides by sqrt(v), so a rounding difference in a
near-zero gradient can move a weight by up to ~lr): a wrong data split, a missing gradient average or a wrong gather
is off by orders more.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from training.checkpoints import export_official, load_checkpoint
from training.config import MLflowConfig, TrainConfig, tiny_train_config
from training.distributed import run_torchrun
from training.train import train_checkpoint

from .blocks import write_block_root

REPO = Path(__file__).resolve().parents[2]

STEPS = 6
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist-blocks")
    write_block_root(root, num_scenes=10)
    (root / "mlflow").mkdir()
    single = train_checkpoint(root, _config(root, batch_size=4, checkpoint_name="single"))
    return root, single


def _config(root, **overrides) -> TrainConfig:
    base = tiny_train_config(
        max_steps=STEPS,
        log_every_n_steps=1,
        checkpoint_every_n_steps=3,
        mlflow=MLflowConfig(
            tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            experiment="test-distributed",
            log_model_artifacts=False,
        ),
    )
    base.data.max_val_items = 4
    base.eval_max_new_tokens = 2
    return base.model_copy(update=overrides)


def _loss_curve(root, run_id: str) -> np.ndarray:
    client = MlflowClient(f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")
    history = sorted(client.get_metric_history(run_id, "train/loss_global"), key=lambda m: m.step)
    return np.array([m.value for m in history])


def _two_process_run(root, strategy: str, port: int) -> dict:
    config = _config(root, batch_size=2, strategy=strategy, accelerator="cpu", checkpoint_name=strategy)
    return run_torchrun(root, config, nproc_per_node=2, master_port=port)


def _assert_same_training(root, single, report) -> None:
    ours, theirs = _loss_curve(root, single.run_id), _loss_curve(root, report["run_id"])
    assert len(ours) == len(theirs) == STEPS
    np.testing.assert_allclose(theirs, ours, rtol=LOSS_RTOL)
    assert report["num_steps"] == STEPS
    a = load_file(single.checkpoint_dir / "model.safetensors")
    b = load_file(f"{report['checkpoint_dir']}/model.safetensors")
    assert sorted(a) == sorted(b)  # the same single-file layout, key by key
    for key in a:
        assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype, key
        torch.testing.assert_close(b[key], a[key], atol=WEIGHT_ATOL, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


def test_ddp_two_processes_follow_the_single_process_loss_curve(setup):
    root, single = setup
    report = _two_process_run(root, "ddp", port=3161)
    _assert_same_training(root, single, report)
    run = MlflowClient(f"sqlite:///{root / 'mlflow' / 'mlflow.db'}").get_run(report["run_id"])
    assert run.data.params["strategy"] == "ddp" and run.info.status == "FINISHED"


def test_fsdp_two_processes_shard_train_and_gather_into_the_single_process_layout(setup, tmp_path):
    root, single = setup
    report = _two_process_run(root, "fsdp", port=3162)
    _assert_same_training(root, single, report)

    # the gathered checkpoint loads (digest checked) and exports to the official layout like the single run's
    model, _, config = load_checkpoint(report["checkpoint_dir"])
    assert config.strategy == "fsdp"
    reference, _, _ = load_checkpoint(single.checkpoint_dir)
    export_official(model, tmp_path / "fsdp-official")
    export_official(reference, tmp_path / "single-official")
    ours = torch.load(tmp_path / "fsdp-official" / "weights.pt", weights_only=True)
    theirs = torch.load(tmp_path / "single-official" / "weights.pt", weights_only=True)
    assert sorted(ours) == sorted(theirs) and "language_model.lm_head.weight" in ours
    for key in ours:
        assert ours[key].shape == theirs[key].shape and ours[key].dtype == theirs[key].dtype, key
        torch.testing.assert_close(ours[key], theirs[key], atol=WEIGHT_ATOL, rtol=0)
    assert json.loads((tmp_path / "fsdp-official" / "config.json").read_text()) == json.loads(
        (tmp_path / "single-official" / "config.json").read_text()
    )


def _split_torchrun(command: list[str]):
    """(torchrun's parsed options, the training CLI's parsed arguments) of a torchrun command line."""
    from torch.distributed.run import get_args_parser

    from training.train import build_parser

    launcher = get_args_parser().parse_args(command)
    assert launcher.module and launcher.training_script == "training.train"  # the one entry point
    return launcher, build_parser().parse_args(launcher.training_script_args)


def test_the_4x8_manifest_and_the_asset_launch_the_same_entry_point_with_torchrun(tmp_path):
    import yaml

    from training.distributed import torchrun_command

    docs = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "training-job-multinode.yaml").read_text()))
    job = next(d for d in docs if d["kind"] == "Job")
    service = next(d for d in docs if d["kind"] == "Service")
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    assert job["spec"]["completionMode"] == "Indexed"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][0] == "torchrun"
    launcher, train_args = _split_torchrun(container["command"][1:])
    assert launcher.nnodes == "4" and launcher.nproc_per_node == "8"
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 8
    # pod 0 of the Indexed Job, through the headless Service, hosts the rendezvous
    host = launcher.rdzv_endpoint.split(":")[0]
    assert host == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    assert train_args.strategy == "fsdp" and train_args.preset == "paper-448"

    one_node = torchrun_command(tmp_path, tmp_path / "c.json", tmp_path / "r.json", 8)
    assert one_node[1:3] == ["-m", "torch.distributed.run"]
    launcher, train_args = _split_torchrun(one_node[3:])
    assert launcher.standalone and launcher.nproc_per_node == "8" and train_args.report == tmp_path / "r.json"


@pytest.mark.slow  # ~3 min on the 2 shared cores: three 2-process launches
def test_a_sigkilled_fsdp_run_resumes_bit_identically(setup, tmp_path):
    """Every process of a 2-process FSDP run is SIGKILLed mid-way (a node lost); the same launch again continues
    from the gathered resume checkpoint, re-sharded, to exactly the weights of an uninterrupted FSDP run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from training.distributed import open_resume_state

    root, _ = setup
    config = _config(
        root,
        batch_size=2,
        strategy="fsdp",
        accelerator="cpu",
        checkpoint_name="fsdp-killed",
        checkpoint_every_n_steps=2,
    )
    (tmp_path / "config.json").write_text(config.model_dump_json())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node=2",
            "--nnodes=1",
            "--master-addr=127.0.0.1",
            "--master-port=3163",
            "-m",
            "tests.training.victim",
            "train",
            str(root),
            str(tmp_path / "config.json"),
            "2",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state, deadline = open_resume_state(root, config), time.time() + 300
    while (last := state.last_checkpoint) is None or torch.load(last, weights_only=True)["global_step"] < 2:
        assert proc.poll() is None and time.time() < deadline, "the FSDP run ended before it was killed"
        time.sleep(0.05)
    # torchrun starts each worker in its own session: kill the agent and every worker, as a lost node would
    for process in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        process.send_signal(signal.SIGKILL)
    proc.wait(30)
    killed_at = int(torch.load(state.last_checkpoint, weights_only=True)["global_step"])

    resumed = run_torchrun(root, config, nproc_per_node=2, master_port=3164)
    assert resumed["resumed_from_step"] == killed_at and resumed["num_steps"] == STEPS
    straight = run_torchrun(
        root,
        config.model_copy(update={"checkpoint_name": "fsdp-straight"}),
        nproc_per_node=2,
        master_port=3165,
    )
    a = load_file(f"{straight['checkpoint_dir']}/model.safetensors")
    b = load_file(f"{resumed['checkpoint_dir']}/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ranks_split_each_global_batch_exactly_as_one_process_draws_it(monkeypatch):
    """GlobalBatchSampler: per step, rank r of W takes the r-th slice of the global batch one process would take;
    starting from a resume position continues the same sequence."""
    from itertools import islice

    import training.distributed as dist

    def indices(rank: int, size: int, per_rank: int, steps: int, start: int = 0) -> list[list[int]]:
        monkeypatch.setattr(dist, "world", lambda: (rank, size))
        flat = list(islice(iter(dist.GlobalBatchSampler(per_rank, start=start)), per_rank * steps))
        return [flat[i : i + per_rank] for i in range(0, len(flat), per_rank)]

    one = indices(0, 1, 8, 5)
    four = [indices(r, 4, 2, 5) for r in range(4)]
    for step in range(5):
        assert sum((four[r][step] for r in range(4)), []) == one[step]
    assert indices(0, 1, 8, 2, start=24) == one[3:5]  # resumed after 3 steps of 8 examples
    assert sum((indices(r, 2, 4, 1, start=24)[0] for r in range(2)), []) == one[3]


def test_a_second_live_process_on_the_same_run_fails_clearly(tmp_path):
    from training.distributed import ResumeState

    first, second = ResumeState(tmp_path / "run", None), ResumeState(tmp_path / "run", None)
    first.lock()
    with pytest.raises(RuntimeError, match="another live process is training this run"):
        second.lock()
    first.release()
    second.lock()  # free again once the holder is gone
    second.release()
