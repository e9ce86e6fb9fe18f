"""VLM reference writing and grounding verification over real HTTP (tests/openai_server.py), composed with the
reference stage's own fallback rules."""

import re

import numpy as np

from assets.llm import LLMClient, LLMConfig
from assets.records import Box2D, Box3D, Intrinsics, Scene, SceneObject
from assets.references import ReferenceWriter, assign_references
from assets.storage import encode_mask_png
from assets.wild.vlm_references import VlmReferenceWriter
from tests.openai_server import error_reply, json_reply, serve

BOXES = {1: (5, 5, 25, 35), 2: (40, 5, 60, 35), 3: (10, 40, 70, 58)}  # chair, chair, table
CATEGORY = {1: "chair", 2: "chair", 3: "table"}
REFS = {
    1: ["the chair", "the red chair", "the chair near the door", "the red wooden chair near the door"],
    2: ["the chair", "the blue chair", "the chair by the window", "the blue plastic chair by the window"],
    3: ["the table", "the long table", "the table below the chairs", "the long brown table"],
}
GROUNDINGS = {
    "the chair": [list(BOXES[1]), list(BOXES[2])],  # two chairs: ambiguous
    "the red chair": [list(BOXES[1])],
    "the blue chair": [[0, 0, 10, 10]],  # wrong place: IoU too low
    "the chair by the window": [],
    "the blue plastic chair by the window": [[40, 5, 50, 20]],  # overlaps, but IoU 0.25
    "the table": [list(BOXES[3])],
}


def _scene(tmp_path):
    mask = np.zeros((60, 80), dtype=np.uint8)
    for instance_id, (x0, y0, x1, y1) in BOXES.items():
        mask[y0:y1, x0:x1] = instance_id
    (tmp_path / "masks").mkdir(exist_ok=True)
    (tmp_path / "masks" / "s.png").write_bytes(encode_mask_png(mask))
    objects = [
        SceneObject(
            instance_id=i,
            category=CATEGORY[i],
            box2d=Box2D(x0=b[0], y0=b[1], x1=b[2], y1=b[3]),
            box3d=Box3D(center_cam=(i - 2.0, 0.5, 3.0), width=0.5, height=0.8, length=0.5, yaw=1.6),
        )
        for i, b in BOXES.items()
    ]
    return Scene(
        scene_id="s",
        source="web",
        shard="x",
        image_file="i.jpg",
        mask_file="masks/s.png",
        intrinsics=Intrinsics(fx=60, fy=60, cx=40, cy=30, width=80, height=60),
        objects=objects,
        gravity_cam=(0.0, 1.0, 0.0),
    )


def _route(request):
    text = request.text
    if "Write four references" in text:
        box = [int(v) for v in re.search(r"= \[([^\]]+)\]", text).group(1).split(",")]
        instance_id = next(i for i, b in BOXES.items() if list(b) == box)
        return json_reply(
            dict(zip(("category", "attribute", "relation", "detailed"), REFS[instance_id], strict=True))
        )
    reference = re.search(r'description: "([^"]+)"', text).group(1)
    return json_reply({"boxes": GROUNDINGS.get(reference, [])})


class BoxFillSegmenter:
    """Stands in for SAM (an external model): the prompt box filled."""

    def segment(self, rgb, boxes):
        masks = []
        for b in boxes:
            m = np.zeros(rgb.shape[:2], dtype=bool)
            m[int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)] = True
            masks.append(m)
        return masks, [1.0] * len(masks)


def _client(server, **kw):
    return LLMClient(LLMConfig(base_url=server.base_url, model="vlm", backoff_s=0, max_retries=0, **kw))


def test_simplest_verified_reference_wins_and_the_rest_fall_back(tmp_path):
    scene = _scene(tmp_path)
    rgb = np.zeros((60, 80, 3), dtype=np.uint8)
    for segmenter in (None, BoxFillSegmenter()):  # box IoU, then mask IoU through the segmenter
        with serve(_route) as server:
            writer = VlmReferenceWriter(_client(server), segmenter=segmenter, root=tmp_path)
            assert isinstance(writer, ReferenceWriter)
            written = writer.write(scene, rgb)
            assert all(r.image_urls for r in server.requests)  # the image goes with every request
        assert written == {1: "the red chair", 3: "the table"}
        assert writer.stats["verified_attribute"] == 1 and writer.stats["verified_category"] == 1
        assert writer.stats["unverified"] == 1
        assert (
            writer.stats["ambiguous"] == 2 and writer.stats["low_iou"] == 2 and writer.stats["not_found"] >= 1
        )
    # composed with the reference stage: written texts kept, the unverified chair gets a geometric/fallback one
    referenced = assign_references(scene, written=written)
    by_id = {o.instance_id: o for o in referenced.objects}
    assert (by_id[1].reference, by_id[1].reference_kind) == ("the red chair", "written")
    assert by_id[3].reference == "the table"
    assert by_id[2].reference_kind != "written" and by_id[2].reference


def test_budget_and_endpoint_failures_leave_objects_to_the_fallback(tmp_path):
    scene = _scene(tmp_path)
    rgb = np.zeros((60, 80, 3), dtype=np.uint8)
    with serve(_route) as server:
        writer = VlmReferenceWriter(_client(server, max_calls=3))
        written = writer.write(scene, rgb)
    # three calls: chair 1 written and verified at its second level, then the budget stops the run
    assert (
        written == {1: "the red chair"} and writer.stats["budget_exceeded"] == 1 and len(server.requests) == 3
    )
    with serve([], default=error_reply(500)) as server:
        writer = VlmReferenceWriter(_client(server))
        assert writer.write(scene, rgb) == {}
    assert writer.stats["llm_failed"] == 3
