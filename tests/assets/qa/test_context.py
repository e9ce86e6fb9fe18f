import numpy as np

from assets.qa.config import QAConfig
from assets.qa.context import QAContext, is_box_reference, qa_id, refer
from assets.records import Box3D
from tests.assets.qa.scenes import make_scene


def test_textual_reference_is_used_as_written():
    scene = make_scene(0, box_fallback_share=0.0)
    ctx = QAContext.build(scene)
    text, boxes = refer(scene.objects[0], ctx)
    assert text == scene.objects[0].reference and boxes == []


def test_box_fallback_gets_a_distinct_colour_and_a_box_to_draw():
    scene = make_scene(0, n_objects=8, box_fallback_share=1.0)
    # one object already carries the colour chosen by the references stage
    scene.objects[2] = scene.objects[2].model_copy(
        update={
            "reference": f"the {scene.objects[2].category} (highlighted by the teal box)",
            "reference_kind": "box_fallback",
            "attributes": {"box_color": "teal"},
        }
    )
    ctx = QAContext.build(scene)
    colors = []
    for obj in ctx.objects:
        assert is_box_reference(obj)
        text, boxes = refer(obj, ctx)
        assert len(boxes) == 1 and boxes[0].instance_id == obj.instance_id and boxes[0].box2d == obj.box2d
        assert text == f"the {obj.category} (highlighted by the {boxes[0].color} box)"
        colors.append(boxes[0].color)
    assert len(set(colors)) == len(colors) == 8
    assert refer(scene.objects[2], ctx)[1][0].color == "teal"


def test_past_the_palette_objects_are_named_by_numbered_marks():
    scene = make_scene(0, n_objects=16, box_fallback_share=1.0)
    ctx = QAContext.build(scene)
    assert len(ctx.objects) == 16 and not any("box colour" in s for s in ctx.skips)
    named = [refer(obj, ctx) for obj in ctx.objects]
    marked = [(text, boxes) for text, boxes in named if "(marked " in text]
    assert [boxes[0].label for _, boxes in marked] == ["1", "2", "3"]
    assert len({text for text, _ in named}) == 16  # every object has its own name
    text, boxes = marked[1]
    question = f"How far is {text} from {named[0][0]}?"
    drawn = ctx.boxes_named_in(question, [])
    assert {(b.label, b.color) for b in drawn} == {("2", "lime"), ("", named[0][1][0].color)}


def test_known_but_not_askable_objects_are_counted_not_asked_about():
    scene = make_scene(0, n_objects=6, box_fallback_share=0.0)
    scene.objects[3] = scene.objects[3].model_copy(
        update={"askable": False, "attributes": {"not_askable": "x"}}
    )
    ctx = QAContext.build(scene)
    assert [o.instance_id for o in ctx.known] == [1, 2, 3, 4, 5, 6]
    assert [o.instance_id for o in ctx.objects] == [1, 2, 3, 5, 6]
    assert any("known, not askable (x)" in s for s in ctx.skips)
    # a labelled box whose center is behind the camera (a car beside the camera) still occupies space: known only
    box = scene.objects[0].box3d.model_copy(update={"center_cam": (1.5, 0.5, -0.4)})
    scene.objects[0] = scene.objects[0].model_copy(update={"box3d": box})
    degenerate = scene.objects[1].box3d.model_copy(update={"width": 1e-6})
    scene.objects[1] = scene.objects[1].model_copy(update={"box3d": degenerate})
    ctx = QAContext.build(scene)
    assert [o.instance_id for o in ctx.known] == [1, 3, 4, 5, 6] and [o.instance_id for o in ctx.objects] == [
        3,
        5,
        6,
    ]


def test_degenerate_and_behind_camera_objects_are_dropped():
    scene = make_scene(0, n_objects=4)
    box = scene.objects[0].box3d
    scene.objects[0] = scene.objects[0].model_copy(update={"box3d": box.model_copy(update={"width": 1e-4})})
    scene.objects[1] = scene.objects[1].model_copy(
        update={"box3d": Box3D(center_cam=(0.0, 0.0, -2.0), width=1, height=1, length=1, yaw=0)}
    )
    ctx = QAContext.build(scene)
    assert [o.instance_id for o in ctx.objects] == [3, 4]
    assert any("degenerate" in s for s in ctx.skips) and any("in front of the camera" in s for s in ctx.skips)


def test_gravity_frame_missing_or_vertical_view():
    assert QAContext.build(make_scene(0, gravity=False)).frame is None
    vertical = make_scene(0).model_copy(update={"gravity_cam": (0.0, 0.0872, -0.9962)})  # looking 85 deg up
    ctx = QAContext.build(vertical)
    assert ctx.frame is None and any("undefined" in s for s in ctx.skips)


def test_geometry_cache_matches_the_frame():
    scene = make_scene(3)
    ctx = QAContext.build(scene)
    obj = ctx.objects[0]
    g = ctx.geom(obj)
    np.testing.assert_allclose(g.center_grav, ctx.frame.cam_to_grav @ np.asarray(obj.box3d.center_cam))
    lo, hi = g.extents["up"]
    assert hi - lo == np.float64(hi - lo) and abs((hi - lo) - obj.box3d.height) < 1e-9
    assert ctx.geom(obj) is g


def test_qa_ids_are_stable_and_distinguish_their_inputs():
    a = qa_id("s1", "size", "l1.size.ff.0", [1], "free_form", "width")
    assert a == qa_id("s1", "size", "l1.size.ff.0", [1], "free_form", "width")
    assert (
        len(
            {
                a,
                qa_id("s2", "size", "l1.size.ff.0", [1], "free_form", "width"),
                qa_id("s1", "size", "l1.size.ff.1", [1], "free_form", "width"),
                qa_id("s1", "size", "l1.size.ff.0", [2], "free_form", "width"),
                qa_id("s1", "size", "l1.size.ff.0", [1], "true_false", "width"),
                qa_id("s1", "size", "l1.size.ff.0", [1], "free_form", "height"),
            }
        )
        == 6
    )


def test_default_rng_depends_on_seed_and_scene_only():
    scene = make_scene(5)
    r1 = QAContext.build(scene, QAConfig(seed=1)).rng.random()
    assert r1 == QAContext.build(scene, QAConfig(seed=1)).rng.random()
    assert r1 != QAContext.build(scene, QAConfig(seed=2)).rng.random()


def test_cached_overlap_matches_the_geometry_definition():
    from assets.geometry import extents_overlap

    disagreements = checked = 0
    for seed in range(30):
        ctx = QAContext.build(make_scene(seed, n_objects=8))
        for a in ctx.objects:
            for b in ctx.objects:
                if a is b:
                    continue
                for axis in ("right", "forward", "up"):
                    checked += 1
                    disagreements += ctx.overlaps(a, b, axis) != extents_overlap(
                        a.box3d, b.box3d, ctx.frame, axis
                    )
    assert checked > 4000 and disagreements == 0


def test_construct_pair_equals_a_validated_pair():
    from assets.qa.formats import construct_pair
    from assets.records import Level, QAFormat, QAPair, Task

    fields = dict(
        qa_id="x",
        scene_id="s",
        shard="t",
        level=Level.L1,
        task=Task.SIZE,
        subtask="width",
        format=QAFormat.FREE_FORM,
        question="q",
        answer="1.00 m",
        options=[],
        correct_index=None,
        value=1.0,
        unit="m",
        direction=None,
        object_ids=[1],
        references=["r"],
        draw_boxes=[],
        template_id="t",
        reasoning="",
        generator="template",
    )
    fast = construct_pair(**fields)
    assert fast.model_dump(mode="json") == QAPair(**fields).model_dump(mode="json")
    import pytest

    with pytest.raises(TypeError):
        construct_pair(qa_id="x")
