"""Training beyond one process: the global example order, the strategy, sharding, resume state and the launcher.

    example i of the run = f(seed, i)                          (IndexedMixture: a pure function of its index)
    rank r of W, per-rank batch b, step s -> examples s*W*b + r*b ... + b-1   (GlobalBatchSampler)

Because an example depends only on its global index, a global batch is the same set of examples whether one
process or W processes draw it, and the data-sampler position of a run is one integer (examples consumed), which
the resume checkpoint stores. DDP averages the ranks' gradients of their local means, which is the gradient of the
global mean, so 1 and W processes follow the same loss curve up to float summation order.

`fsdp` is FSDP2 (`torch.distributed.fsdp.fully_shard`) through Lightning's `ModelParallelStrategy`: every
`layers` ModuleList entry (SigLIP and Gemma blocks) is one shard unit, the rest (embeddings, tied lm_head, projector,
point-map conv) the root unit. Lightning's own `fsdp` strategy (FSDP1) refuses a CPU accelerator; FSDP2 runs on
CPU with gloo, so the sharded path the cluster runs is the one the tests run (tests/training/test_distributed.py).

Resume: rank 0 keeps `<root>/checkpoints/.resume/<key>/` (key = digest of the config and the QA files) holding
`run.json` (the MLflow run and checkpoint name), `lightning/last.ckpt` (Lightning: model, optimizer, scheduler, loop counters
and the sampler position, loaded with weights_only=True) and a `lock` held (flock) while a process trains. A later
start with the same key resumes that MLflow run from `last.ckpt`; a record whose lock is free belongs to a dead
process, and its MLflow run, if still RUNNING, is marked KILLED first (issue #19: a SIGKILLed run never says so).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import Dataset, Sampler

from assets.qa.dataset import manifest_path, release_manifest, unreleased_digest
from assets.stage import DATA_ERRORS, DataError
from assets.storage import atomic_write_json
from training.config import TrainConfig
from training.data import Example, ExampleFactory, TaskMixture

RESUME_DIR = ".resume"
LAST_CKPT = "last.ckpt"
RUN_RECORD = "run.json"
ORPHAN_TAG = "hispatial.killed"


# ------------------------------------------------------------------------------------------ data order


class IndexedMixture(Dataset):
    """Example `i` of the run's global stream, drawn from the task mixture with a generator seeded by (seed, i).

    A draw whose image or point map is broken is redrawn with (seed, i, attempt), so a bad item costs one draw and
    never shifts the examples after it (every rank and every restart agrees on example i)."""

    def __init__(self, factory: ExampleFactory, mixture: TaskMixture, seed: int, max_attempts: int = 100):
        self.factory, self.mixture, self.seed, self.max_attempts = factory, mixture, seed, max_attempts

    def __getitem__(self, index: int) -> Example:
        for attempt in range(self.max_attempts):
            rng = np.random.default_rng([self.seed, index, attempt])
            source = self.mixture.draw(rng, 1)[0]
            try:
                example = self.factory.make(source, rng)
            except DATA_ERRORS:
                continue
            if example is not None:
                return example
        raise DataError(
            f"example {index}: {self.max_attempts} draws in a row failed; is the dataset all broken?"
        )


def world() -> tuple[int, int]:
    """(rank, world size) of the data-parallel group; (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class GlobalBatchSampler(Sampler[int]):
    """Endless indices of this rank's share of each global batch, from `start` (global examples consumed).

    The rank and world size are read when iteration starts (the process group exists only by then)."""

    def __init__(self, per_rank_batch: int, start: int = 0):
        self.per_rank_batch, self.start = per_rank_batch, start

    def __iter__(self) -> Iterator[int]:
        rank, size = world()
        batch, global_batch = self.per_rank_batch, self.per_rank_batch * size
        step = 0
        while True:
            base = self.start + step * global_batch + rank * batch
            yield from range(base, base + batch)
            step += 1


class SamplerPosition(L.Callback):
    """Stores the sampler position (global examples consumed) in every Lightning checkpoint and restores it."""

    def __init__(self, sampler: GlobalBatchSampler):
        self.sampler = sampler
        self.restored: int | None = None
        self._examples_per_step = 0
        self._trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer
        self._examples_per_step = (
            self.sampler.per_rank_batch * trainer.world_size * trainer.accumulate_grad_batches
        )

    @property
    def examples_seen(self) -> int:
        return (self._trainer.global_step if self._trainer else 0) * self._examples_per_step

    def state_dict(self) -> dict[str, int]:
        return {"examples_seen": self.examples_seen, "examples_per_step": self._examples_per_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks before the fit loop creates (and prefetches from) the dataloader iterator
        self.restored = int(state_dict["examples_seen"])
        self.sampler.start = self.restored


class GlobalBatchLoss(L.Callback):
    """Logs `train/loss_global`: the mean loss of the (micro-)batch over all ranks, comparable across world sizes;
    `train/loss` stays the rank-local value Lightning logs by default."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss = loss.detach() * trainer.accumulate_grad_batches  # Lightning hands the loss over divided by it
        pl_module.log(
            "train/loss_global",
            loss,
            on_step=True,
            on_epoch=False,
            sync_dist=True,
            batch_size=len(batch["tasks"]),
        )


# ------------------------------------------------------------------------------------------ strategy


def launched_by_torchrun() -> bool:
    return "LOCAL_WORLD_SIZE" in os.environ and "GROUP_RANK" in os.environ


def resolve_devices(config: TrainConfig) -> tuple[int | str, int]:
    """(devices per node, nodes): torchrun's environment wins over the config, so one config serves any launch."""
    if launched_by_torchrun():
        local = int(os.environ["LOCAL_WORLD_SIZE"])
        return local, max(1, int(os.environ["WORLD_SIZE"]) // local)
    return config.devices, config.num_nodes


def world_size_of(config: TrainConfig) -> int:
    """Processes the config asks for (devices x nodes); "auto" devices count the visible GPUs, else 1."""
    devices, nodes = resolve_devices(config)
    if isinstance(devices, str):
        devices = max(1, torch.cuda.device_count()) if config.accelerator in ("auto", "gpu", "cuda") else 1
    return int(devices) * nodes


def build_strategy(config: TrainConfig) -> str | L.pytorch.strategies.Strategy:
    """Lightning strategy for `config.strategy`: "fsdp" is FSDP2 via ModelParallelStrategy (module docstring)."""
    if config.strategy != "fsdp":
        if config.strategy == "auto" and launched_by_torchrun() and world_size_of(config) > 1:
            return "ddp"
        return config.strategy
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy(
        data_parallel_size=world_size_of(config),
        tensor_parallel_size=1,
        # the full state dict is gathered to rank 0 for the resume checkpoint: one file, loaded weights_only
        save_distributed_checkpoint=False,
    )


def fully_shard_model(model: nn.Module, mesh: Any) -> nn.Module:
    """FSDP2: each entry of every `layers` ModuleList is its own unit, then the root (idempotent)."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(model, FSDPModule):
        return model
    for name, child in model.named_modules():
        if isinstance(child, nn.ModuleList) and name.rsplit(".", 1)[-1] == "layers":
            for layer in child:
                fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


# ------------------------------------------------------------------------------------------ resume state


def data_fingerprint(root: Path) -> str:
    """Digest of the QA data a run trains on, by the QA table owner's rule (assets.qa.dataset): the release's
    dataset digest (it pins every shard's bytes), or the same rule over the written shards without a release. A
    resume must see the same data."""
    if manifest_path(root) is not None:
        return str(release_manifest(root)["dataset_digest"])
    return unreleased_digest(root)


def resume_key(config: TrainConfig, root: Path) -> str:
    """Which interrupted run a start may continue: same config (all of it) and same QA data."""
    digest = hashlib.sha256(config.model_dump_json().encode())
    digest.update(data_fingerprint(root).encode())
    return digest.hexdigest()[:20]


@dataclass
class ResumeState:
    """One run's resume directory. `record` is run.json of an earlier start (None on a fresh start)."""

    directory: Path
    record: dict[str, Any] | None
    _lock_fd: int | None = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.directory / "lightning"

    @property
    def last_checkpoint(self) -> Path | None:
        path = self.checkpoint_dir / LAST_CKPT
        return path if path.is_file() else None

    def write_record(self, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.directory / RUN_RECORD, record)
        self.record = record

    def lock(self) -> None:
        """Hold the directory while this process trains; a second live start of the same run fails clearly."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"{self.directory}: another live process is training this run (same config and data); "
                "wait for it or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def finish(self) -> None:
        """The run completed: its final checkpoint exists, so the resume state goes."""
        self.release()
        shutil.rmtree(self.directory, ignore_errors=True)

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


def open_resume_state(root: Path, config: TrainConfig) -> ResumeState:
    directory = Path(root) / "checkpoints" / RESUME_DIR / resume_key(config, root)
    record_path = directory / RUN_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    return ResumeState(directory, record)


def _lock_is_free(directory: Path) -> bool:
    lock_path = directory / "lock"
    if not lock_path.exists():
        return True
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@rank_zero_only
def mark_orphaned_runs(root: Path, tracking_uri: str) -> list[str]:
    """Mark KILLED every MLflow run of `<root>/checkpoints/.resume/*` in the store at `tracking_uri` whose process is
    gone but which MLflow still shows RUNNING (a SIGKILL or OOM kill runs no finaliser). Runs recorded in another
    store are left to a start that uses that store (a dead server there must not stall this start). Returns the
    run ids marked."""
    from mlflow.tracking import MlflowClient

    marked: list[str] = []
    for record_path in sorted((Path(root) / "checkpoints" / RESUME_DIR).glob(f"*/{RUN_RECORD}")):
        directory = record_path.parent
        if not _lock_is_free(directory):
            continue
        record = json.loads(record_path.read_text())
        if record.get("tracking_uri") != tracking_uri:
            continue
        client = MlflowClient(record["tracking_uri"])
        try:
            run = client.get_run(record["mlflow_run_id"])
        except Exception:  # noqa: BLE001 - a store that is gone or a deleted run: nothing to mark
            continue
        if run.info.status == "RUNNING":
            mark_killed(client, record["mlflow_run_id"], record.get("pid"))
            marked.append(record["mlflow_run_id"])
    return marked


def mark_killed(client: Any, run_id: str, pid: int | None) -> None:
    client.set_tag(
        run_id,
        ORPHAN_TAG,
        f"process {pid} died without finishing; found on a later start at "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
    )
    client.set_terminated(run_id, status="KILLED")


# ------------------------------------------------------------------------------------------ launcher


def torchrun_command(
    root: Path,
    config_path: Path,
    report_path: Path,
    nproc_per_node: int,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    master_port: int | None = None,
) -> list[str]:
    """The one training command for any cluster shape: torchrun around `python -m training.train`.

    One node: `--standalone` (rendezvous on localhost). Several: c10d rendezvous at `rdzv_endpoint` (host:port of
    node 0), the same command on every node (deploy/README.md)."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise ValueError("a multi-node launch needs rdzv_endpoint (host:port of node 0)")
        command += [
            f"--nnodes={nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            "--rdzv-id=hispatial-train",
        ]
    elif master_port is not None:
        command += ["--nnodes=1", "--master-addr=127.0.0.1", f"--master-port={master_port}"]
    else:
        command += ["--standalone"]
    return [
        *command,
        "-m",
        "training.train",
        "--root",
        str(root),
        "--config",
        str(config_path),
        "--report",
        str(report_path),
    ]


def run_torchrun(
    root: Path,
    config: TrainConfig,
    nproc_per_node: int,
    *,
    master_port: int | None = None,
    extra_env: dict[str, str] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train with `nproc_per_node` processes (torchrun) and return rank 0's report (train.TrainReport as JSON).

    Used by the `checkpoint` asset when the config asks for more than one process: Lightning's own launcher
    re-runs `sys.argv`, which inside a Dagster step would re-run the step, so the asset starts the CLI instead."""
    with tempfile.TemporaryDirectory(prefix="hispatial-train-") as tmp:
        config_path, report_path = Path(tmp) / "config.json", Path(tmp) / "report.json"
        config_path.write_text(config.model_dump_json())
        command = torchrun_command(root, config_path, report_path, nproc_per_node, master_port=master_port)
        if log is not None:
            log.info("launching: " + " ".join(command))
        env = {**os.environ, **(extra_env or {})}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
        )
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not report_path.exists():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise RuntimeError(f"torchrun training failed (exit {done.returncode}):\n{tail}")
        return json.loads(report_path.read_text())


def report_dict(report: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(report).items()}


def global_batch(config: TrainConfig, world_size: int) -> int:
    return config.batch_size * world_size * config.accumulate_grad_batches
