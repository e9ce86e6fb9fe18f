"""The point_maps stage feeds a batching estimator (MoGe-2) several scenes per forward pass, with the same
results as one at a time, and a broken scene inside a batch fails alone."""

import numpy as np

from assets.filtering import filter_shard
from assets.point_maps import point_maps_shard
from assets.sources import images_shard
from assets.storage import decode_depth_png, encode_jpeg, read_scenes
from assets.wild.moge import MoGeEstimator


def _shard(tmp_path, name):
    folder = tmp_path / "imgs"
    if not folder.exists():
        folder.mkdir()
        rng = np.random.default_rng(0)
        for k in range(6):
            height, width = (
                (48, 64) if k != 4 else (40, 72)
            )  # one image of another size: its own forward pass
            ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
            rgb = np.clip(
                ramp * rng.uniform(0.5, 1.0, size=(1, 1, 3)) + rng.normal(0, 20, (height, width, 3)), 0, 255
            )
            (folder / f"{k}.jpg").write_bytes(encode_jpeg(rgb.astype(np.uint8)))
    root = tmp_path / name
    images_shard(root, "web-000", folder)
    filter_shard(root, "web-000")
    return root


def _depths(root):
    scenes = read_scenes(root / "point_maps" / "web-000" / "scenes.jsonl")
    return {s.scene_id: decode_depth_png(root / s.depth_file) for s in scenes}


def test_batches_match_one_at_a_time_and_a_broken_scene_fails_alone(tmp_path):
    single_root, batched_root = _shard(tmp_path, "single"), _shard(tmp_path, "batched")
    single = point_maps_shard(
        single_root, "web-000", MoGeEstimator.tiny(num_tokens=16, fov_x_deg=60.0, batch_size=1)
    )
    # a file damaged on disk after filtering: its batch still runs, the scene is rejected with its reason
    broken = read_scenes(batched_root / "filtered_images" / "web-000" / "scenes.jsonl")[1]
    (batched_root / broken.image_file).write_bytes(b"not a jpeg")
    batched = point_maps_shard(
        batched_root, "web-000", MoGeEstimator.tiny(num_tokens=16, fov_x_deg=60.0, batch_size=3)
    )

    assert single.metadata["estimator_batches"] == 6 and single.num_out == 6
    assert batched.metadata["estimator_batches"] == 2  # scenes 0-2 (1 unreadable) and 3-5
    assert [r.item for r in batched.rejections] == [broken.scene_id]
    assert "unreadable image" in batched.rejections[0].reason
    one_by_one, together = _depths(single_root), _depths(batched_root)
    assert set(together) == set(one_by_one) - {broken.scene_id}
    for scene_id, depth in together.items():
        np.testing.assert_allclose(depth, one_by_one[scene_id], rtol=1e-3, equal_nan=True)
