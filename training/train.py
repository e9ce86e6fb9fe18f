"""Training entry point: `train_checkpoint(root, config) -> TrainReport`, tracked in MLflow.

    data (training.data) ─► HiSpatialModule ─► lightning.Trainer (MLFlowLogger) ─► held-out eval ─► checkpoint dir
                                                                                                  └► MLflow artifacts

MLflow store, in order: `config.mlflow.tracking_uri`; a URI already set in this process (the Dagster resource calls
`mlflow.set_tracking_uri`) or `$MLFLOW_TRACKING_URI`; else SQLite at `<mlflow_dir>/mlflow.db` with artifacts in
`<mlflow_dir>/artifacts` (`mlflow_dir` defaults to `<repo>/mlflow`). The run gets the whole resolved config as
params, per-step and per-task metrics, tags for variant and levels, and the checkpoint + config as artifacts.
The checkpoint's config.json records the run id, so a checkpoint always leads back to its run.

CLI: `python -m training.train --root data --preset tiny --max-steps 200`; the same command under
`torchrun --nproc-per-node N [--nnodes M ...]` trains with N x M processes (DDP, or FSDP2 with `--strategy fsdp`).
A run killed mid-way (SIGKILL, OOM, preemption) continues from its last resume checkpoint in the same MLflow run
when started again with the same config and data (training/distributed.py; deploy/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader

from assets.records import TASK_LEVEL, Task
from assets.storage import atomic_write_json
from evaluation.extract import extract_quantity
from training.checkpoints import gather_full_state_dict, save_checkpoint
from training.config import (
    TrainConfig,
    artifact_location_for,
    flatten_config,
    local_tracking_uri,
    train_presets,
)
from training.data import GENERAL, Collator, Example, build_training_data, normalize_answer
from training.distributed import (
    LAST_CKPT,
    GlobalBatchLoss,
    GlobalBatchSampler,
    IndexedMixture,
    ResumeState,
    SamplerPosition,
    build_strategy,
    is_sharded,
    mark_orphaned_runs,
    open_resume_state,
    report_dict,
    resolve_devices,
)
from training.inputs import model_inputs
from training.mlflow_runs import ensure_experiment, log_qa_release, log_val_items
from training.model import (
    HiSpatialForConditionalGeneration,
    build_random_model,
    load_pretrained,
    num_parameters,
)
from training.module import HiSpatialModule, per_example_loss
from training.tokenizer import build_processor

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What the `checkpoint` asset records: where the weights are, which MLflow run made them, final metrics."""

    checkpoint_dir: Path
    run_id: str
    experiment_id: str
    tracking_uri: str
    metrics: dict[str, float]
    num_steps: int
    seconds: float
    data_stats: dict[str, object] = field(default_factory=dict)
    preview: list[dict] = field(default_factory=list)
    resumed_from_step: int | None = None  # global step of the resume checkpoint this run continued from

    # assets.stage.RunReport
    @property
    def output_dir(self) -> Path:
        return self.checkpoint_dir

    @property
    def per_category(self) -> dict[str, dict[str, float]]:
        return {}

    def paths(self) -> dict[str, Path]:
        return {"checkpoint_dir": self.checkpoint_dir}

    def metadata(self) -> dict[str, object]:
        return {"num_steps": self.num_steps, "train_seconds": round(self.seconds, 1)}


# ------------------------------------------------------------------------------------------ MLflow


def resolve_tracking(config: TrainConfig, mlflow_dir: Path | None = None) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None to let the server decide)."""
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if config.mlflow.tracking_uri:
        uri = config.mlflow.tracking_uri
    elif is_tracking_uri_set():  # set_tracking_uri() in this process (wins), or $MLFLOW_TRACKING_URI
        uri = mlflow.get_tracking_uri() or os.environ["MLFLOW_TRACKING_URI"]
    else:
        uri = local_tracking_uri(mlflow_dir)
    return uri, artifact_location_for(uri)


# ------------------------------------------------------------------------------------------ model


def build_model_and_processor(config: TrainConfig):
    """Tiny/random architectures get the offline tokenizer; a backbone gets its own processor and weights."""
    model_config = config.model
    if model_config.backbone is None:
        processor = build_processor(
            model_config.image_size, model_config.patch_size, model_config.tokenizer_corpus_size
        )
        tokenizer = processor.tokenizer
        vocab = model_config.vocab_size or len(tokenizer)
        model = build_random_model(model_config, vocab, tokenizer.convert_tokens_to_ids("<image>"))
        return model, processor
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_config.backbone)
    return load_pretrained(model_config), processor


# ------------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate_examples(
    model: HiSpatialForConditionalGeneration,
    collator: Collator,
    examples: Sequence[Example],
    batch_size: int = 16,
    max_new_tokens: int = 16,
) -> tuple[dict[str, float], list[dict], list[dict]]:
    """Held-out answer loss and exact-match accuracy (greedy decoding), overall, per task and per level, and the
    success rate of free-form length answers by the SpatialRGPT rule (0.75 gt <= pred <= 1.25 gt; paper Table 6's
    quantitative measure) per level. Returns (metrics, preview, one record per item) so that intervals can be
    computed over items and scenes (evaluation.intervals)."""
    model.eval()
    device = next(model.parameters()).device
    tokenizer = collator.processor.tokenizer
    losses: dict[str, list[float]] = defaultdict(list)
    correct: dict[str, list[float]] = defaultdict(list)
    quantitative: dict[str, list[float]] = defaultdict(list)
    preview: list[dict] = []
    records: list[dict] = []
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        batch = collator(chunk)
        tensors = {k: v.to(device) for k, v in model_inputs(batch).items()}
        labels = batch["labels"].to(device)
        logits = model(**tensors).logits
        example_losses = per_example_loss(logits, labels).cpu().numpy()
        prompts = {k: v.to(device) for k, v in collator.prompts(chunk).items()}
        generated = model.generate(**prompts, max_new_tokens=max_new_tokens, do_sample=False)
        answers = tokenizer.batch_decode(
            generated[:, prompts["input_ids"].shape[1] :], skip_special_tokens=True
        )
        for example, loss, answer in zip(chunk, example_losses, answers, strict=True):
            hit = float(normalize_answer(answer) == normalize_answer(example.answer))
            level = example.level if example.task == GENERAL else TASK_LEVEL[Task(example.task)].value
            for key in ("all", f"task/{example.task}", f"level/{level}"):
                losses[key].append(float(loss))
                correct[key].append(hit)
            success = length_success(answer, example.value_m)
            if success is not None:
                quantitative[f"level/{level}"].append(success)
            records.append(
                {
                    "item_id": example.item_id,
                    "scene_id": example.scene_id,
                    "level": level,
                    "task": example.task,
                    "correct": hit,
                    "quantitative": success,
                    "loss": float(loss),
                    "answer": example.answer,
                    "prediction": answer,
                }
            )
            if len(preview) < 8:
                preview.append(
                    {
                        "task": example.task,
                        "question": example.prompt[:120],
                        "answer": example.answer,
                        "prediction": answer,
                    }
                )
    metrics = {f"val/loss/{k}": float(np.mean(v)) for k, v in losses.items()}
    metrics |= {f"val/accuracy/{k}": float(np.mean(v)) for k, v in correct.items()}
    metrics |= {f"val/quantitative/{k}": float(np.mean(v)) for k, v in quantitative.items()}
    return metrics, preview, records


def length_success(prediction: str, truth_m: float | None) -> float | None:
    """1.0 when the predicted length is within 25% of the truth (SpatialRGPT's rule), 0.0 when not or unreadable,
    None for items that are not length questions. The unit is the prediction's own (answers carry one)."""
    if truth_m is None:
        return None
    predicted = extract_quantity(prediction)
    return float(predicted is not None and 0.75 * truth_m <= predicted <= 1.25 * truth_m)


# ------------------------------------------------------------------------------------------ entry point


def _loader(dataset: IndexedMixture, sampler: GlobalBatchSampler, collator: Collator) -> DataLoader:
    return DataLoader(
        dataset, batch_size=sampler.per_rank_batch, sampler=sampler, collate_fn=collator, num_workers=0
    )


def _open_run(
    root: Path,
    config: TrainConfig,
    tracking_uri: str,
    artifact_location: str | None,
) -> tuple[MLFlowLogger, ResumeState | None, str, str]:
    """The MLflow logger, the resume state and the run name: a fresh run, or the interrupted one continued.

    Rank 0 first marks KILLED the runs of dead processes (issue #19), then locks this run's resume directory."""
    resume = open_resume_state(root, config) if config.resume else None
    record = (resume.record if resume is not None else None) or {}
    if rank_zero_only.rank == 0:
        mark_orphaned_runs(root, tracking_uri)
        if resume is not None:
            resume.lock()
            record = open_resume_state(root, config).record or {}  # as it is now that we hold the run
    run_name = (
        record.get("run_name")
        or config.mlflow.run_name
        or (f"{config.model.name}-{config.model.variant}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    tracking_uri = record.get("tracking_uri", tracking_uri)
    logger = MLFlowLogger(
        experiment_name=config.mlflow.experiment,
        run_name=run_name,
        tracking_uri=tracking_uri,
        tags=config.tags,
        artifact_location=artifact_location,
        run_id=record.get("mlflow_run_id"),
    )
    if rank_zero_only.rank == 0:
        client, run_id = logger.experiment, logger.run_id
        if record:  # continuing: the run was marked KILLED above (or by the process itself); it runs again
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, "hispatial.resumes", str(int(record.get("resumes", 0)) + 1))
        if resume is not None:
            resume.write_record(
                {
                    "mlflow_run_id": run_id,
                    "tracking_uri": tracking_uri,
                    "run_name": run_name,
                    "experiment_id": logger.experiment_id,
                    "pid": os.getpid(),
                    "resumes": int(record.get("resumes", -1)) + 1,
                    "config": config.model_dump(mode="json"),
                }
            )
    return logger, resume, run_name, tracking_uri


def _resume_callbacks(config: TrainConfig, resume: ResumeState | None) -> list[L.Callback]:
    if resume is None or not config.checkpoint_every_n_steps:
        return []
    # one file, overwritten in place (Lightning writes it through an fsspec transaction: old or new, never half)
    return [
        ModelCheckpoint(
            dirpath=resume.checkpoint_dir,
            filename=Path(LAST_CKPT).stem,
            save_top_k=1,
            every_n_train_steps=config.checkpoint_every_n_steps,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        )
    ]


def _trained_model(module: HiSpatialModule, config: TrainConfig) -> HiSpatialForConditionalGeneration | None:
    """The plain trained model (LoRA merged). FSDP shards are gathered first: a collective on every rank, and only
    rank 0 gets a model (rebuilt unsharded from the full state dict); the other ranks get None."""
    if not is_sharded(module.model):
        return module.base_model()
    state = gather_full_state_dict(module.model)
    if rank_zero_only.rank != 0:
        return None
    fresh = HiSpatialModule(build_model_and_processor(config)[0], config)
    fresh.model.load_state_dict(state)
    return fresh.base_model()


def train_checkpoint(
    root: Path, config: TrainConfig, *, mlflow_dir: Path | None = None, callbacks: Sequence[L.Callback] = ()
) -> TrainReport:
    """Train on `<root>`'s QA dataset and write `<root>/checkpoints/<name>/` linked to its MLflow run.

    Continues an interrupted run with the same config and data (same MLflow run, from its last resume
    checkpoint) unless `config.resume` is off. Every process of a distributed launch calls this; rank 0 writes."""
    started = time.time()
    root = Path(root)
    L.seed_everything(config.seed, workers=True, verbose=False)
    model, processor = build_model_and_processor(config)
    point_map_input = config.model.point_map_input
    data = build_training_data(
        root,
        config.data,
        config.model.image_size,
        point_map_input,
        config.seed,
        max_depth=config.model.max_depth,
    )
    collator = Collator(processor, point_map_input)

    tracking_uri, artifact_location = resolve_tracking(config, mlflow_dir)
    ensure_experiment(mlflow.MlflowClient(tracking_uri), config.mlflow.experiment, artifact_location)
    logger, resume, run_name, tracking_uri = _open_run(root, config, tracking_uri, artifact_location)
    try:
        return _fit_and_save(
            root,
            config,
            model,
            processor,
            data,
            collator,
            logger,
            tracking_uri,
            resume,
            run_name,
            callbacks,
            started,
        )
    except BaseException:
        logger.finalize("failed")  # the run says so; the resume state stays for the next start
        raise
    finally:
        if resume is not None:
            resume.release()


def _fit_and_save(
    root, config, model, processor, data, collator, logger, tracking_uri, resume, run_name, callbacks, started
) -> TrainReport:
    logger.log_hyperparams(flatten_config(config))
    client, run_id = logger.experiment, logger.run_id
    client.log_dict(run_id, config.model_dump(mode="json"), "config/train_config.json")
    client.log_dict(run_id, data.stats, "config/data_stats.json")
    log_qa_release(client, run_id, root)

    module = HiSpatialModule(model, config)
    client.log_param(run_id, "num_parameters", num_parameters(model))
    client.log_param(run_id, "num_trainable_parameters", num_parameters(module.model, trainable_only=True))
    sampler = GlobalBatchSampler(config.batch_size)
    devices, num_nodes = resolve_devices(config)
    resume_callbacks = _resume_callbacks(config, resume)
    trainer = L.Trainer(
        max_steps=config.max_steps,
        accelerator=config.accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=build_strategy(config),
        precision=config.precision,
        logger=logger,
        callbacks=[SamplerPosition(sampler), GlobalBatchLoss(), *resume_callbacks, *callbacks],
        log_every_n_steps=config.log_every_n_steps,
        accumulate_grad_batches=config.accumulate_grad_batches,
        gradient_clip_val=config.gradient_clip_val,
        enable_checkpointing=bool(resume_callbacks),
        use_distributed_sampler=False,  # GlobalBatchSampler splits the global batch by rank itself
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    last = resume.last_checkpoint if resume is not None else None
    resumed_from = (
        int(torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"])
        if last is not None
        else None
    )
    if resumed_from is not None:
        log.info("resuming MLflow run %s from %s (step %d)", run_id, last, resumed_from)
    trainer.fit(
        module,
        train_dataloaders=_loader(
            IndexedMixture(data.train.factory, data.train.mixture, config.seed), sampler, collator
        ),
        ckpt_path=str(last) if last is not None else None,
        weights_only=True,
    )

    model = _trained_model(module, config)
    metrics, preview = {}, []
    if trainer.is_global_zero and data.val:
        metrics, preview, val_items = evaluate_examples(
            model, collator, data.val, max_new_tokens=config.eval_max_new_tokens
        )
    metrics["train/loss_final"] = float(trainer.callback_metrics.get("train/loss", float("nan")))
    for key, value in metrics.items():
        client.log_metric(run_id, key, value, step=trainer.global_step)
    if trainer.is_global_zero and data.val:  # per-item results: what intervals and paired comparisons need
        log_val_items(
            client,
            run_id,
            val_items,
            seed=config.seed,
            variant=config.model.variant,
            levels=config.tags["levels"],
        )

    name = config.checkpoint_name or run_name
    checkpoint_dir = root / "checkpoints" / name
    if trainer.is_global_zero:
        save_checkpoint(
            checkpoint_dir,
            model.cpu(),
            processor,
            config,
            extra={
                "mlflow_run_id": run_id,
                "mlflow_tracking_uri": tracking_uri,
                "metrics": metrics,
                "global_step": trainer.global_step,
            },
        )
        if config.mlflow.log_model_artifacts:
            client.log_artifacts(run_id, str(checkpoint_dir), "checkpoint")
        client.set_tag(run_id, "checkpoint_dir", str(checkpoint_dir.resolve()))
    logger.finalize("success")
    if trainer.is_global_zero and resume is not None:
        resume.finish()
    return TrainReport(
        checkpoint_dir=checkpoint_dir,
        run_id=run_id,
        experiment_id=logger.experiment_id,
        tracking_uri=tracking_uri,
        metrics=metrics,
        num_steps=trainer.global_step,
        seconds=time.time() - started,
        data_stats=data.stats,
        preview=preview,
        resumed_from_step=resumed_from,
    )


def build_parser() -> argparse.ArgumentParser:
    """The training CLI's arguments (also what deploy/ manifests are checked against)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, required=True, help="data root with qa_shards/ and object_references/"
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(train_presets()))
    parser.add_argument("--config", type=Path, help="JSON TrainConfig (overrides --preset)")
    parser.add_argument("--variant", choices=["rgb", "xyz", "rel_depth"])
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--backbone", help="PaliGemma hub id or local path (real weights)")
    parser.add_argument("--strategy", choices=["auto", "ddp", "fsdp"])
    parser.add_argument("--accelerator", help="cpu, gpu, auto")
    parser.add_argument("--devices", help="per node (torchrun's --nproc-per-node overrides it)")
    parser.add_argument("--num-nodes", type=int, help="(torchrun's --nnodes overrides it)")
    parser.add_argument("--batch-size", type=int, help="per process; the global batch is this x processes")
    parser.add_argument("--checkpoint-every", type=int, help="resume checkpoint every N steps (0 = none)")
    parser.add_argument("--checkpoint-name", help="directory name under <root>/checkpoints/")
    parser.add_argument("--report", type=Path, help="rank 0 writes the TrainReport here as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = (
        TrainConfig.model_validate_json(args.config.read_text())
        if args.config
        else TrainConfig.preset(args.preset)
    )
    updates: dict[str, object] = {}
    for field_name, value in (
        ("max_steps", args.max_steps),
        ("strategy", args.strategy),
        ("accelerator", args.accelerator),
        ("num_nodes", args.num_nodes),
        ("batch_size", args.batch_size),
        ("checkpoint_every_n_steps", args.checkpoint_every),
        ("checkpoint_name", args.checkpoint_name),
    ):
        if value is not None:
            updates[field_name] = value
    if args.devices is not None:
        updates["devices"] = int(args.devices) if args.devices.isdigit() else args.devices
    model_updates: dict[str, object] = {}
    if args.variant:
        model_updates["variant"] = args.variant
    if args.backbone:
        model_updates["backbone"] = args.backbone
    if model_updates:
        updates["model"] = config.model.model_copy(update=model_updates)
    config = TrainConfig.model_validate(config.model_copy(update=updates).model_dump())
    report = train_checkpoint(args.root, config)
    if rank_zero_only.rank != 0:
        return
    if args.report:
        atomic_write_json(args.report, report_dict(report))
    print(
        json.dumps(
            {
                "checkpoint_dir": str(report.checkpoint_dir),
                "run_id": report.run_id,
                "metrics": report.metrics,
                "seconds": round(report.seconds, 1),
                "resumed_from_step": report.resumed_from_step,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
