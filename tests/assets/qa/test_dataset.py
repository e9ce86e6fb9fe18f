import json

import pytest

from assets.qa.config import QAConfig
from assets.qa.dataset import build_qa_dataset, load_qa_dataset
from assets.qa.shards import QA_SCHEMA, qa_shard
from assets.stage import DataError
from assets.storage import shard_dir, write_scenes
from tests.assets.qa.scenes import make_scene


def _shard(root, shard, seeds):
    path = shard_dir(root, "object_references", shard) / "scenes.jsonl"
    path.parent.mkdir(parents=True)
    write_scenes(
        path, [make_scene(s, scene_id=f"{shard}-{s}").model_copy(update={"shard": shard}) for s in seeds]
    )
    return qa_shard(root, shard, QAConfig(l0_eval_samples=0, include_l3=False))


def test_manifest_plot_and_loader(tmp_path):
    a = _shard(tmp_path, "a", [0, 1])
    b = _shard(tmp_path, "b", [2])
    report = build_qa_dataset(tmp_path, ["b", "a", "missing"])
    manifest = json.loads((tmp_path / "qa_dataset" / "_manifest.json").read_text())
    assert [s["shard"] for s in manifest["shards"]] == ["a", "b"]
    assert manifest["num_rows"] == a.metadata["num_pairs"] + b.metadata["num_pairs"]
    assert [r["item"] for r in manifest["rejected"]] == ["missing"] and len(report.rejections) == 1
    assert sum(manifest["counts"]["format"].values()) == manifest["num_rows"]
    assert manifest["counts"]["task"]["size"] == (
        a.metadata["count_task_size"] + b.metadata["count_task_size"]
    )
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    png = (tmp_path / "qa_dataset" / "counts.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and report.thumbnail is not None

    df = load_qa_dataset(tmp_path)
    assert len(df) == manifest["num_rows"] and list(df.columns) == QA_SCHEMA.names
    assert set(df["shard"]) == {"a", "b"}

    # a shard re-materialized after the manifest: the loader refuses to mix releases
    _shard(tmp_path / "other", "a", [5])
    (tmp_path / "qa_shards" / "a" / "qa.parquet").write_bytes(
        (tmp_path / "other" / "qa_shards" / "a" / "qa.parquet").read_bytes()
    )
    with pytest.raises(DataError, match="changed since the manifest"):
        load_qa_dataset(tmp_path)
    assert len(load_qa_dataset(tmp_path, verify=False)) > 0


def test_no_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="build the qa_dataset"):
        load_qa_dataset(tmp_path)
