"""Samples/s of the real training entry point with 1 and 2 processes (CPU, gloo) at the same global batch.

    python perf/bench_distributed.py                       # 1 process, then 2 x ddp, then 2 x fsdp
    python perf/bench_distributed.py --global-batch 16 --steps 30 --strategies ddp --threads 1

Each configuration is launched by torchrun (`--nproc-per-node` 1 or 2) around this file in worker mode, which calls
`training.train.train_checkpoint` (data loading, Lightning, gradient all-reduce or FSDP2 reduce-scatter, MLflow
logging) on a block-world data root and times optimizer steps on rank 0 after `--warmup` steps. With 2 processes
each rank gets half the global batch and, on a 2-core machine, one core: the figure shows what the all-reduce /
sharding costs on CPU, not a speed-up (each process is limited to cores / processes threads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def worker(args: argparse.Namespace) -> None:
    import lightning as L
    import torch

    from training.config import MLflowConfig, tiny_train_config
    from training.train import train_checkpoint

    processes = int(os.environ.get("WORLD_SIZE", "1"))
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // processes))
    times: list[float] = []

    class StepTimer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            times.append(time.perf_counter())

    config = tiny_train_config(
        max_steps=args.warmup + args.steps,
        batch_size=args.global_batch // processes,
        strategy=args.strategy if processes > 1 else "auto",
        accelerator="cpu",
        log_every_n_steps=50,
        checkpoint_every_n_steps=0,
        checkpoint_name=f"bench-{args.strategy}-{processes}",
        eval_max_new_tokens=1,
        mlflow=MLflowConfig(
            tracking_uri=f"sqlite:///{args.root / 'mlflow.db'}",
            experiment="bench-distributed",
            log_model_artifacts=False,
        ),
    )
    config.data.max_val_items = 1
    train_checkpoint(args.root, config, callbacks=[StepTimer()])
    if int(os.environ.get("RANK", "0")) == 0:
        timed = times[args.warmup :]
        seconds = (timed[-1] - times[args.warmup - 1]) / len(timed)
        args.out.write_text(
            json.dumps(
                {
                    "processes": processes,
                    "strategy": config.strategy,
                    "global_batch": args.global_batch,
                    "threads_per_process": torch.get_num_threads(),
                    "seconds_per_step": round(seconds, 4),
                    "samples_per_second": round(args.global_batch / seconds, 1),
                }
            )
        )


def launch(root: Path, processes: int, strategy: str, args: argparse.Namespace, port: int) -> dict:
    out = root / f"result-{strategy}-{processes}.json"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={processes}",
        "--nnodes=1",
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
        str(Path(__file__).resolve()),
        "--worker",
        "--root",
        str(root),
        "--out",
        str(out),
        "--strategy",
        strategy,
        "--global-batch",
        str(args.global_batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--strategies", nargs="+", default=["ddp", "fsdp"], choices=["ddp", "fsdp"])
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per process (0 = cores / processes; on a busy machine 1 avoids"
        " OpenMP threads spinning against each other)",
    )
    parser.add_argument("--port", type=int, default=29541, help="first MASTER_PORT (one per launch)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="ddp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    sys.path.insert(0, str(REPO))
    # the training tests' block world: real files through the real loader
    from tests.training.blocks import write_block_root

    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        root = Path(tmp)
        write_block_root(root, num_scenes=24)
        results = [launch(root, 1, "ddp", args, args.port)]
        for i, strategy in enumerate(args.strategies, 1):
            results.append(launch(root, 2, strategy, args, args.port + i))
    for result in results:
        result["cpu_cores"] = os.cpu_count()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
