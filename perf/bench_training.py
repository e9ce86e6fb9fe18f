"""Training throughput of the RGB-D VLM: samples/s and tokens/s per optimiser step, and peak memory.

    python perf/bench_training.py                                   # tiny model, CPU
    python perf/bench_training.py --device cuda --arch paligemma2-3b-448 --batch-size 4 --precision bf16

Random weights and random inputs of the real shapes (image tokens + a prompt and answer of `--text-tokens`), the
same module, loss and optimiser as training (frozen SigLIP, AdamW over conv + projector + language model), so the
number measures the model and optimiser, not data loading. The first `--warmup` steps are not timed.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from training.config import MODEL_PRESETS, tiny_train_config
from training.model import build_random_model, num_parameters
from training.module import HiSpatialModule


def make_batch(
    arch, batch_size: int, text_tokens: int, vocab: int, image_token_id: int, device, with_points: bool
):
    n_image = arch.num_image_tokens
    prompt = text_tokens // 2
    seq = n_image + text_tokens
    input_ids = torch.randint(0, min(vocab, image_token_id), (batch_size, seq))
    input_ids[:, :n_image] = image_token_id
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, n_image + prompt :] = 1
    labels = torch.where(token_type_ids == 1, input_ids, torch.full_like(input_ids, -100))
    channels = 7 if with_points else 3
    pixel_values = torch.randn(batch_size, channels, arch.image_size, arch.image_size)
    if with_points:
        pixel_values[:, 3:6] = pixel_values[:, 3:6].abs() * 3
        pixel_values[:, 6] = 1.0
    batch = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "token_type_ids": token_type_ids,
        "pixel_values": pixel_values,
        "labels": labels,
    }
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["tasks"] = ["bench"] * batch_size
    return batch, batch_size * seq


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="tiny", choices=sorted(MODEL_PRESETS))
    parser.add_argument("--variant", default="xyz", choices=["rgb", "xyz", "rel_depth"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--text-tokens", type=int, default=48)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    arch = MODEL_PRESETS[args.arch].model_copy(update={"variant": args.variant})
    vocab = arch.vocab_size or 2048
    image_token_id = vocab - 64 if arch.vocab_size else 1500
    config = tiny_train_config(model=arch, gradient_checkpointing=args.gradient_checkpointing)
    # built directly on the device in the target dtype (the 3B model would need 12 GB of host RAM in fp32)
    torch.set_default_dtype(dtype)
    with device:
        model = build_random_model(arch, vocab, image_token_id)
    torch.set_default_dtype(torch.float32)
    module = HiSpatialModule(model, config).to(device)
    optimizer = module.configure_optimizers()["optimizer"]
    batch, total_tokens = make_batch(
        arch, args.batch_size, args.text_tokens, vocab, image_token_id, device, arch.point_map_input != "none"
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> float:
        loss, _ = module(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    result = {
        "arch": args.arch,
        "variant": args.variant,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "precision": args.precision,
        "batch_size": args.batch_size,
        "sequence_length": total_tokens // args.batch_size,
        "parameters": num_parameters(model),
        "trainable_parameters": num_parameters(model, trainable_only=True),
        "seconds_per_step": seconds / args.steps,
        "samples_per_second": args.batch_size * args.steps / seconds,
        "tokens_per_second": total_tokens * args.steps / seconds,
        "final_loss": loss,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
