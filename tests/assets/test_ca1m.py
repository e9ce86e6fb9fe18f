"""CA-1M's native reader: its tar layout (cubifyanything/dataset.py), box geometry (boxes.py, corners computed by
that code: tests/fixtures/ca1m) and laser depth."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assets.ca1m import ca1m_shard
from assets.geometry import GravityFrame, box_corners_cam
from assets.stage import ShardFailure
from assets.storage import decode_depth_png, read_scenes

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "ca1m" / "frame.json").read_text())


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _depth_mm() -> np.ndarray:
    depth = np.full((96, 128), 3000, dtype=np.uint16)
    depth[:, :64] = 2500
    depth[10:20, 10:20] = 0  # not registered
    return depth


def _write_tar(path: Path, instances: list[dict], with_extensions: bool = False) -> None:
    width, height = FIXTURE["image_size"]
    K_depth = (np.asarray(FIXTURE["K"]) * [[0.5], [0.5], [1.0]]).tolist()
    rgb = np.random.default_rng(0).integers(40, 200, (height, width, 3), dtype=np.uint8)
    members = {
        "wide/image": _png(rgb),
        "wide/image/k": json.dumps(FIXTURE["K"]).encode(),
        "_wide/image/size": f"[{width}, {height}]".encode(),
        "wide/instances": json.dumps(instances).encode(),
        "wide/t_gravity": json.dumps(FIXTURE["T_gravity"]).encode(),
        "gt/depth": _png(_depth_mm()),
        "gt/depth/k": json.dumps(K_depth).encode(),
        "_gt/depth/size": b"[128, 96]",
        "gt/rt": json.dumps(np.eye(4).tolist()).encode(),
    }
    with tarfile.open(path, "w") as tar:
        for key in ("42898570/1000", "42898570/2000"):
            for suffix, data in members.items():
                ext = (
                    {"wide/image": ".png", "gt/depth": ".png"}.get(suffix, ".json") if with_extensions else ""
                )
                info = tarfile.TarInfo(f"{key}.{suffix}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        world = json.dumps(instances).encode()
        info = tarfile.TarInfo("42898570/world.gt/instances")
        info.size = len(world)
        tar.addfile(info, io.BytesIO(world))


@pytest.mark.parametrize("with_extensions", [False, True])
def test_ca1m_frames_become_scenes_with_the_cubify_corners_and_laser_depth(tmp_path, with_extensions):
    instances = [
        *FIXTURE["instances"],
        {"id": 99, "category": "lamp", "position": [0, 0, 2], "scale": [0, 1, 1], "R": np.eye(3).tolist()},
    ]
    _write_tar(tmp_path / "ca1m-val-42898570.tar", instances, with_extensions)
    report = ca1m_shard(tmp_path / "data", "ca1m-000", [tmp_path / "ca1m-val-42898570.tar"])
    assert report.num_out == 2  # the world sample is not a frame
    assert [r.item for r in report.rejections] == ["ca1m-000-42898570_1000/99", "ca1m-000-42898570_2000/99"]
    scene = read_scenes(tmp_path / "data/source_images/ca1m-000/scenes.jsonl")[0]
    assert np.allclose(scene.gravity_cam, np.asarray(FIXTURE["T_gravity"])[:, 1])
    frame = GravityFrame.from_gravity(scene.gravity_cam)
    assert [o.category for o in scene.objects] == ["chair", "table", "chair"]
    for obj, inst in zip(scene.objects, FIXTURE["instances"], strict=True):
        theirs = np.asarray(FIXTURE["cubify_corners"][str(inst["id"])])
        ours = box_corners_cam(obj.box3d, frame)
        assert np.linalg.norm(ours[:, None] - theirs[None], axis=-1).min(axis=1).max() < 1e-5
        length, height, width = inst["scale"]
        assert (obj.box3d.width, obj.box3d.height, obj.box3d.length) == pytest.approx((width, height, length))
    depth = decode_depth_png(tmp_path / "data" / scene.depth_file)
    assert scene.metadata["depth_source"] == "sensor" and scene.metadata["depth_density"] == "dense"
    assert depth.shape == (192, 256)
    assert depth[100, 50] == pytest.approx(2.5, rel=1e-3) and depth[100, 200] == pytest.approx(3.0, rel=1e-3)
    assert np.isnan(depth[25, 25]) and np.isnan(depth[35, 35])  # the unregistered patch, at twice the size


def test_incomplete_samples_and_bad_options_are_named(tmp_path):
    with tarfile.open(tmp_path / "x.tar", "w") as tar:
        data = b"[]"
        info = tarfile.TarInfo("7/1.wide/instances")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    # Its only sample is incomplete: the shard fails naming the sample and what it lacks, and publishes nothing.
    with pytest.raises(
        ShardFailure, match=r"7/1: DataError: incomplete CA-1M sample 7/1: missing wide/image"
    ):
        ca1m_shard(tmp_path / "data", "c", [tmp_path / "x.tar"])
    assert not (tmp_path / "data/source_images/c").exists()
    with pytest.raises(ValueError, match="depth must be"):
        ca1m_shard(tmp_path / "data", "c", [], depth="faro")
