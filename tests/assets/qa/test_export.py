"""LLaVA/ShareGPT and Hugging Face parquet exports of generated QA pairs."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from assets.qa.config import QAConfig
from assets.qa.context import QAContext
from assets.qa.export import IMAGE_TOKEN, export_dataset, human_turn, llava_records, write_hf_parquet
from assets.qa.l3 import generate_l3
from assets.qa.shards import pairs_to_table, table_to_pairs
from assets.records import QAFormat, Task
from tests.assets.qa.test_l3 import HAND_SPECS, make_scene

CAPS = {Task.PERSPECTIVE_TAKING: 30, Task.SPATIAL_COUNTING: 12, Task.PROBLEM_SOLVING: 12}


@pytest.fixture(scope="module")
def table():
    scene = make_scene(HAND_SPECS).model_copy(update={"depth_file": "point_maps/test-000/depth/hand-0.png"})
    pairs = generate_l3(QAContext.build(scene, QAConfig(caps=CAPS)))
    assert {p.format for p in pairs} == set(QAFormat)
    return pairs_to_table(pairs, {scene.scene_id: scene})


def test_llava_one_record_per_pair(table):
    rows = table.to_pylist()
    records = llava_records(table)
    assert len(records) == len(rows)
    for record, row in zip(records, rows, strict=True):
        assert record["id"] == row["qa_id"] and record["image"] == "images/x.jpg"
        human, gpt = record["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"].startswith(IMAGE_TOKEN + "\n") and human["value"].count(IMAGE_TOKEN) == 1
        assert gpt["value"] == row["answer"]
        assert record["depth"] == "point_maps/test-000/depth/hand-0.png"
        if row["format"] == "multiple_choice":
            assert all(option in human["value"] for option in row["options"])
        boxes = json.loads(row["draw_boxes"])
        assert record.get("draw_boxes", []) == boxes


def test_missing_options_are_appended_with_labels():
    row = {"question": "Which is nearer?", "options": ["the cup", "the lamp"], "format": "multiple_choice"}
    assert human_turn(row) == "Which is nearer?\nA. the cup\nB. the lamp"
    already = {"question": "Which? (a) x (b) y", "options": ["x", "y"], "format": "multiple_choice"}
    assert human_turn(already) == already["question"]


def test_llava_grouped_by_image_and_boxes(table):
    records = llava_records(table, group_by_image=True, max_turns=4)
    assert sum(len(r["conversations"]) // 2 for r in records) == table.num_rows
    for record in records:
        turns = record["conversations"]
        assert 2 <= len(turns) <= 8 and [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert sum(t["value"].count(IMAGE_TOKEN) for t in turns) == 1
        assert len(record["qa_ids"]) == len(turns) // 2


def test_export_dataset_layout_roundtrip_and_atomic_swap(table, tmp_path):
    out = tmp_path / "exports"
    summary = export_dataset(out, table, rows_per_file=25)
    n_files = -(-table.num_rows // 25)
    expected = [f"data/train-{i:05d}-of-{n_files:05d}.parquet" for i in range(n_files)]
    assert summary.hf_files == {"train": expected} and summary.rows == {"train": table.num_rows}
    assert sorted(p.name for p in (out / "hf" / "data").iterdir()) == [e.split("/")[1] for e in expected]
    readme = (out / "hf" / "README.md").read_text()
    assert readme.startswith("---\nconfigs:\n- config_name: default\n") and "path: data/train-*" in readme
    back = pq.ParquetDataset(sorted(str(out / "hf" / e) for e in expected)).read()
    assert back.to_pylist() == table.to_pylist()
    assert table_to_pairs(back) == table_to_pairs(table)
    assert len(json.loads((out / "llava.json").read_text())) == table.num_rows
    # A second export replaces the first whole: no stale parquet files of the old file count survive.
    export_dataset(out, table.slice(0, 10), rows_per_file=25)
    assert [p.name for p in (out / "hf" / "data").iterdir()] == ["train-00000-of-00001.parquet"]
    assert not list(tmp_path.glob(".exports.tmp-*"))


def test_split_names_are_checked(table, tmp_path):
    with pytest.raises(ValueError, match="split name"):
        write_hf_parquet(tmp_path, {"../train": table})


def test_datasets_library_loads_the_export(table, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    train, validation = table.slice(0, 40), table.slice(40)
    out = tmp_path / "exports"
    export_dataset(out, table, splits={"train": train, "validation": validation}, rows_per_file=16)
    files = sorted(str(p) for p in (out / "hf" / "data").glob("train-*.parquet"))
    loaded = datasets.load_dataset(
        "parquet", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf-cache")
    )
    assert loaded.num_rows == 40 and loaded[0]["qa_id"] == train.to_pylist()[0]["qa_id"]
    # The README's configs: front matter lets the directory itself be loaded with both splits.
    by_dir = datasets.load_dataset(str(out / "hf"), cache_dir=str(tmp_path / "hf-cache"))
    assert by_dir["train"].num_rows == 40 and by_dir["validation"].num_rows == table.num_rows - 40
    assert by_dir["validation"][0]["answer"] == validation.to_pylist()[0]["answer"]
