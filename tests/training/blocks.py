"""Block-world scenes for the training tests: a grid of fronto-parallel cells, each at its own random depth and with
its own random colour (independent of depth, so RGB alone says nothing about depth ordering).

`write_block_root` lays them out exactly as the pipeline does (`object_references/<shard>/scenes.jsonl`, JPEG
images, log-encoded depth PNGs, `qa_shards/<shard>/qa.parquet`), so the tests read them through the same code as
real data without depending on the other stages' progress.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from assets.geometry import depth_to_points
from assets.qa.shards import pairs_to_table
from assets.records import (
    Box2D,
    Box3D,
    DrawBox,
    Intrinsics,
    Level,
    QAFormat,
    QAPair,
    Scene,
    SceneObject,
    Task,
)
from assets.storage import atomic_write_bytes, encode_depth_png, encode_jpeg, write_scenes

PALETTE = {"red": (200, 40, 40), "green": (40, 160, 60), "blue": (40, 70, 200), "yellow": (220, 200, 40)}


def block_scene(rng: np.random.Generator, size: int, grid: int) -> tuple[np.ndarray, np.ndarray, Intrinsics]:
    """(rgb (size, size, 3) uint8, z-depth (size, size) meters, intrinsics) of one block world."""
    cell = size // grid
    depth_cells = rng.uniform(1.0, 8.0, size=(grid, grid))
    colour_cells = rng.integers(30, 226, size=(grid, grid, 3))
    depth = np.kron(depth_cells, np.ones((cell, cell)))
    rgb = np.kron(colour_cells, np.ones((cell, cell, 1))).astype(np.uint8)
    intrinsics = Intrinsics(fx=size, fy=size, cx=size / 2, cy=size / 2, width=size, height=size)
    return rgb, depth.astype(np.float32), intrinsics


def block_points(depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    return depth_to_points(depth, intrinsics).astype(np.float32)


def _pairs_for(scene: Scene, rng: np.random.Generator) -> list[QAPair]:
    obj = scene.objects[0]
    colour = str(rng.choice(list(PALETTE)))
    base = {"scene_id": scene.scene_id, "shard": scene.shard}
    return [
        QAPair(
            qa_id=f"{scene.scene_id}-size",
            level=Level.L1,
            task=Task.SIZE,
            format=QAFormat.FREE_FORM,
            question=f"How wide is the block outlined in {colour}?",
            answer=f"{obj.box3d.width:.2f} m",
            value=round(obj.box3d.width, 2),
            unit="m",
            draw_boxes=[DrawBox(instance_id=1, color=colour, box2d=obj.box2d)],
            **base,
        ),
        QAPair(
            qa_id=f"{scene.scene_id}-dir",
            level=Level.L2,
            task=Task.RELATIVE_DIRECTION,
            format=QAFormat.TRUE_FALSE,
            question="True or false: the block is left of the camera center.",
            answer="True" if obj.box3d.center_cam[0] < 0 else "False",
            **base,
        ),
        QAPair(
            qa_id=f"{scene.scene_id}-count",
            level=Level.L3,
            task=Task.SPATIAL_COUNTING,
            format=QAFormat.MULTIPLE_CHOICE,
            question="How many blocks are closer than 3 m?",
            options=["1", "2", "3"],
            correct_index=1,
            answer="B. 2",
            **base,
        ),
    ]


def write_block_root(
    root: Path, num_scenes: int = 12, size: int = 56, grid: int = 4, seed: int = 0, shard: str = "blocks-000"
) -> list[Scene]:
    """Write a data root of block-world scenes with three stored QA pairs each (L1, L2, L3)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    scenes, pairs = [], []
    for index in range(num_scenes):
        rgb, depth, intrinsics = block_scene(rng, size, grid)
        scene_id = f"{shard}-{index:04d}"
        image_file = f"source_images/{shard}/images/{scene_id}.jpg"
        depth_file = f"point_maps/{shard}/depth/{scene_id}.png"
        atomic_write_bytes(root / image_file, encode_jpeg(rgb, quality=95))
        atomic_write_bytes(root / depth_file, encode_depth_png(depth))
        cell = size // grid
        z = float(depth[0, 0])
        box3d = Box3D(center_cam=(-0.3 * z, -0.3 * z, z), width=0.4, height=0.4, length=0.1, yaw=0.0)
        obj = SceneObject(
            instance_id=1, category="block", box2d=Box2D(x0=0, y0=0, x1=cell, y1=cell), box3d=box3d
        )
        scene = Scene(
            scene_id=scene_id,
            source="blocks",
            shard=shard,
            intrinsics=intrinsics,
            objects=[obj],
            caption=f"A wall of {grid * grid} coloured blocks.",
            has_ground_truth_3d=True,
            image_file=image_file,
            depth_file=depth_file,
        )
        scenes.append(scene)
        pairs.extend(_pairs_for(scene, rng))
    write_scenes(root / "object_references" / shard / "scenes.jsonl", scenes)
    table = pairs_to_table(pairs, {scene.scene_id: scene for scene in scenes})  # the format's own writer
    (root / "qa_shards" / shard).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / "qa_shards" / shard / "qa.parquet")
    return scenes
