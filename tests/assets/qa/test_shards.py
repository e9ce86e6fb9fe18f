import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from assets.qa.config import QAConfig
from assets.qa.shards import QA_SCHEMA, qa_shard, table_to_pairs
from assets.records import QAFormat
from assets.storage import encode_depth_png, shard_dir, write_scenes
from tests.assets.qa.scenes import make_point_map, make_scene


def _write_references(root, shard, scenes, extra_lines=()):
    path = shard_dir(root, "object_references", shard) / "scenes.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_scenes(path, scenes)
    if extra_lines:
        with open(path, "a", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in extra_lines)


def _scene_with_depth(root, seed, shard="s-000", corrupt=False):
    points, _ = make_point_map(seed)
    depth_file = f"point_maps/{shard}/depth/scene-{seed:04d}.png"
    (root / depth_file).parent.mkdir(parents=True, exist_ok=True)
    (root / depth_file).write_bytes(b"not a png" if corrupt else encode_depth_png(points[..., 2]))
    return make_scene(seed).model_copy(update={"shard": shard, "depth_file": depth_file})


def test_qa_shard_writes_validated_rows_and_reasons(tmp_path):
    scenes = [_scene_with_depth(tmp_path, s) for s in range(3)]
    scenes.append(_scene_with_depth(tmp_path, 3, corrupt=True))
    scenes.append(make_scene(4, n_objects=1).model_copy(update={"shard": "s-000"}))
    _write_references(tmp_path, "s-000", scenes, extra_lines=['{"scene_id": "broken", "objects": 3}'])

    report = qa_shard(tmp_path, "s-000", QAConfig(seed=1, l0_eval_samples=4))
    out = tmp_path / "qa_shards" / "s-000"
    table = pq.read_table(out / "qa.parquet")
    assert table.schema.equals(QA_SCHEMA)
    pairs = table_to_pairs(table)  # every row reads back as a valid QAPair
    assert len(pairs) == table.num_rows == report.metadata["num_pairs"] > 100
    assert report.num_in == 6 and len(report.rejections) == 1 and report.rejections[0].item == "broken"
    assert {p.scene_id for p in pairs} == {s.scene_id for s in scenes}
    rows = table.to_pylist()
    assert all(r["image_file"] == f"images/{r['scene_id']}.jpg" for r in rows)
    mc = next(r for r in rows if r["format"] == "multiple_choice")
    assert isinstance(mc["options"], list) and mc["correct_index"] is not None
    vec = next(r for r in rows if r["subtask"] == "vector" and r["format"] == "free_form")
    assert len(vec["direction"]) == 3 and abs(np.linalg.norm(vec["direction"]) - 1) < 1e-9
    boxed = next(r for r in rows if r["draw_boxes"] != "[]")
    assert json.loads(boxed["draw_boxes"])[0]["color"]

    skipped = {
        row["scene_id"]: row for row in map(json.loads, (out / "skipped.jsonl").read_text().splitlines())
    }
    assert any("unreadable depth" in r for r in skipped["scene-0003"]["reasons"])
    assert any("L2: needs 2+" in r for r in skipped["scene-0004"]["reasons"])
    corrupt_l0 = [p for p in pairs if p.scene_id == "scene-0003" and p.level == "L0"]
    assert corrupt_l0 == [] and any(p.scene_id == "scene-0003" for p in pairs)
    assert len(json.loads((out / "rejected.jsonl").read_text().splitlines()[0])["reason"]) > 0

    manifest = json.loads((out / "_manifest.json").read_text())
    meta = manifest["metadata"]
    assert sum(v for k, v in meta.items() if k.startswith("count_format_")) == table.num_rows
    assert sum(v for k, v in meta.items() if k.startswith("count_level_")) == table.num_rows
    assert meta["count_format_true_false"] == sum(p.format == QAFormat.TRUE_FALSE for p in pairs)
    assert manifest["config"]["seed"] == 1


def test_qa_shard_is_deterministic_and_replaces_the_shard(tmp_path):
    _write_references(tmp_path, "s-000", [_scene_with_depth(tmp_path, s) for s in range(2)])
    first = qa_shard(tmp_path, "s-000", QAConfig(seed=5)).metadata["content_digest"]
    second = qa_shard(tmp_path, "s-000", QAConfig(seed=5)).metadata["content_digest"]
    assert first == second
    third = qa_shard(tmp_path, "s-000", QAConfig(seed=6)).metadata["content_digest"]
    assert third != first
    assert not list((tmp_path / "qa_shards").glob(".*"))  # no temp directories left behind


def test_missing_upstream_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="object_references"):
        qa_shard(tmp_path, "nope")


def test_rendered_scenes_through_references_to_qa(tmp_path):
    synthetic = pytest.importorskip("assets.synthetic")
    from assets.references import assign_references
    from assets.storage import read_scenes

    synthetic.write_synthetic_shard(tmp_path, "syn-000", synthetic.SyntheticConfig(num_scenes=2))
    scenes = read_scenes(shard_dir(tmp_path, "source_images", "syn-000") / "scenes.jsonl")
    _write_references(tmp_path, "syn-000", [assign_references(s) for s in scenes])
    report = qa_shard(tmp_path, "syn-000", QAConfig(seed=0, l0_eval_samples=4))
    assert not report.rejections
    pairs = table_to_pairs(pq.read_table(tmp_path / "qa_shards" / "syn-000" / "qa.parquet"))
    assert len({p.scene_id for p in pairs}) == 2
    assert {p.level.value for p in pairs} >= {"L0", "L1", "L2"}


def test_llm_teacher_sees_the_scene_image(tmp_path):
    synthetic = pytest.importorskip("assets.synthetic")
    from assets.llm import LLMClient, LLMConfig
    from assets.references import assign_references
    from assets.storage import read_scenes
    from tests.assets.qa.test_problem_solving import AGREEING, TEACHER, router, student
    from tests.openai_server import json_reply, serve

    synthetic.write_synthetic_shard(tmp_path, "syn-000", synthetic.SyntheticConfig(num_scenes=1))
    scenes = read_scenes(shard_dir(tmp_path, "source_images", "syn-000") / "scenes.jsonl")
    _write_references(tmp_path, "syn-000", [assign_references(s) for s in scenes])
    with serve(router(json_reply(TEACHER), student(AGREEING))) as server:
        llm = LLMClient(LLMConfig(base_url=server.base_url, model="teacher-model", backoff_s=0.0))
        report = qa_shard(tmp_path, "syn-000", QAConfig(l0_eval_samples=0), llm=llm)
    assert not report.rejections and report.metadata["num_pairs"] > 0
    teacher_calls = [r for r in server.requests if "image_url" in json.dumps(r.body)]
    assert teacher_calls, "the teacher request carries no image"
