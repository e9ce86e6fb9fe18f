"""The LightningModule: what is trained, the optimiser and schedule, and what is logged per step and per task."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

from training.config import LossReduction, TrainConfig
from training.inputs import model_inputs
from training.model import HiSpatialForConditionalGeneration


def token_losses(
    logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token cross-entropy per position and which positions count: (B, T, V), (B, T) -> (B, T-1) twice.

    A position counts when its label is not -100 and, given an attention mask, its target token is attended (the
    official loss drops unattended targets even when they carry a label)."""
    shift_logits = logits[:, :-1].float()  # token t predicts label t + 1
    shift_labels = labels[:, 1:]
    counted = shift_labels != -100
    if attention_mask is not None:
        counted = counted & (attention_mask[:, 1:] != 0)
    token_loss = nn.functional.cross_entropy(
        shift_logits.transpose(1, 2),
        shift_labels.masked_fill(~counted, -100),
        ignore_index=-100,
        reduction="none",
    )  # (B, T-1)
    return token_loss, counted


def per_example_loss(
    logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy over each example's answer tokens: (B, T, V), (B, T) -> (B,)."""
    token_loss, counted = token_losses(logits, labels, attention_mask)
    return token_loss.sum(dim=1) / counted.sum(dim=1).clamp(min=1)


def batch_loss(
    logits: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None, reduction: LossReduction
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to optimise, per-example losses for logging). `token-mean` is the official loss: one mean over
    every answer token of the batch, so an example weighs by its answer length; `example-mean` weighs examples
    equally. The per-example losses are the same either way."""
    token_loss, counted = token_losses(logits, labels, attention_mask)
    per_example = token_loss.sum(dim=1) / counted.sum(dim=1).clamp(min=1)
    if reduction == "token-mean":
        return token_loss.sum() / counted.sum().clamp(min=1), per_example
    return per_example.mean(), per_example


def lr_multiplier(config: TrainConfig):
    """The schedule as a multiplier of the base learning rate per optimiser step (for LambdaLR)."""
    if config.lr_schedule == "constant":  # official: transformers get_constant_schedule
        return lambda step: 1.0
    warmup = max(1, config.warmup_steps)
    return lambda step: min(1.0, (step + 1) / warmup)


def apply_lora(model: HiSpatialForConditionalGeneration, config: TrainConfig) -> nn.Module:
    """LoRA on the language model's linear layers only; the point-map conv and projector stay fully trainable."""
    from peft import LoraConfig, get_peft_model

    assert config.lora is not None
    targets = "|".join(config.lora.target_modules)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=rf".*language_model.*\.({targets})",
    )
    peft_model = get_peft_model(model, lora)
    for name, param in peft_model.named_parameters():
        if ".depth_encoder." in name or ".multi_modal_projector." in name:
            param.requires_grad_(True)
    return peft_model


class HiSpatialModule(L.LightningModule):
    """Frozen SigLIP; point-map conv, projector and language model (full fine-tune or LoRA) trained with AdamW."""

    def __init__(self, model: HiSpatialForConditionalGeneration, config: TrainConfig):
        super().__init__()
        self.config = config
        model.freeze_vision_tower()
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = apply_lora(model, config) if config.lora is not None else model

    def base_model(self) -> HiSpatialForConditionalGeneration:
        """The plain model with LoRA merged in (what a checkpoint stores)."""
        if self.config.lora is not None:
            return self.model.merge_and_unload()
        return self.model

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model(**model_inputs(batch))  # the point map joins the RGB here, still float32
        return batch_loss(
            outputs.logits, batch["labels"], batch["attention_mask"], self.config.loss_reduction
        )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, losses = self(batch)
        batch_size = len(batch["tasks"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self._log_per_task("train", batch["tasks"], losses.detach())
        return loss

    def _log_per_task(self, stage: str, tasks: Sequence[str], losses: torch.Tensor) -> None:
        # Per-task means are logged with the batch's count as weight, so epoch/interval aggregation is exact.
        for task in sorted(set(tasks)):
            mask = torch.tensor([t == task for t in tasks], device=losses.device)
            self.log(f"{stage}/loss/{task}", losses[mask].mean(), batch_size=int(mask.sum()))

    def configure_optimizers(self):
        lr = self.config.learning_rate
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            decays = param.ndim >= 2 and "norm" not in name
            groups.setdefault((decays, ".depth_encoder." in name), []).append(param)
        optimizer = torch.optim.AdamW(
            [
                {
                    "params": params,
                    "weight_decay": self.config.weight_decay if decays else 0.0,
                    "lr": lr * (self.config.point_encoder_lr_scale if is_conv else 1.0),
                }
                for (decays, is_conv), params in groups.items()
            ],
            lr=lr,
            betas=self.config.betas,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(self.config))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_model(self) -> None:
        """FSDP2 (strategy "fsdp"): Lightning's ModelParallelStrategy sets a device mesh and calls this once the
        process group exists; shard per transformer block (training/distributed.py). No-op for other strategies."""
        if self.device_mesh is not None:
            from training.distributed import fully_shard_model

            fully_shard_model(self.model, self.device_mesh["data_parallel"])
