"""The in-the-wild path end to end under Dagster: `images` and `coco` shards through filtered_images -> point_maps
-> object_clouds -> object_references -> qa_shards with every model `tiny` (real classes, random weights) and the
smoke thresholds of `WildModels.smoke()`. Each shard carries bad items; they are rejected with their reasons at
the stage that meets them and the good items go on to QA pairs. Nothing is lost: every item in is either out or
in rejected.jsonl, at every stage."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from assets.geometry import box2d_from_mask
from assets.storage import encode_jpeg, read_jsonl, read_scenes
from assets.wild.box_scenes import render_box_scene
from hispatial_dagster import assets as hs_assets
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import WildModels
from hispatial_dagster.shards import ShardInbox, ShardSpec
from tests.hispatial_dagster.test_assets import STAGES, metadata_of, resources

SCENE_STAGES = ["filtered_images", "point_maps", "object_clouds", "object_references"]


def _photo(seed: int) -> tuple[np.ndarray, list]:
    """A rendered box scene shaded by instance (so SAM and CLIP see structure) and its objects' 2D boxes."""
    truth = render_box_scene(seed, width=96, height=72)
    shade = (truth.instance_ids * 40 + 30).astype(np.uint8)
    rgb = np.stack([shade, 255 - shade, np.full_like(shade, 128 + seed)], axis=-1)
    boxes = [box2d_from_mask(truth.instance_ids == i) for i in np.unique(truth.instance_ids) if i]
    return rgb, boxes


def _run(root: Path, shard: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [shard])
        result = dg.materialize(
            STAGES,
            partition_key=shard,
            instance=instance,
            resources={**resources(root), "wild_models": WildModels.smoke()},
        )
    assert result.success
    return result


def _assert_nothing_lost(root: Path, shard: str, result: dg.ExecuteInProcessResult) -> None:
    """At every scene stage: scenes in = scenes out + whole-scene rejections, and each rejection has a reason."""
    upstream = read_scenes(root / "source_images" / shard / "scenes.jsonl")
    for stage in SCENE_STAGES:
        out = read_scenes(root / stage / shard / "scenes.jsonl")
        rejected = read_jsonl(root / stage / shard / "rejected.jsonl")
        whole = {r["item"] for r in rejected if "/" not in r["item"]}
        assert {s.scene_id for s in upstream} == {s.scene_id for s in out} | whole, stage
        assert all(r["reason"] for r in rejected)
        meta = metadata_of(result, getattr(hs_assets, stage))
        assert meta["num_in"] == len(upstream) and meta["num_out"] == len(out)
        upstream = out
    assert upstream, "no scene reached the end of the path"
    qa = pd.read_parquet(root / "qa_shards" / shard / "qa.parquet")
    assert len(qa) > 0 and set(qa["scene_id"]) <= {s.scene_id for s in upstream}


@pytest.fixture(scope="module")
def photos() -> list[tuple[np.ndarray, list]]:
    return [_photo(seed) for seed in (0, 1)]


def test_images_shard_reaches_qa_and_contains_its_bad_items(tmp_path: Path, photos) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    for i, (rgb, _) in enumerate(photos):
        (folder / f"room{i}.jpg").write_bytes(encode_jpeg(rgb))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    Image.fromarray(np.full((1, 640, 3), 90, np.uint8)).save(folder / "rule-line.png")  # 1x640: too small
    root = tmp_path / "data"
    ShardInbox(str(root / "inbox")).write("web-smoke", ShardSpec(kind="images", path=str(folder)))
    result = _run(root, "web-smoke")

    source = read_jsonl(root / "source_images/web-smoke/rejected.jsonl")
    assert [(Path(r["item"]).name, r["reason"].split(":")[1].strip()) for r in source] == [
        ("corrupt.jpg", "unreadable image")
    ]
    filtered = {r["item"]: r["reason"] for r in read_jsonl(root / "filtered_images/web-smoke/rejected.jsonl")}
    assert filtered == {
        "web-smoke-rule-line": "DataError: image too small: 640x1, shorter side < min_image_side 32"
    }
    _assert_nothing_lost(root, "web-smoke", result)
    assert metadata_of(result, hs_assets.filtered_images)["clip_filter"] is True


def test_coco_shard_reaches_qa_and_contains_its_bad_items(tmp_path: Path, photos) -> None:
    folder = tmp_path / "coco"
    folder.mkdir()
    annotations: list[dict] = []
    for i, (rgb, boxes) in enumerate(photos, 1):
        (folder / f"{i}.jpg").write_bytes(encode_jpeg(rgb))
        annotations += [
            {
                "id": 10 * i + k,
                "image_id": i,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0],
            }
            for k, b in enumerate(boxes)
        ]
    annotations += [
        {"id": 98, "image_id": 1, "category_id": 1, "bbox": None},  # malformed: dropped alone
        {"id": 99, "category_id": 1, "bbox": [1, 1, 20, 20]},
    ]  # no image_id: belongs to nothing
    spec = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 96, "height": 72},
            {"id": 2, "file_name": "2.jpg", "width": 96, "height": 72},
            {"id": 3, "file_name": "missing.jpg", "width": 96, "height": 72},
        ],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": annotations,
    }
    (folder / "ann.json").write_text(json.dumps(spec))
    root = tmp_path / "data"
    ShardInbox(str(root / "inbox")).write(
        "coco-smoke", ShardSpec(kind="coco", path=str(folder), options={"annotation_file": "ann.json"})
    )
    result = _run(root, "coco-smoke")

    source = {r["item"]: r["reason"] for r in read_jsonl(root / "source_images/coco-smoke/rejected.jsonl")}
    assert set(source) == {"missing.jpg", "1.jpg/annotation 98", "annotation 99"}
    assert "malformed bbox" in source["1.jpg/annotation 98"] and "without image_id" in source["annotation 99"]
    scenes = read_scenes(root / "source_images/coco-smoke/scenes.jsonl")
    assert [len(s.annotations_2d) for s in scenes] == [len(boxes) for _, boxes in photos]
    _assert_nothing_lost(root, "coco-smoke", result)
