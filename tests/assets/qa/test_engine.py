from collections import Counter

import numpy as np
import pytest

from assets.qa.config import QAConfig
from assets.qa.engine import generate_scene_qa
from assets.records import Box3D, Level, QAFormat, QAPair, Task
from tests.assets.qa.scenes import make_point_map, make_scene


def _validate(pairs):
    for p in pairs:
        QAPair.model_validate(p.model_dump())


def test_a_normal_scene_gets_every_l0_l2_task_in_every_format():
    counts = Counter()
    for seed in range(6):
        pairs, _ = generate_scene_qa(
            make_scene(seed, n_objects=8), make_point_map(seed), QAConfig(seed=seed, l0_eval_samples=12)
        )
        _validate(pairs)
        assert len({p.qa_id for p in pairs}) == len(pairs)
        counts.update((p.task, p.format) for p in pairs)
    for task in (
        Task.POINT_QUERY,
        Task.DEPTH_ORDER,
        Task.ORIENTATION,
        Task.SIZE,
        Task.LOCALIZATION,
        Task.RELATIVE_DIRECTION,
        Task.RELATIVE_DISTANCE,
        Task.RELATIONAL_COMPARISON,
    ):
        for fmt in QAFormat:
            assert counts[(task, fmt)] > 0, (task, fmt)


def test_l3_is_called_when_available():
    pairs, reasons = generate_scene_qa(make_scene(2, n_objects=8), None, QAConfig(l0_eval_samples=0))
    assert any(p.level == Level.L3 for p in pairs)
    pairs, _ = generate_scene_qa(
        make_scene(2, n_objects=8), None, QAConfig(l0_eval_samples=0, include_l3=False)
    )
    assert not any(p.level == Level.L3 for p in pairs)


def test_caps_limit_pairs_per_task():
    config = QAConfig(caps={t: 3 for t in Task}, l0_eval_samples=0, include_l3=False)
    pairs, _ = generate_scene_qa(make_scene(4, n_objects=10), None, config)
    per_task = Counter(p.task for p in pairs)
    assert per_task and all(n <= 3 + 2 for n in per_task.values())
    config = QAConfig(caps={t: 0 for t in Task}, l0_eval_samples=0, include_l3=False)
    assert generate_scene_qa(make_scene(4), None, config)[0] == []


def test_deterministic_for_a_seed():
    scene, pm = make_scene(7), make_point_map(7)
    a, _ = generate_scene_qa(scene, pm, QAConfig(seed=11))
    b, _ = generate_scene_qa(scene, pm, QAConfig(seed=11))
    c, _ = generate_scene_qa(scene, pm, QAConfig(seed=12))
    assert [p.model_dump() for p in a] == [p.model_dump() for p in b]
    assert [p.question for p in a] != [p.question for p in c]


def test_scene_with_one_object():
    pairs, reasons = generate_scene_qa(make_scene(1, n_objects=1), None, QAConfig(l0_eval_samples=0))
    _validate(pairs)
    assert pairs and {p.level for p in pairs} == {Level.L1}
    assert any("L2: needs 2+ usable objects" in r for r in reasons)


def test_scene_without_gravity_asks_only_gravity_free_questions():
    scene = make_scene(3, n_objects=6, gravity=False)
    pairs, reasons = generate_scene_qa(scene, None, QAConfig(l0_eval_samples=0))
    _validate(pairs)
    assert pairs
    for p in pairs:
        assert p.task in (
            Task.LOCALIZATION,
            Task.RELATIVE_DIRECTION,
            Task.RELATIVE_DISTANCE,
            Task.RELATIONAL_COMPARISON,
        ), p.task
        if p.task == Task.RELATIVE_DIRECTION:
            assert p.subtask == "vector"
        if p.task == Task.RELATIVE_DISTANCE:
            assert p.subtask == "direct"
        if p.task == Task.RELATIONAL_COMPARISON:
            assert p.subtask.endswith(("distance", "volume"))
    assert any("gravity" in r for r in reasons)
    assert any(r.startswith("L3") for r in reasons), reasons  # reasons L3 records on the context reach us


def test_degenerate_objects_give_fewer_questions_never_a_crash():
    scene = make_scene(5, n_objects=3)
    objects = [
        o.model_copy(update={"box3d": o.box3d.model_copy(update={"height": 1e-6})}) for o in scene.objects
    ]
    scene = scene.model_copy(update={"objects": objects})
    pairs, reasons = generate_scene_qa(scene, None, QAConfig(l0_eval_samples=0))
    assert pairs == []
    assert sum("degenerate" in r for r in reasons) == 3
    # objects sharing one center: direction vectors and distances between them are not asked
    same = make_scene(6, n_objects=2)
    twin = same.objects[1].model_copy(
        update={
            "box3d": Box3D(
                center_cam=same.objects[0].box3d.center_cam, width=0.3, height=0.3, length=0.3, yaw=0.0
            )
        }
    )
    same = same.model_copy(update={"objects": [same.objects[0], twin]})
    pairs, _ = generate_scene_qa(same, None, QAConfig(l0_eval_samples=0, include_l3=False))
    _validate(pairs)
    assert not any(p.task in (Task.RELATIVE_DISTANCE,) or p.subtask == "vector" for p in pairs)


def test_point_map_inputs():
    scene = make_scene(8)
    points, valid = make_point_map(8)
    with_tuple, _ = generate_scene_qa(scene, (points, valid), QAConfig(l0_eval_samples=6))
    with_array, _ = generate_scene_qa(scene, points, QAConfig(l0_eval_samples=6))
    assert sum(p.level == Level.L0 for p in with_tuple) >= 5
    assert sum(p.level == Level.L0 for p in with_array) >= 5
    without, reasons = generate_scene_qa(scene, None, QAConfig(l0_eval_samples=6))
    assert not any(p.level == Level.L0 for p in without) and "L0: no point map given" in reasons
    nan_map = np.full_like(points, np.nan)
    pairs, _ = generate_scene_qa(scene, nan_map, QAConfig(l0_eval_samples=6))
    assert not any(p.level == Level.L0 for p in pairs)


def test_formats_subset():
    pairs, _ = generate_scene_qa(
        make_scene(9), make_point_map(9), QAConfig(formats=[QAFormat.MULTIPLE_CHOICE], include_l3=False)
    )
    assert pairs and {p.format for p in pairs} == {QAFormat.MULTIPLE_CHOICE}


def test_config_validation():
    with pytest.raises(ValueError):
        QAConfig(units=["furlong"])
    with pytest.raises(ValueError):
        QAConfig(mc_min_options=5, mc_max_options=3)
    with pytest.raises(ValueError):
        QAConfig(formats=[])


def test_drawn_boxes_match_the_colours_a_question_mentions():
    import re

    checked = 0
    for seed in range(8):
        scene = make_scene(seed, n_objects=8, box_fallback_share=0.7)
        by_id = {o.instance_id: o for o in scene.objects}
        pairs, _ = generate_scene_qa(scene, make_point_map(seed), QAConfig(seed=seed))
        for p in pairs:
            mentioned = set(re.findall(r"highlighted by the (\w+) box", p.question))
            assert mentioned == {b.color for b in p.draw_boxes}, (p.template_id, p.question)
            for box in p.draw_boxes:
                assert box.box2d == by_id[box.instance_id].box2d
            checked += bool(mentioned)
    assert checked > 200
