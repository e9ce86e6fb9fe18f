import json

import pytest
from pydantic import ValidationError

from assets.records import Annotation2D, Box2D, Box3D, Intrinsics, Level, QAFormat, QAPair, Scene, Task
from assets.stage import DataError, StageReport, process_items
from assets.storage import read_scenes


def make_scene(**overrides) -> Scene:
    fields = dict(
        scene_id="s-0",
        source="synthetic",
        shard="synthetic-000",
        intrinsics=Intrinsics(fx=400, fy=400, cx=224, cy=224, width=448, height=448),
        gravity_cam=(0.0, 1.0, 0.0),
        image_file="source_images/synthetic-000/images/s-0.jpg",
    )
    fields.update(overrides)
    return Scene(**fields)


def test_scene_round_trips_through_json():
    scene = make_scene()
    assert Scene.model_validate_json(scene.model_dump_json()) == scene


@pytest.mark.parametrize(
    "bad",
    [
        {"gravity_cam": (0.0, 2.0, 0.0)},
        {"gravity_cam": (float("nan"), 1.0, 0.0)},
        {"scene_id": ""},
        {"unknown_field": 1},
    ],
)
def test_malformed_scene_fails_loudly(bad):
    with pytest.raises(ValidationError):
        make_scene(**bad)


def test_2d_annotations_round_trip_and_validate():
    boxes = [
        Annotation2D(category="chair", box2d=Box2D(x0=1, y0=2, x1=30, y1=40), annotation_id=17),
        Annotation2D(category="cup", box2d=Box2D(x0=5, y0=5, x1=9, y1=9), score=0.25),
    ]
    scene = make_scene(annotations_2d=boxes)
    again = Scene.model_validate_json(scene.model_dump_json())
    assert (
        again == scene
        and again.annotations_2d[1].score == 0.25
        and again.annotations_2d[0].annotation_id == 17
    )
    with pytest.raises(ValidationError):
        Annotation2D(category="", box2d=Box2D(x0=1, y0=2, x1=3, y1=4))
    with pytest.raises(ValidationError):
        Annotation2D(category="cup", box2d=Box2D(x0=1, y0=2, x1=3, y1=4), score=1.5)


def test_scene_lines_written_before_annotations_2d_still_load(tmp_path):
    """A scenes.jsonl line from before `Scene.annotations_2d` existed: without the field it loads with none; with
    the COCO importer's old metadata JSON string the boxes move into the typed field (and out of metadata)."""
    base = json.loads(make_scene().model_dump_json())
    del base["annotations_2d"]
    legacy = {
        **base,
        "metadata": {
            "original_file": "1.jpg",
            "annotations_2d": json.dumps(
                [
                    {"annotation_id": 3, "category": "chair", "box2d": [10.0, 5.0, 30.0, 35.0]},
                    {"annotation_id": 4, "category": "cup", "box2d": [50.0, 40.0, 64.0, 48.0]},
                ]
            ),
            "num_annotations_2d": 2,
        },
    }
    path = tmp_path / "scenes.jsonl"
    path.write_text(json.dumps(base) + "\n" + json.dumps(legacy) + "\n")
    plain, old = read_scenes(path)
    assert plain.annotations_2d == [] and plain == make_scene()
    assert [(a.category, a.annotation_id, a.score) for a in old.annotations_2d] == [
        ("chair", 3, 1.0),
        ("cup", 4, 1.0),
    ]
    assert old.annotations_2d[1].box2d == Box2D(x0=50, y0=40, x1=64, y1=48)
    assert old.metadata == {"original_file": "1.jpg"}
    # written back, it is a current record
    assert "annotations_2d" not in json.loads(old.model_dump_json())["metadata"]
    assert Scene.model_validate_json(old.model_dump_json()) == old
    # a broken legacy string is a loud, field-named error, not a silently unannotated scene
    for broken in (
        "[{not json",
        json.dumps([{"category": "cup"}]),
        json.dumps([{"category": "cup", "box2d": [1, 2]}]),
    ):
        with pytest.raises(ValidationError, match="annotations_2d"):
            Scene.model_validate({**base, "metadata": {"annotations_2d": broken}})


def test_degenerate_boxes_are_rejected():
    with pytest.raises(ValidationError, match="degenerate"):
        Box2D(x0=5, y0=5, x1=5, y1=9)
    with pytest.raises(ValidationError):
        Box3D(center_cam=(0, 0, float("inf")), width=1, height=1, length=1, yaw=0)
    with pytest.raises(ValidationError):
        Box3D(center_cam=(0, 0, 1), width=0, height=1, length=1, yaw=0)


def test_qa_pair_checks_level_and_choices():
    base = dict(qa_id="q", scene_id="s", shard="x", question="?", answer="A")
    with pytest.raises(ValidationError, match="belongs to L1"):
        QAPair(**base, level=Level.L2, task=Task.SIZE, format=QAFormat.FREE_FORM)
    with pytest.raises(ValidationError, match="correct_index"):
        QAPair(**base, level=Level.L1, task=Task.SIZE, format=QAFormat.MULTIPLE_CHOICE, options=["a", "b"])
    ok = QAPair(
        **base,
        level=Level.L1,
        task=Task.SIZE,
        format=QAFormat.MULTIPLE_CHOICE,
        options=["a", "b"],
        correct_index=1,
    )
    assert ok.correct_index == 1


def test_process_items_rejects_bad_data_but_raises_bugs(tmp_path):
    report = StageReport(stage="demo", shard="s", output_dir=tmp_path)

    def fn(x: int) -> int:
        if x == 2:
            raise DataError("empty mask")
        return x * 10

    assert process_items([1, 2, 3], fn, report, item_id=str) == [10, 30]
    assert [(r.item, r.reason) for r in report.rejections] == [("2", "DataError: empty mask")]
    assert report.manifest()["num_rejected"] == 1

    def buggy(x: int) -> int:
        return x.missing_attribute  # type: ignore[attr-defined]

    with pytest.raises(AttributeError):
        process_items([1], buggy, report, item_id=str)
