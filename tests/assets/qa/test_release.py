"""The release a user takes away: qa_dataset writes the LLaVA JSON and the HF layout, and both load back (with
`datasets`: images as an `Image` feature, depth alongside); `hispatial export` writes a chosen subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from assets.qa.config import QAConfig
from assets.qa.dataset import (
    build_qa_dataset,
    export_subset,
    load_qa_dataset,
    read_quality,
)
from assets.qa.shards import qa_shard
from assets.references import assign_references
from assets.stage import DataError
from assets.storage import decode_depth_png, read_scenes, shard_dir, write_scenes
from training.mlflow_runs import log_release_to_mlflow

SHARDS = ("synthetic-000", "synthetic-001")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from assets.synthetic import SyntheticConfig, write_synthetic_shard

    root = tmp_path_factory.mktemp("release")
    for seed, shard in enumerate(SHARDS):
        write_synthetic_shard(root, shard, SyntheticConfig(num_scenes=3, seed=seed))
        scenes = read_scenes(shard_dir(root, "source_images", shard) / "scenes.jsonl")
        path = shard_dir(root, "object_references", shard) / "scenes.jsonl"
        path.parent.mkdir(parents=True)
        write_scenes(path, [assign_references(s) for s in scenes])
        qa_shard(root, shard, QAConfig(l0_eval_samples=2))
    report = build_qa_dataset(root, list(SHARDS))
    assert not report.rejections
    return root


@pytest.fixture()
def hf_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return str(tmp_path / "hf-cache")


def test_release_writes_both_exports_that_load_back(root, hf_env):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rows = load_qa_dataset(root)
    out = root / "qa_dataset"
    llava = json.loads((out / "llava.json").read_text())
    assert len(llava) == len(rows) and {r["id"] for r in llava} == set(rows["qa_id"])
    first = rows.iloc[0]
    record = next(r for r in llava if r["id"] == first["qa_id"])
    assert record["image"] == first["image_file"] and (root / record["image"]).exists()
    assert record["conversations"][1]["value"] == first["answer"]

    loaded = datasets.load_dataset(str(out / "hf"), cache_dir=hf_env)
    scenes = loaded["train"]
    assert isinstance(scenes.features["image"], datasets.Image) and isinstance(
        scenes.features["depth"], datasets.Image
    )
    assert scenes.num_rows == rows["scene_id"].nunique() == 6
    assert sum(len(s["qa"]) for s in scenes) == len(rows)
    one = scenes[0]
    assert isinstance(one["image"], Image.Image) and one["image"].size == (448, 448)
    source = next(
        s
        for s in read_scenes(shard_dir(root, "object_references", one["shard"]) / "scenes.jsonl")
        if s.scene_id == one["scene_id"]
    )
    assert one["fx"] == source.intrinsics.fx
    # the depth decodes with the card's formula to the stored depth
    codes = np.asarray(one["depth"], dtype=np.float64)
    t = (codes - 1) / 65533
    depth = np.exp(np.log(one["depth_near_m"]) * (1 - t) + np.log(one["depth_far_m"]) * t)
    stored = decode_depth_png(root / source.depth_file)
    valid = np.isfinite(stored)
    assert np.array_equal(~valid, codes == 0)  # code 0 is "unknown", nothing else is
    assert np.allclose(depth[valid], stored[valid], rtol=1e-5)
    by_scene = rows[rows["scene_id"] == one["scene_id"]]
    assert sorted(q["qa_id"] for q in one["qa"]) == sorted(by_scene["qa_id"])

    pairs = datasets.load_dataset(str(out / "hf"), "pairs", cache_dir=hf_env)["train"]
    assert pairs.num_rows == len(rows) and set(pairs["qa_id"]) == set(rows["qa_id"])

    card = (out / "hf" / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "apache-2.0"
    assert {c["config_name"] for c in header["configs"]} == {"default", "pairs"}
    assert {f["name"] for f in header["dataset_info"]["features"]} >= {"image", "depth", "qa"}
    assert "How it was made" in card
    # the Hub's own card parser reads the same header
    from huggingface_hub import DatasetCard

    hub_card = DatasetCard.load(out / "hf" / "README.md")
    assert hub_card.data.license == "apache-2.0"
    assert [c["config_name"] for c in hub_card.data.configs] == ["default", "pairs"]


def test_release_records_distributions_and_quality(root):
    manifest = json.loads((root / "qa_dataset" / "_manifest.json").read_text())
    assert manifest["answer_distribution"] and manifest["true_false"]
    assert manifest["exports"]["llava_records"] == manifest["num_rows"]
    quality = read_quality(root)
    assert quality["leaks"]["leaks_total"] == 0 and quality["num_rows"] == manifest["num_rows"]
    png = (root / "qa_dataset" / "answers.png").read_bytes()
    assert png[:4] == b"\x89PNG"


def test_export_subset_and_cli(root, tmp_path, hf_env):
    datasets = pytest.importorskip("datasets")
    from hispatial_dagster.cli import main

    out = tmp_path / "subset"
    summary = export_subset(
        root, out, tasks=["size", "orientation"], formats=["free_form"], shards=[SHARDS[0]]
    )
    llava = json.loads((out / "llava.json").read_text())
    assert len(llava) == summary.rows["train"] > 0
    assert {r["task"] for r in llava} <= {"size", "orientation"} and {r["format"] for r in llava} == {
        "free_form"
    }
    pairs = datasets.load_dataset(str(out / "hf"), "pairs", cache_dir=hf_env)["train"]
    assert set(pairs["shard"]) == {SHARDS[0]}
    with pytest.raises(DataError, match="no released rows with task"):
        export_subset(root, out, tasks=["teleportation"])
    assert (out / "llava.json").exists()  # a refused export leaves the previous one in place

    assert main(["--data-root", str(root), "export", str(tmp_path / "cli"), "--levels", "L1"]) == 0
    cli_rows = json.loads((tmp_path / "cli" / "llava.json").read_text())
    assert cli_rows and {r["level"] for r in cli_rows} == {"L1"}
    assert main(["--data-root", str(root), "export", str(tmp_path / "bad"), "--levels", "L9"]) == 2


def test_release_is_logged_to_mlflow(root, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_release_to_mlflow(root, uri)
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(run_id)
    assert run.data.metrics["quality_leaks_leaks_total"] == 0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "qa_dataset")}
    assert {"qa_dataset/quality.json", "qa_dataset/_manifest.json"} <= artifacts
    manifest = json.loads((root / "qa_dataset" / "_manifest.json").read_text())
    assert run.data.tags["dataset_digest"] == manifest["dataset_digest"]
