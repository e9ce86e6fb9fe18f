"""Peak memory of one large photo through the first in-the-wild stages, with and without the import size cap.

One `--width` x `--height` JPEG (default 12000x9000, a 108 MP camera photo) plus one 320x240 photo form an
`images` shard. Each stage (source_images, filtered_images, point_maps with the tiny MoGe-2) runs in a fresh
subprocess, and its peak resident memory (VmHWM) is reported, once with `max_image_side=None` (full size, the
behaviour before the cap) and once with the default cap (2048 px on the longer side).

    .venv/bin/python perf/bench_large_image.py [--width 12000 --height 9000] [--stages source filter points]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

STAGE_CODE = {
    "source": "from assets.sources import images_shard as f; r = f(root, 'big', Path(argv[3]), max_image_side=cap)",
    "filter": "from assets.filtering import filter_shard as f; r = f(root, 'big')",
    "points": (
        "from assets.point_maps import point_maps_shard as f; from assets.wild.moge import MoGeEstimator as M; "
        "r = f(root, 'big', estimator=M.tiny())"
    ),
}

RUNNER = """
import json, sys, time
from pathlib import Path
argv = sys.argv
root, cap = Path(argv[1]), json.loads(argv[2])
start = time.perf_counter()
{code}
# VmHWM: the peak RSS of this process image (ru_maxrss would carry the parent's peak across fork + exec)
hwm = [line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")]
print(json.dumps({{"peak_rss_mb": int(hwm[0].split()[1]) / 1024,
                  "seconds": time.perf_counter() - start, "num_out": r.num_out,
                  "rejections": [x.reason[:120] for x in r.rejections]}}))
"""


def _photo(path: Path, width: int, height: int) -> None:
    """A smooth gradient with mild noise: compresses like a photo, not like white noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=-1)
    noise = np.random.default_rng(0).normal(0, 6, (height, width, 1)).astype(np.float32)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=9000)
    parser.add_argument(
        "--stages", nargs="+", default=["source", "filter", "points"], choices=list(STAGE_CODE)
    )
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "raw"
        folder.mkdir()
        _photo(folder / "big.jpg", args.width, args.height)
        _photo(folder / "small.jpg", 320, 240)
        rows = []
        for label, cap in (("full size (before)", None), ("capped at 2048 (after)", 2048)):
            root = Path(tmp) / f"data-{cap}"
            for stage in args.stages:
                start = time.perf_counter()
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        RUNNER.format(code=STAGE_CODE[stage]),
                        str(root),
                        json.dumps(cap),
                        str(folder),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=repo,
                    env={"PYTHONPATH": str(repo), "PATH": "/usr/bin"},
                )
                if out.returncode != 0:
                    rows.append(
                        {
                            "run": label,
                            "stage": stage,
                            "error": out.stderr.strip().splitlines()[-1][:200],
                            "seconds": round(time.perf_counter() - start, 1),
                        }
                    )
                    break
                result = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(
                    {
                        "run": label,
                        "stage": stage,
                        "peak_rss_mb": round(result["peak_rss_mb"]),
                        "seconds": round(result["seconds"], 1),
                        "num_out": result["num_out"],
                        "rejections": result["rejections"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        print(json.dumps({"image": f"{args.width}x{args.height}", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
