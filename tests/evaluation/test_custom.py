"""The custom benchmark built from held-out ground-truth scenes and QA shards, scored end to end."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
from assets.storage import encode_depth_png, encode_jpeg, write_scenes
from evaluation.config import EvalConfig
from evaluation.custom import L1, L2, L3, build_custom_benchmark
from evaluation.predictors import item_image
from evaluation.run import score_benchmark


def _scene(shard: str, scene_id: str, root: Path) -> Scene:
    image_file = f"source_images/{shard}/images/{scene_id}.jpg"
    depth_file = f"point_maps/{shard}/depth/{scene_id}.png"
    (root / image_file).parent.mkdir(parents=True, exist_ok=True)
    (root / depth_file).parent.mkdir(parents=True, exist_ok=True)
    (root / image_file).write_bytes(encode_jpeg(np.full((24, 32, 3), 128, np.uint8)))
    (root / depth_file).write_bytes(encode_depth_png(np.full((24, 32), 3.0)))
    objects = [
        SceneObject(
            instance_id=1,
            category="chair",
            box2d=Box2D(x0=2, y0=2, x1=10, y1=12),
            box3d=Box3D(center_cam=(0.0, 0.0, 3.0), width=0.5, height=1.0, length=0.5, yaw=0.0),
        ),
        SceneObject(
            instance_id=2,
            category="table",
            box2d=Box2D(x0=14, y0=4, x1=30, y1=20),
            box3d=Box3D(center_cam=(1.2, 0.0, 4.6), width=1.0, height=0.8, length=0.6, yaw=0.0),
        ),
    ]
    return Scene(
        scene_id=scene_id,
        source="synthetic",
        shard=shard,
        intrinsics=Intrinsics(fx=30, fy=30, cx=16, cy=12, width=32, height=24),
        gravity_cam=(0.0, 1.0, 0.0),
        objects=objects,
        has_ground_truth_3d=True,
        image_file=image_file,
        depth_file=depth_file,
    )


def _qa(qa_id, shard, scene_id, **kw) -> dict:
    defaults = dict(qa_id=qa_id, scene_id=scene_id, shard=shard, question=f"question {qa_id}", answer="x")
    return QAPair(**{**defaults, **kw}).model_dump(mode="json")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    direction = np.array([1.2, 0.0, 1.6]) / 2.0  # chair -> table, |(1.2, 0, 1.6)| = 2
    for shard in ("train-000", "heldout-000"):
        scene = _scene(shard, f"{shard}-s0", tmp_path)
        write_scenes(tmp_path / "object_references" / shard / "scenes.jsonl", [scene])
        sid = scene.scene_id
        rows = [
            _qa(
                f"{shard}-l1",
                shard,
                sid,
                level=Level.L1,
                task=Task.LOCALIZATION,
                subtask="distance",
                format=QAFormat.FREE_FORM,
                answer="3.00 m",
                value=3.0,
                unit="m",
                object_ids=[1],
            ),
            _qa(
                f"{shard}-l1cm",
                shard,
                sid,
                level=Level.L1,
                task=Task.LOCALIZATION,
                subtask="distance",
                format=QAFormat.FREE_FORM,
                answer="484 cm",
                value=484.0,
                unit="cm",
                object_ids=[2],
                draw_boxes=[DrawBox(instance_id=2, color="red", box2d=Box2D(x0=14, y0=4, x1=30, y1=20))],
            ),
            _qa(
                f"{shard}-l1mc",
                shard,
                sid,
                level=Level.L1,
                task=Task.LOCALIZATION,
                subtask="distance",
                format=QAFormat.MULTIPLE_CHOICE,
                answer="3.00 m",
                options=["3.00 m", "5.00 m"],
                correct_index=0,
                value=3.0,
                unit="m",
                object_ids=[1],
            ),
            _qa(
                f"{shard}-size",
                shard,
                sid,
                level=Level.L1,
                task=Task.SIZE,
                subtask="height",
                format=QAFormat.FREE_FORM,
                answer="1.00 m",
                value=1.0,
                unit="m",
                object_ids=[1],
            ),
            _qa(
                f"{shard}-l2",
                shard,
                sid,
                level=Level.L2,
                task=Task.RELATIVE_DIRECTION,
                format=QAFormat.FREE_FORM,
                answer="0.60m 0.00m 0.80m",
                direction=tuple(direction),
                object_ids=[1, 2],
            ),
            _qa(
                f"{shard}-l2bad",
                shard,
                sid,
                level=Level.L2,
                task=Task.RELATIVE_DIRECTION,
                format=QAFormat.FREE_FORM,
                answer="-0.60m 0.00m -0.80m",
                direction=tuple(-direction),
                object_ids=[1, 2],
            ),
            _qa(
                f"{shard}-l3mc",
                shard,
                sid,
                level=Level.L3,
                task=Task.PROBLEM_SOLVING,
                format=QAFormat.MULTIPLE_CHOICE,
                answer="B. the table",
                options=["the chair", "the table"],
                correct_index=1,
                object_ids=[1, 2],
            ),
            _qa(
                f"{shard}-l3num",
                shard,
                sid,
                level=Level.L3,
                task=Task.PROBLEM_SOLVING,
                format=QAFormat.FREE_FORM,
                answer="About 1.5 m of free space.",
                value=1.5,
                unit="m",
            ),
        ]
        out = tmp_path / "qa_shards" / shard
        out.mkdir(parents=True)
        pd.DataFrame(rows).to_parquet(out / "qa.parquet", index=False)
    return tmp_path


def test_build_selects_levels_and_checks_ground_truth(data_root: Path):
    items, report = build_custom_benchmark(data_root, EvalConfig(heldout_shards=["heldout-000"]))
    by_id = {it.item_id: it for it in items}
    assert set(by_id) == {
        "heldout-000-l1",
        "heldout-000-l1cm",
        "heldout-000-l2",
        "heldout-000-l3mc",
        "heldout-000-l3num",
    }
    assert by_id["heldout-000-l1"].category == L1 and by_id["heldout-000-l1"].value == pytest.approx(3.0)
    assert by_id["heldout-000-l1cm"].value == pytest.approx(np.hypot(1.2, 4.6))  # from the scene, in meters
    assert by_id["heldout-000-l1cm"].boxes == [(14.0, 4.0, 30.0, 20.0, "red")]
    drawn = item_image(by_id["heldout-000-l1cm"])  # drawn as training draws it: outline up to x1 - 1
    assert drawn.getpixel((29, 10))[0] > 200 and drawn.getpixel((29, 10))[1] < 80
    assert by_id["heldout-000-l2"].category == L2
    assert by_id["heldout-000-l2"].direction == pytest.approx((0.6, 0.0, 0.8))
    assert by_id["heldout-000-l3num"].category == L3
    assert by_id["heldout-000-l1"].depth_path.is_file()  # ground-truth point map available
    # the direction row contradicting its scene is rejected with the reason, not scored against wrong truth
    assert [r.item for r in report.rejections] == ["heldout-000-l2bad"]
    assert "disagrees" in report.rejections[0].reason


def test_needs_heldout_selection(data_root: Path):
    report = score_benchmark(data_root, "custom", None, EvalConfig())
    assert report.status == "not configured" and "held-out" in report.message


def test_score_custom_from_predictions_file(data_root: Path, tmp_path: Path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "heldout-000-l1", "prediction": "About 3.5 meters."},  # 3.5 <= 3.75 -> right
                {"id": "heldout-000-l1cm", "prediction": "3 m"},  # gt 4.75 m -> wrong
                {"id": "heldout-000-l2", "prediction": "0.5m 0.1m 0.9m"},  # ~9 degrees -> right
                {"id": "heldout-000-l3mc", "prediction": "B"},
                {"id": "heldout-000-l3num", "prediction": "roughly 2 meters"},  # 33% off -> wrong at 25%
            ]
        )
        + "\n"
    )
    config = EvalConfig(heldout_shards=["heldout-000"], predictions={"custom": preds}, use_judge=False)
    report = score_benchmark(data_root, "custom", None, config)
    assert report.status == "ok" and report.judge_mode == "rule"
    assert report.num_items == 5
    assert report.metrics["L1"] == 50.0 and report.metrics["L2"] == 100.0 and report.metrics["L3"] == 50.0
    assert report.score == pytest.approx(60.0)
    frame = pd.read_parquet(report.predictions_path)
    assert len(frame) == 5 and set(frame["item_id"]) == {
        f"heldout-000-{k}" for k in ("l1", "l1cm", "l2", "l3mc", "l3num")
    }
    assert frame.set_index("item_id").loc["heldout-000-l2", "detail_angle_deg"] < 30

    # a looser L3 threshold and a tighter angle are configuration, not code
    config2 = config.model_copy(update={"l3_relative_error": 0.4, "angle_threshold_deg": 5.0})
    report2 = score_benchmark(data_root, "custom", None, config2)
    assert report2.metrics["L3"] == 100.0 and report2.metrics["L2"] == 0.0


def test_option_labels_follow_the_generator_style():
    from evaluation.custom import option_labels

    assert option_labels("C. 0.57 m", 4, 2) == ["A", "B", "C", "D"]
    assert option_labels("II. 24.1 in", 3, 1) == ["I", "II", "III"]
    assert option_labels("3. 0", 4, 2) == ["1", "2", "3", "4"]
    assert option_labels("(b) the lamp", 2, 1) == ["a", "b"]
    assert option_labels("the lamp", 2, 1) == ["A", "B"]  # no label in the answer


def test_real_pipeline_shard_scores_its_own_answers_perfectly(tmp_path):
    """Synthetic shard -> every stage -> qa_shards -> custom benchmark. Feeding the ground-truth answer texts back
    as predictions must score 100% on every level (extraction reads our own answer styles), and nonsense 0% with
    every item still counted."""
    from assets.filtering import filter_shard
    from assets.objects import object_clouds_shard
    from assets.point_maps import point_maps_shard
    from assets.qa.shards import qa_shard
    from assets.references import references_shard
    from assets.synthetic import SyntheticConfig, write_synthetic_shard

    shard = "synthetic-000"
    write_synthetic_shard(tmp_path, shard, SyntheticConfig(num_scenes=4, seed=3))
    for stage in (filter_shard, point_maps_shard, object_clouds_shard, references_shard, qa_shard):
        stage(tmp_path, shard)
    config = EvalConfig(heldout_shards=[shard], use_judge=False)
    items, build = build_custom_benchmark(tmp_path, config)
    assert not build.rejections
    assert {it.category for it in items} == {L1, L2, L3}

    truth = tmp_path / "truth.jsonl"
    truth.write_text("".join(json.dumps({"id": it.item_id, "prediction": it.answer}) + "\n" for it in items))
    report = score_benchmark(
        tmp_path, "custom", None, config.model_copy(update={"predictions": {"custom": truth}})
    )
    assert report.metrics["L1"] == report.metrics["L2"] == report.metrics["L3"] == 100.0, (
        report.failure_reasons
    )

    junk = tmp_path / "junk.jsonl"
    junk.write_text(
        "".join(json.dumps({"id": it.item_id, "prediction": "I am not sure."}) + "\n" for it in items)
    )
    bad = score_benchmark(
        tmp_path, "custom", None, config.model_copy(update={"predictions": {"custom": junk}})
    )
    assert bad.score == 0.0 and bad.num_items == len(items) and bad.num_unparseable == len(items)


def test_heldout_by_trainings_own_validation_split(data_root: Path):
    from training.data import is_validation_scene

    fraction = 0.78  # sha256 buckets: train-000-s0 -> 7526 (validation), heldout-000-s0 -> 8086 (training)
    expected = {s for s in ("train-000-s0", "heldout-000-s0") if is_validation_scene(s, fraction)}
    assert expected == {"train-000-s0"}
    items, _ = build_custom_benchmark(data_root, EvalConfig(heldout_val_fraction=fraction))
    assert {it.meta["scene_id"] for it in items} == expected
    only_listed, _ = build_custom_benchmark(data_root, EvalConfig(heldout_scenes=["train-000-s0"]))
    assert {it.meta["scene_id"] for it in only_listed} == {"train-000-s0"}


def test_per_level_cap_is_a_stable_spread_sample(data_root: Path):
    from evaluation.custom import sample_per_level

    items, _ = build_custom_benchmark(data_root, EvalConfig(heldout_shards=["heldout-000"]))
    one = sample_per_level(items, 1)
    assert sorted(i.category for i in one) == sorted({i.category for i in items})  # one per level
    assert {i.item_id for i in sample_per_level(list(reversed(items)), 1)} == {i.item_id for i in one}
    assert [i.item_id for i in one] == [i.item_id for i in items if i in one]  # order kept
    capped, report = build_custom_benchmark(
        data_root, EvalConfig(heldout_shards=["heldout-000"], custom_max_per_level=1)
    )
    assert [i.item_id for i in capped] == [i.item_id for i in one]
    assert report.metadata["L1 scenes"] == 1
