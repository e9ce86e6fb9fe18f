import json

import numpy as np
import pytest

from assets.checks import reference_problems
from assets.filtering import filter_shard
from assets.geometry import GravityFrame
from assets.objects import object_clouds_shard
from assets.point_maps import point_maps_shard
from assets.records import Box2D, Box3D, Intrinsics, Scene, SceneObject
from assets.references import (
    BOX_COLORS,
    ReferenceConfig,
    assign_references,
    references_shard,
    resolve_reference,
)
from assets.storage import read_scenes
from tests.assets.scene_fixtures import FLOOR_Y, BoxSpec, gravity_for_pitch, living_room, write_source_shard

INTR = Intrinsics(fx=500, fy=500, cx=320, cy=240, width=640, height=480)
BOX2D = Box2D(x0=0, y0=0, x1=10, y1=10)


def make_scene(
    objects: list[tuple[str, tuple[float, float, float], tuple[float, float, float]]],
    gravity=(0.0, 1.0, 0.0),
) -> Scene:
    """Objects as (category, center_cam, (width, height, length)); yaw 0."""
    return Scene(
        scene_id="s",
        source="test",
        shard="t",
        intrinsics=INTR,
        gravity_cam=gravity,
        has_ground_truth_3d=True,
        image_file="x.jpg",
        objects=[
            SceneObject(
                instance_id=i,
                category=cat,
                box2d=BOX2D,
                box3d=Box3D(center_cam=c, width=s[0], height=s[1], length=s[2], yaw=0.0),
            )
            for i, (cat, c, s) in enumerate(objects, start=1)
        ],
    )


def refs(scene: Scene) -> dict[int, tuple[str | None, str | None]]:
    return {o.instance_id: (o.reference, o.reference_kind) for o in scene.objects}


def assert_unique_and_resolving(scene: Scene) -> None:
    texts = [o.reference for o in scene.objects]
    assert all(texts), texts
    assert len(set(texts)) == len(texts), texts
    for obj in scene.objects:
        assert resolve_reference(scene, obj.reference) == obj.instance_id, (obj.reference, refs(scene))


def test_unique_category_and_linear_order():
    scene = assign_references(living_room()[0])
    got = refs(scene)
    assert got[1] == ("the sofa", "category")
    assert got[5] == ("the table", "category")
    assert got[2] == ("the first chair from the left", "linear_order")
    assert got[3] == ("the second chair from the left", "linear_order")
    assert got[4] == ("the first chair from the right", "linear_order")
    assert_unique_and_resolving(scene)


def test_three_collinear_cups_on_a_table():
    y = 0.5  # cups on a table top half a meter below the camera
    scene = assign_references(make_scene([("cup", (x, y, 2.0), (0.08, 0.1, 0.08)) for x in (0.3, -0.3, 0.0)]))
    got = refs(scene)
    assert got[2][0] == "the first cup from the left"
    assert got[3][0] == "the second cup from the left"
    assert got[1][0] == "the first cup from the right"
    assert {kind for _, kind in got.values()} == {"linear_order"}
    assert_unique_and_resolving(scene)


def test_two_chairs_at_nearly_the_same_x_are_told_apart_by_distance_not_side():
    scene = assign_references(
        make_scene(
            [("chair", (0.08, 0.7, 4.0), (0.45, 0.9, 0.45)), ("chair", (0.0, 0.7, 2.5), (0.45, 0.9, 0.45))]
        )
    )
    got = refs(scene)
    assert got[1] == ("the farthest chair from the camera", "positional")
    assert got[2] == ("the closest chair to the camera", "positional")
    assert not any("left" in t or "right" in t for t, _ in got.values())
    assert_unique_and_resolving(scene)


def test_two_same_size_overlapping_boxes_fall_back_to_distinct_colored_boxes():
    scene = assign_references(
        make_scene([("box", (-0.1, 0.8, 2.0), (0.4, 0.4, 0.4)), ("box", (0.1, 0.8, 2.15), (0.4, 0.4, 0.4))])
    )
    got = refs(scene)
    assert got[1] == ("the box (highlighted by the red box)", "box_fallback")
    assert got[2] == ("the box (highlighted by the green box)", "box_fallback")
    assert [o.attributes["box_color"] for o in scene.objects] == ["red", "green"]
    assert_unique_and_resolving(scene)


def test_cups_closer_than_the_margin_fall_back_even_though_their_extents_are_apart():
    # 0.10 m apart along x (< 0.15 m gap), extents [-.09,-.01] and [.01,.09] do not overlap: still ambiguous
    scene = assign_references(
        make_scene(
            [("cup", (-0.05, 0.5, 2.0), (0.08, 0.1, 0.08)), ("cup", (0.05, 0.5, 2.0), (0.08, 0.1, 0.08))]
        )
    )
    assert {kind for _, kind in refs(scene).values()} == {"box_fallback"}
    # widening the gap past the margin makes "leftmost" acceptable
    scene = assign_references(
        make_scene(
            [("cup", (-0.1, 0.5, 2.0), (0.08, 0.1, 0.08)), ("cup", (0.1, 0.5, 2.0), (0.08, 0.1, 0.08))]
        )
    )
    assert refs(scene) == {1: ("the leftmost cup", "positional"), 2: ("the rightmost cup", "positional")}


def test_margin_is_configurable():
    cups = [("cup", (-0.1, 0.5, 2.0), (0.08, 0.1, 0.08)), ("cup", (0.1, 0.5, 2.0), (0.08, 0.1, 0.08))]
    strict = assign_references(make_scene(cups), ReferenceConfig(min_gap_m=0.25))
    assert {kind for _, kind in refs(strict).values()} == {"box_fallback"}


def test_size_references_when_positions_overlap():
    # two lamps standing side by side, overlapping on every axis; nearly equal volume, very different heights
    tall = ("lamp", (0.0, FLOOR_Y - 0.75, 3.0), (0.2, 1.5, 0.2))
    short = ("lamp", (0.1, FLOOR_Y - 0.25, 3.05), (0.35, 0.5, 0.35))
    scene = assign_references(make_scene([tall, short]))
    assert refs(scene) == {1: ("the tallest lamp", "size"), 2: ("the shortest lamp", "size")}
    assert_unique_and_resolving(scene)
    # a clearly bigger box wins on volume first
    scene = assign_references(
        make_scene([("box", (0.0, 0.8, 2.0), (0.5, 0.5, 0.5)), ("box", (0.1, 0.8, 2.1), (0.3, 0.3, 0.3))])
    )
    assert refs(scene) == {1: ("the largest box", "size"), 2: ("the smallest box", "size")}


def test_ranked_positional_reference_for_scattered_instances():
    y = 0.6
    scene = assign_references(
        make_scene([("bowl", (x, y, z), (0.2, 0.1, 0.2)) for x, z in ((-1, 3), (0, 5), (1, 2.5), (2, 6))])
    )
    got = refs(scene)
    assert got[1][0] == "the leftmost bowl"
    assert got[2][0] == "the second bowl from the left"
    assert got[4][0] == "the rightmost bowl"
    assert got[3][0] in {"the closest bowl to the camera", "the second bowl from the right"}
    assert all(kind == "positional" for _, kind in got.values())
    assert_unique_and_resolving(scene)


def test_up_is_gravity_up_not_image_up_for_a_pitched_camera():
    gravity = gravity_for_pitch(30.0)
    frame = GravityFrame.from_gravity(gravity)
    higher = frame.to_cam(np.array([0.0, 2.0, 0.3]))  # (right, forward, up) in the gravity frame
    lower = frame.to_cam(np.array([0.0, 5.0, 0.0]))
    assert lower[1] < higher[1]  # in the image, the lower (farther) book appears higher
    scene = make_scene(
        [("book", tuple(higher), (0.2, 0.05, 0.15)), ("book", tuple(lower), (0.2, 0.05, 0.15))],
        gravity=gravity,
    )
    assert resolve_reference(scene, "the topmost book") == 1
    assert resolve_reference(scene, "the bottommost book") == 2
    assert resolve_reference(scene, "the closest book to the camera") == 1


def test_no_gravity_frame_allows_only_distance_and_size():
    objects = [("chair", (-1.0, 0.7, 3.0), (0.45, 0.9, 0.45)), ("chair", (1.0, 0.7, 3.0), (0.45, 0.9, 0.45))]
    scene = make_scene(objects)
    scene.gravity_cam = None
    scene = assign_references(scene)
    assert {kind for _, kind in refs(scene).values()} == {"box_fallback"}  # left/right needs gravity
    assert resolve_reference(scene, "the leftmost chair") is None


def test_past_the_palette_objects_get_numbered_marks():
    many = [("box", (0.01 * i, 0.8, 2.0), (0.4, 0.4, 0.4)) for i in range(len(BOX_COLORS) + 2)]
    scene = assign_references(make_scene(many))
    kinds = [o.reference_kind for o in scene.objects]
    assert kinds.count("box_fallback") == len(BOX_COLORS) and kinds.count("box_mark") == 2
    colours = [o.attributes["box_color"] for o in scene.objects if o.reference_kind == "box_fallback"]
    assert len(set(colours)) == len(colours)
    marked = [o for o in scene.objects if o.reference_kind == "box_mark"]
    assert [o.reference for o in marked] == ["the box (marked 1)", "the box (marked 2)"]
    assert [resolve_reference(scene, o.reference) for o in marked] == [o.instance_id for o in marked]
    assert not any(reference_problems(scene).values())


def test_known_but_not_askable_objects_count_for_uniqueness_and_get_no_fallback():
    objects = [
        ("cone", (-1.0, 0.8, 4.0), (0.3, 0.5, 0.3)),
        ("cone", (1.0, 0.8, 4.0), (0.3, 0.5, 0.3)),
        ("sign", (3.0, 0.0, 4.0), (0.6, 0.6, 0.1)),
        ("sign", (-3.0, 0.0, 4.0), (0.6, 0.6, 0.1)),
    ]
    scene = make_scene(objects, gravity=gravity_for_pitch(5))
    scene.objects[1].askable = False  # labelled, not in view
    scene.objects[3].askable = False
    scene.objects[2].box3d.center_cam = (3.0, 0.0, 4.0)
    scene.objects[3].box3d.center_cam = (
        3.05,
        0.0,
        4.05,
    )  # overlapping the askable sign: no geometric reference
    scene = assign_references(scene)
    cone, _, sign, hidden_sign = scene.objects
    assert cone.reference == "the leftmost cone"  # never "the cone": a second cone is labelled
    assert sign.reference_kind == "box_fallback" and hidden_sign.reference_kind == "not_askable"
    assert hidden_sign.reference is None and "box_color" not in hidden_sign.attributes
    assert not any(reference_problems(scene).values())


def test_random_scenes_every_reference_unique_and_resolving():
    rng = np.random.default_rng(7)
    kinds_seen = set()
    for _ in range(60):
        pitch = float(rng.uniform(0, 35))
        gravity = gravity_for_pitch(pitch)
        frame = GravityFrame.from_gravity(gravity)
        objects = []
        for _k in range(int(rng.integers(2, 8))):
            category = str(rng.choice(["chair", "cup", "lamp"]))
            grav = np.array([rng.uniform(-2, 2), rng.uniform(1.5, 6), rng.uniform(-1.2, 0.5)])
            size = tuple(float(v) for v in rng.uniform(0.1, 0.9, size=3))
            objects.append((category, tuple(frame.to_cam(grav)), size))
        scene = assign_references(make_scene(objects, gravity=gravity))
        texts = [o.reference for o in scene.objects]
        assert len(set(texts)) == len(texts)
        for obj in scene.objects:
            kinds_seen.add(obj.reference_kind)
            assert resolve_reference(scene, obj.reference) == obj.instance_id, (obj.reference, refs(scene))
    assert {"category", "positional", "size", "box_fallback"} <= kinds_seen


def test_resolver_rejects_what_it_cannot_pin_down():
    scene = assign_references(living_room()[0])
    assert resolve_reference(scene, "the chair") is None  # three chairs
    assert resolve_reference(scene, "the lamp") is None  # no lamp
    assert resolve_reference(scene, "the fifth chair from the left") is None  # only three
    assert resolve_reference(scene, "a nice place to sit") is None
    assert resolve_reference(scene, "The Sofa.") == 1  # case and trailing period do not matter


class ScriptedWriter:
    """A reference writer that returns fixed texts per scene, as a VLM endpoint would."""

    def __init__(self, texts: dict[str, dict[int, str]]):
        self.texts = texts

    def write(self, scene, rgb):
        assert rgb.shape == (scene.intrinsics.height, scene.intrinsics.width, 3)
        return self.texts.get(scene.scene_id, {})


def test_written_references_are_preferred_but_checked():
    scene, *_ = living_room()
    written = {
        1: "the blue sofa by the wall",
        2: "the chair",
        3: "the first chair from the right",
        4: "the red seat",
    }
    out = refs(assign_references(scene, written=written))
    assert out[1] == ("the blue sofa by the wall", "written")
    assert out[2] == ("the first chair from the left", "linear_order")  # "the chair" is ambiguous
    assert out[3] == ("the second chair from the left", "linear_order")  # written text names object 4
    assert out[4] == ("the red seat", "written")
    duplicated = refs(assign_references(scene, written={2: "the red seat", 4: "the red seat"}))
    assert duplicated[2][1] == duplicated[4][1] == "linear_order"


@pytest.fixture
def object_clouds_root(tmp_path):
    rendered = [living_room("room-0", "s0")]
    # two identical boxes side by side: must fall back
    from tests.assets.scene_fixtures import scene_from_specs

    boxes = [
        BoxSpec("box", (-0.15, FLOOR_Y - 0.2, 3.0), (0.4, 0.4, 0.4), color=(200, 200, 40)),
        BoxSpec("box", (0.15, FLOOR_Y - 0.2, 3.2), (0.4, 0.4, 0.4), color=(40, 200, 200)),
    ]
    rendered.append(scene_from_specs("boxes-0", boxes, shard="s0"))
    write_source_shard(tmp_path, "s0", rendered)
    for stage in (filter_shard, point_maps_shard, object_clouds_shard):
        report = stage(tmp_path, "s0")
        assert report.num_out == 2, report.rejections
    return tmp_path


def test_references_shard_end_to_end(object_clouds_root):
    report = references_shard(
        object_clouds_root, "s0", writer=ScriptedWriter({"room-0": {1: "the big blue couch"}})
    )
    assert report.num_in == report.num_out == 2
    scenes = {s.scene_id: s for s in read_scenes(object_clouds_root / "object_references/s0/scenes.jsonl")}
    room = scenes["room-0"]
    assert [o.reference for o in room.objects] == [
        "the big blue couch",
        "the first chair from the left",
        "the second chair from the left",
        "the first chair from the right",
        "the table",
    ]
    assert [o.reference_kind for o in scenes["boxes-0"].objects] == ["box_fallback", "box_fallback"]
    assert report.metadata["references_written"] == 1
    assert report.metadata["references_box_fallback"] == 2
    assert report.metadata["references_category"] == 1
    manifest = json.loads((object_clouds_root / "object_references/s0/_manifest.json").read_text())
    assert manifest["num_out"] == 2 and manifest["metadata"]["references_linear_order"] == 3
    assert report.preview[0]["scene_id"] == "room-0"


def test_a_category_with_an_instance_outside_3d_gets_only_box_fallbacks():
    from assets.records import Annotation2D

    scene = make_scene(
        [("cone", (-1.0, 0.8, 4.0), (0.3, 0.5, 0.3)), ("sign", (1.0, 0.0, 4.0), (0.6, 0.6, 0.1))]
    )
    scene.annotations_2d = [
        Annotation2D(category="cone", box2d=Box2D(x0=1, y0=1, x1=5, y1=9), annotation_id=7)
    ]
    scene = assign_references(scene)
    cone, sign = scene.objects
    assert cone.reference_kind == "box_fallback" and sign.reference == "the sign"  # never "the cone"
    scene.has_ground_truth_3d = False  # COCO-style scenes: annotations_2d are the objects' own source boxes
    assert assign_references(scene).objects[0].reference == "the cone"
