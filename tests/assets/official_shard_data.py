"""A small hand-made data root (two scenes with depth, a QA shard) whose official-layout export the fixture harness
ran through the official loader (tests/fixtures/official_hispatial/make_fixtures_b.py). Everything is fixed by
hand, not generated, so the export stays the same bytes while our generators evolve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assets.qa.shards import pairs_to_table
from assets.records import TASK_LEVEL, Box2D, DrawBox, Intrinsics, QAFormat, QAPair, Scene, Task
from assets.storage import encode_depth_png, encode_jpeg, shard_dir, write_scenes

SHARD = "export-000"
H, W = 48, 64


def _image(seed: int) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return np.stack([(ii * 5 + seed * 40) % 256, (jj * 4) % 256, ((ii + jj) * 3) % 256], -1).astype(np.uint8)


def _depth(seed: int) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    depth = (1.0 + seed + 0.05 * ii + 0.02 * jj).astype(np.float32)
    depth[0, :4] = np.nan  # unknown pixels
    return depth


def _pair(scene_id: str, n: int, task: Task, fmt: QAFormat, question: str, answer: str, **kw) -> QAPair:
    return QAPair(
        qa_id=f"{scene_id}-{n}",
        scene_id=scene_id,
        shard=SHARD,
        level=TASK_LEVEL[task],
        task=task,
        format=fmt,
        question=question,
        answer=answer,
        **kw,
    )


def build_export_root(root: Path) -> Path:
    """Write object_references/<SHARD>/scenes.jsonl (+ images, depth) and qa_shards/<SHARD>/qa.parquet."""
    root = Path(root)
    scenes = []
    for seed in range(2):
        sid = f"{SHARD}-scene-{seed}"
        image_file = f"source_images/{SHARD}/images/{sid}.jpg"
        depth_file = f"point_maps/{SHARD}/depth/{sid}.png"
        for rel, data in [
            (image_file, encode_jpeg(_image(seed), quality=90)),
            (depth_file, encode_depth_png(_depth(seed))),
        ]:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        intrinsics = Intrinsics(fx=60.0 + seed, fy=58.0, cx=31.5, cy=24.25, width=W, height=H)
        scenes.append(
            Scene(
                scene_id=sid,
                source="synthetic",
                shard=SHARD,
                intrinsics=intrinsics,
                image_file=image_file,
                depth_file=depth_file,
            )
        )
    s0, s1 = scenes[0].scene_id, scenes[1].scene_id
    red = DrawBox(instance_id=1, color="red", box2d=Box2D(x0=4, y0=6, x1=20, y1=30))
    pairs = [
        _pair(
            s0,
            0,
            Task.RELATIVE_DISTANCE,
            QAFormat.MULTIPLE_CHOICE,
            "Which is closer to the lamp (highlighted by the red box)?\nA. the chair\nB. the table",
            "B. the table",
            options=["A. the chair", "B. the table"],
            correct_index=1,
            object_ids=[1, 2],
            references=["the lamp (highlighted by the red box)"],
            draw_boxes=[red],
        ),
        _pair(
            s0,
            1,
            Task.RELATIVE_DISTANCE,
            QAFormat.FREE_FORM,
            "How far is the lamp (highlighted by the red box) from the table?",
            "1.27 m",
            value=1.27,
            unit="m",
            object_ids=[1, 2],
            references=["the lamp (highlighted by the red box)"],
            draw_boxes=[red],
        ),
        _pair(
            s0,
            2,
            Task.RELATIONAL_COMPARISON,
            QAFormat.TRUE_FALSE,
            "True or False: the chair is left of the table.",
            "True",
            object_ids=[2, 3],
        ),
        _pair(
            s0,
            3,
            Task.POINT_QUERY,
            QAFormat.FREE_FORM,
            "What is the 3D position of <loc0100><loc0200>?",
            "0.10m 0.20m 1.50m",
        ),  # L0: not exported (the official loader asks L0 online)
        _pair(
            s1,
            0,
            Task.SPATIAL_COUNTING,
            QAFormat.FREE_FORM,
            "How many chairs are within 2 m of the table?",
            "3",
            value=3.0,
            object_ids=[4],
        ),
        _pair(
            s1,
            1,
            Task.SIZE,
            QAFormat.FREE_FORM,
            "How tall is the shelf?",
            "1.80 m",
            value=1.8,
            unit="m",
            object_ids=[5],
        ),
    ]
    refs = shard_dir(root, "object_references", SHARD)
    refs.mkdir(parents=True, exist_ok=True)
    write_scenes(refs / "scenes.jsonl", scenes)
    qa_dir = shard_dir(root, "qa_shards", SHARD)
    qa_dir.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    pq.write_table(pairs_to_table(pairs, {s.scene_id: s for s in scenes}), qa_dir / "qa.parquet")
    return root
