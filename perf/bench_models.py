"""Throughput (images/s) of the in-the-wild models with random weights: MoGe-2 point maps and SAM-2 box masks.

Random weights cost the same FLOPs as trained ones, so these numbers size a GPU job before any weights are
downloaded. `--size real` builds production-sized architectures (MoGe-2 with a ViT-L/14 backbone at the paper's
token budget on 640x480 images; SAM-2.1 Hiera-L at 1024 px) and is meant for a GPU (`--device cuda`);
`--size tiny` is the CPU smoke path (ViT-S MoGe-2 at 64 tokens, Hiera-T SAM-2 at 256 px).

    .venv/bin/python perf/bench_models.py --size tiny --images 4
    python perf/bench_models.py --size real --device cuda --images 32 --batch 8
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from assets.records import Box2D
from assets.wild.moge import MoGeEstimator, tiny_moge_config
from assets.wild.segment import Sam2Segmenter


def large_moge_config() -> dict:
    """A MoGe-2 config of the production model's size class (ViT-L/14, 1024-wide features). The released
    checkpoint's exact neck/head widths may differ; this is for throughput, not for loading weights."""
    config = tiny_moge_config()
    config["encoder"] = {"backbone": "dinov2_vitl14", "intermediate_layers": 4, "dim_out": 1024}
    widths = [1024, 512, 256, 128, 64]
    config["neck"].update(dim_in=[1024 + 2] + [2] * 4, dim_res_blocks=widths)
    for head, out in (("points_head", 3), ("mask_head", 1)):
        config[head].update(dim_in=widths, dim_res_blocks=[256, 128, 64, 32, 32], dim_out=[None] * 4 + [out])
    config["scale_head"] = {"dims": [1024, 256, 1]}
    config["num_tokens_range"] = [1200, 3600]
    return config


def time_it(fn, repeats: int) -> float:
    fn()  # warm-up (CUDA kernels, allocator)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=["tiny", "real"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4, help="images per timed run")
    parser.add_argument("--batch", type=int, default=4, help="MoGe-2 batch size")
    parser.add_argument("--boxes", type=int, default=8, help="SAM-2 box prompts per image")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)

    rng = np.random.default_rng(0)
    if args.size == "real":
        from moge.model.v2 import MoGeModel

        height, width, tokens, sam_px = 480, 640, 3600, 1024
        moge = MoGeEstimator(
            MoGeModel(**large_moge_config()),
            device=args.device,
            num_tokens=tokens,
            batch_size=args.batch,
            fov_x_deg=60.0,
        )
        from sam2.build_sam import build_sam2
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        sam = Sam2Segmenter(
            SAM2ImagePredictor(
                build_sam2("configs/sam2.1/sam2.1_hiera_l.yaml", ckpt_path=None, device=args.device)
            )
        )
    else:
        height, width, tokens, sam_px = 120, 160, 64, 256
        moge = MoGeEstimator.tiny(
            device=args.device, num_tokens=tokens, batch_size=args.batch, fov_x_deg=60.0
        )
        sam = Sam2Segmenter.tiny(device=args.device, image_size=sam_px)
    images = [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(args.images)]
    boxes = [
        Box2D(x0=float(x), y0=float(y), x1=float(x + width // 4), y1=float(y + height // 4))
        for x, y in zip(
            rng.integers(0, 3 * width // 4, args.boxes),
            rng.integers(0, 3 * height // 4, args.boxes),
            strict=True,
        )
    ]

    params = sum(p.numel() for p in moge.model.parameters()) / 1e6
    seconds = time_it(lambda: moge.estimate_batch(images), 1)
    print(
        f"MoGe-2 ({args.size}, {params:.1f} M params, {tokens} tokens, {width}x{height}, batch {args.batch}, "
        f"{args.device}, fp16={moge.use_fp16}): {args.images / seconds:.2f} images/s"
    )
    params = sum(p.numel() for p in sam.predictor.model.parameters()) / 1e6
    seconds = time_it(lambda: [sam.segment(img, boxes) for img in images], 1)
    print(
        f"SAM-2.1 ({args.size}, {params:.1f} M params, {sam_px} px, {args.boxes} boxes/image, {args.device}): "
        f"{args.images / seconds:.2f} images/s"
    )


if __name__ == "__main__":
    main()
