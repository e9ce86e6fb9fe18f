import pytest
from pydantic import ValidationError

from assets.records import Box2D, Box3D, Intrinsics, Level, QAFormat, QAPair, Scene, Task
from assets.stage import DataError, StageReport, process_items


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
    ok = QAPair(**base, level=Level.L1, task=Task.SIZE, format=QAFormat.MULTIPLE_CHOICE, options=["a", "b"],
                correct_index=1)
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
