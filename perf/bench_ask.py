"""`hispatial ask` throughput: latency per question (one at a time) and questions/s in batch mode.

    python perf/bench_ask.py                                          # tiny model + tiny MoGe-2, CPU
    python perf/bench_ask.py --moge none                              # generation only
    python perf/bench_ask.py --arch paligemma2-3b-448 --moge real --device cuda --precision bf16

Everything goes through `SpatialAsker` (image decode, box drawing, MoGe-2, prompt rendering, batched greedy
generation, answer parsing) on synthetic 640x480 pictures with two boxes and a distance question. Random weights
of the real architectures (nothing is downloaded): `--arch` picks the model preset, `--moge real` a ViT-L/14
MoGe-2 (perf/bench_models.py). A random model rarely emits EOS, so every question generates exactly
`--max-new-tokens` tokens, which makes tokens/s comparable across runs. MoGe-2 time per image is timed on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.asker import AskRequest, SpatialAsker  # noqa: E402
from inference.loading import LoadedCheckpoint  # noqa: E402
from training.config import MODEL_PRESETS  # noqa: E402


def build_asker(args: argparse.Namespace) -> SpatialAsker:
    """A random model of `--arch` in memory (a 3B checkpoint is not written to disk for a benchmark)."""
    from training.model import build_random_model
    from training.tokenizer import build_processor

    arch = MODEL_PRESETS[args.arch].model_copy(update={"variant": "xyz"})
    processor = build_processor(arch.image_size, arch.patch_size)
    tok = processor.tokenizer
    vocab = max(arch.vocab_size or 0, len(tok))
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    with torch.device(args.device):  # a 3B model is initialised where it will run, not on the CPU first
        model = build_random_model(arch, vocab, tok.convert_tokens_to_ids("<image>"))
    model = model.to(dtype).eval()
    loaded = LoadedCheckpoint(
        model=model,
        processor=processor,
        image_size=arch.image_size,
        point_map_input=model.point_map_input,
        source=f"random {args.arch}",
        kind="hispatial",
    )
    estimator = None
    if args.moge != "none":
        from assets.wild.moge import MoGeEstimator

        if args.moge == "tiny":
            estimator = MoGeEstimator.tiny(device=args.device)
        else:
            from bench_models import large_moge_config
            from moge.model.v2 import MoGeModel

            estimator = MoGeEstimator(MoGeModel(**large_moge_config()), device=args.device, num_tokens=1200)
    return SpatialAsker(loaded, estimator, max_new_tokens=args.max_new_tokens, device=args.device)


def requests(n: int, seed: int = 0) -> list[AskRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rgb = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        out.append(
            AskRequest(
                image=rgb,
                question="How far is {b1} from {b2}?",
                id=str(i),
                boxes=[[40, 60, 200, 300], [360, 120, 600, 420]],
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", default="tiny", choices=sorted(MODEL_PRESETS))
    parser.add_argument("--moge", default="tiny", choices=["tiny", "real", "none"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--single", type=int, default=8, help="questions asked one at a time for the latency")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="In CPU autocast")
    torch.manual_seed(0)

    asker = build_asker(args)
    work = requests(args.questions)
    asker.ask_many(work[:2], batch_size=2)  # warm-up: first-call allocations, lazy imports
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    latencies = []
    for request in work[: args.single]:
        started = time.perf_counter()
        asker.ask(request)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    answers = asker.ask_many(work, batch_size=args.batch_size)
    batch_seconds = time.perf_counter() - started
    # random MoGe-2 weights now and then yield focal lengths no camera has; such a question is answered with
    # its error (it still counts in the time, as a user's would)
    failed = [str(a) for a in answers if isinstance(a, Exception)]

    moge_seconds = None
    if asker.estimator is not None:
        images = [r.image for r in work[:4]]
        started = time.perf_counter()
        for image in images:
            # DataError (a ValueError): the random weights' focal length; the time still counts
            with contextlib.suppress(ValueError):
                asker.estimator.estimate(image)
        moge_seconds = (time.perf_counter() - started) / len(images)

    result = {
        "arch": args.arch,
        "moge": args.moge,
        "device": args.device,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "max_new_tokens": args.max_new_tokens,
        "latency_s_median": round(statistics.median(latencies), 4),
        "latency_s_min": round(min(latencies), 4),
        "batch_size": args.batch_size,
        "questions": len(work),
        "batch_questions_per_s": round(len(work) / batch_seconds, 3),
        "batch_tokens_per_s": round(len(work) * args.max_new_tokens / batch_seconds, 1),
        "moge_s_per_image": None if moge_seconds is None else round(moge_seconds, 4),
        "failed": len(failed),
        "first_failure": failed[0] if failed else None,
    }
    if args.device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
