"""Real-data importers: each writes the source_images layout, rejects bad files with reasons, loses nothing."""

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from assets.records import Box2D
from assets.sources import (
    coco_shard,
    images_shard,
    match_categories,
    relabel_objects,
)
from assets.storage import (
    encode_jpeg,
    read_jsonl,
    read_scenes,
)


def _rgb(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_image_folder_quarantines_corrupt_files(tmp_path):
    src = tmp_path / "web"
    (src / "sub").mkdir(parents=True)
    (src / "a.jpg").write_bytes(encode_jpeg(_rgb(0)))
    (src / "sub" / "b.jpg").write_bytes(encode_jpeg(_rgb(1, 30, 40)))
    (src / "broken.jpg").write_bytes(b"\xff\xd8not a jpeg")
    (src / "notes.txt").write_text("ignored")
    root = tmp_path / "data"
    report = images_shard(root, "web-000", src)
    assert (report.num_in, report.num_out) == (3, 2)
    assert (
        report.rejections[0].item.endswith("broken.jpg") and "unreadable image" in report.rejections[0].reason
    )
    shard = root / "source_images" / "web-000"
    assert (shard / "quarantine" / "broken.jpg").read_bytes() == b"\xff\xd8not a jpeg"
    assert read_jsonl(shard / "rejected.jsonl")[0]["item"].endswith("broken.jpg")
    scenes = read_scenes(shard / "scenes.jsonl")
    # "sub/b" reduces to "sub_b" (as a file named sub_b.jpg would): the reduced name carries its original's hash
    suffix = hashlib.sha256(b"sub/b").hexdigest()[:8]
    assert [s.scene_id for s in scenes] == ["web-000-a", f"web-000-sub_b-{suffix}"]
    assert (scenes[1].intrinsics.width, scenes[1].intrinsics.height) == (40, 30)
    assert all((root / s.image_file).exists() for s in scenes)
    assert json.loads((shard / "_manifest.json").read_text())["num_rejected"] == 1


@pytest.mark.parametrize("shard", ["..", ".", ".hidden", "Web-000", "a/b", "x" * 129, ""])
def test_a_bad_shard_name_is_refused_before_anything_is_written(tmp_path, shard):
    """One rule for every writer and the Dagster layer (assets.storage.check_shard_name): `..` used to pass the
    importers' own pattern and fail inside atomic_dir, leaving a `.tmp-*` directory behind."""
    from assets.storage import check_shard_name
    from assets.synthetic import SyntheticConfig, write_synthetic_shard
    from hispatial_dagster.shards import ShardSpecError, validate_shard_key

    src = tmp_path / "web"
    src.mkdir()
    (src / "a.jpg").write_bytes(encode_jpeg(_rgb(0)))
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="shard name"):
        images_shard(root, shard, src)
    with pytest.raises(ValueError, match="shard name"):
        write_synthetic_shard(root, shard, SyntheticConfig(num_scenes=1))
    with pytest.raises(ShardSpecError, match="shard name"):
        validate_shard_key(shard)
    assert not root.exists() and not list(tmp_path.glob("**/.*tmp-*"))
    assert check_shard_name("web-000.v2_a") == "web-000.v2_a"


def test_coco_boxes_become_typed_2d_annotations(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "1.jpg").write_bytes(encode_jpeg(_rgb(0)))
    (images / "2.jpg").write_bytes(encode_jpeg(_rgb(1)))
    ann = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "2.jpg", "width": 99, "height": 48},
            {"id": 3, "file_name": "missing.jpg", "width": 64, "height": 48},
        ],
        "categories": [{"id": 7, "name": "chair"}, {"id": 8, "name": "cup"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 30], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 8, "bbox": [50, 40, 30, 30], "iscrowd": 0},  # clipped
            {"id": 3, "image_id": 1, "category_id": 8, "bbox": [0, 0, 2, 2], "iscrowd": 0},  # too small
            {"id": 4, "image_id": 1, "category_id": 7, "bbox": [0, 0, 30, 30], "iscrowd": 1},
            {
                "id": 5,
                "image_id": 1,
                "category_id": 7,
                "bbox": [70, 50, 20, 20],
                "iscrowd": 0,
            },  # outside the image
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(ann))
    report = coco_shard(tmp_path / "data", "o365-000", path, images)
    assert report.num_out == 1 and len(report.rejections) == 2
    reasons = " ".join(r.reason for r in report.rejections)
    assert "size mismatch" in reasons and "missing.jpg" in reasons
    scene = read_scenes(tmp_path / "data/source_images/o365-000/scenes.jsonl")[0]
    assert scene.objects == [] and "annotations_2d" not in scene.metadata
    boxes = scene.annotations_2d
    assert [(b.category, b.annotation_id, b.score) for b in boxes] == [("chair", 1, 1.0), ("cup", 2, 1.0)]
    assert boxes[0].box2d.as_list() == [10.0, 5.0, 30.0, 35.0] and boxes[1].box2d.as_list() == [
        50.0,
        40.0,
        64.0,
        48.0,
    ]
    assert report.metadata["boxes_2d"] == 2


def test_hungarian_labels_need_iou_04():
    gt = [
        Box2D(x0=0, y0=0, x1=10, y1=10),
        Box2D(x0=20, y0=0, x1=30, y1=10),
        Box2D(x0=50, y0=50, x1=60, y1=60),
    ]
    dets = [
        (Box2D(x0=21, y0=0, x1=31, y1=10), "lamp"),
        (Box2D(x0=1, y0=1, x1=11, y1=11), "chair"),
        (Box2D(x0=55, y0=55, x1=65, y1=65), "cup"),
    ]  # the cup overlaps its box at IoU 25/175 < 0.4
    assert match_categories(gt, dets) == ["chair", "lamp", None]
    assert match_categories(gt, []) == [None, None, None]


def test_relabel_objects_only_touches_unlabeled_matched_boxes():
    from assets.records import Box3D, Intrinsics, Scene, SceneObject

    box3d = Box3D(center_cam=(0, 0, 3), width=1, height=1, length=1, yaw=1.6)
    boxes = [
        Box2D(x0=0, y0=0, x1=10, y1=10),
        Box2D(x0=20, y0=0, x1=30, y1=10),
        Box2D(x0=40, y0=0, x1=50, y1=10),
    ]
    objects = [
        SceneObject(instance_id=i + 1, category=c, box2d=b, box3d=box3d)
        for i, (c, b) in enumerate(zip(["object", "sofa", "object"], boxes, strict=True))
    ]
    scene = Scene(
        scene_id="s",
        source="ca1m",
        shard="x",
        image_file="i.jpg",
        objects=objects,
        intrinsics=Intrinsics(fx=50, fy=50, cx=32, cy=24, width=64, height=48),
    )
    detections = [(Box2D(x0=1, y0=0, x1=10, y1=10), "chair"), (Box2D(x0=20, y0=0, x1=30, y1=10), "table")]
    relabelled, count = relabel_objects(scene, detections)
    assert count == 1 and [o.category for o in relabelled.objects] == ["chair", "sofa", "object"]


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
