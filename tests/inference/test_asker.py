"""SpatialAsker on a tiny random checkpoint of the real model class: what goes in (prompt, loc tokens, drawn
boxes, point maps) and what comes out (answer text, parsed kind, shapes), every bad input a clear error, and the
three ways of naming a checkpoint (our directory, `latest`, the official release layout)."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from inference import AskInputError, AskRequest, SpatialAsker
from inference.answers import infer_kind, parse_answer
from inference.inputs import MAX_IMAGE_SIDE, fill_question


def test_boxes_and_points_reach_the_prompt_as_training_writes_them(tiny_asker, room_image):
    answer = tiny_asker.ask(
        room_image,
        "How far is {b1} from {b2}? Compare with {p1}.",
        boxes=["20,30,60,80:chair", "100,50,140,100"],
        points=["10,20"],
    )
    # pixel (u=10, v=20) of a 160x120 image: YYYY = floor(20 / 120 * 1024) = 170, XXXX = floor(10 / 160 * 1024) = 64
    assert answer.prompt == (
        "How far is the chair (highlighted by the red box) from the object (highlighted by the "
        "green box)? Compare with <loc0170><loc0064>."
    )
    assert answer.kind == "length" and answer.unit == "m" and isinstance(answer.answer, str)
    assert answer.value is None or isinstance(answer.value, float)
    assert [b["color"] for b in answer.boxes] == ["red", "green"] and answer.image_size == (160, 120)
    assert answer.point_map == "moge-2"
    xyz = answer.points[0]["xyz"]
    assert xyz is None or (len(xyz) == 3 and all(math.isfinite(c) for c in xyz))
    json.dumps(answer.to_dict())  # the --json output is plain JSON


def test_the_model_sees_the_boxes_drawn(plain_asker, room_image):
    from training.data import resize_rgb

    with_box = plain_asker.prepare(
        AskRequest(image=room_image, question="How tall is {b}?", boxes=["5,5,150,115"])
    )
    without = plain_asker.prepare(AskRequest(image=room_image, question="How tall is the thing?"))
    size = plain_asker.loaded.image_size
    assert with_box.example.image.shape == (size, size, 3)
    assert np.array_equal(without.example.image, resize_rgb(np.asarray(Image.open(room_image)), size))
    diff = np.abs(with_box.example.image.astype(int) - without.example.image.astype(int)).sum(axis=-1) > 0
    # the outline runs along the border of the box: the first resized row inside it changed, the centre did not
    assert diff[2].any() and not diff[size // 2, size // 2]


def test_a_box_on_a_large_photo_stays_visible_to_the_model(plain_asker, tmp_path):
    """The outline is drawn at the model's input size (as the official release draws it), so a box on a
    4000x3000 photo is a full-strength red line in the model's 56-px input, not a sub-pixel tint."""
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (4000, 3000), (128, 128, 128)).save(photo)
    prepared = plain_asker.prepare(
        AskRequest(image=photo, question="How tall is {b}?", boxes=["800,600,3200,2400"])
    )
    image = prepared.example.image.astype(int)
    red = (
        (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    )  # PIL "red", as training draws it
    assert red.sum() >= 4 * 20  # four sides of a ~34-px square, 2 px wide, minus corners


def test_user_depth_and_intrinsics_give_the_point_map(tiny_asker, room_image, tmp_path):
    depth = np.full((120, 160), 2.5, np.float32)
    np.save(tmp_path / "depth.npy", depth)
    answer = tiny_asker.ask(
        room_image,
        "What are the 3D coordinates of {p}?",
        points=["30,40"],
        depth=str(tmp_path / "depth.npy"),
        intrinsics="100,100,80,60",
    )
    assert answer.point_map == "user depth" and answer.kind == "vector"
    # pinhole through the pixel centre (u + 0.5, v + 0.5): x = (30.5 - 80) / 100 * 2.5, y = (40.5 - 60) / 100 * 2.5
    assert answer.points[0]["xyz"] == pytest.approx([-1.2375, -0.4875, 2.5], abs=1e-4)


def test_batched_generation_answers_like_one_at_a_time(plain_asker, room_image):
    requests = [
        AskRequest(image=room_image, question=q, points=p)
        for q, p in [
            ("Is {p1} closer to the camera than {p2}?", ["10,10", "150,100"]),
            ("How far is the table from the camera?", []),
            ("What are the 3D coordinates of the point at {p}?", ["80,60"]),
        ]
    ]
    together = plain_asker.ask_many(requests, batch_size=3)
    alone = [plain_asker.ask(r) for r in requests]
    assert [a.answer for a in together] == [a.answer for a in alone]
    assert [a.kind for a in together] == ["yes_no", "length", "vector"]


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"question": ""}, "the question is empty"),
        ({"question": "   "}, "the question is empty"),
        (
            {"question": "Where is {p1}?", "points": ["160,10"]},
            "point 1 (160, 10) lies outside the 160x120 image",
        ),
        ({"question": "Where is {p1}?", "points": ["-1,10"]}, "lies outside"),
        ({"question": "Where is {p2}?", "points": ["1,1"]}, "names {p2} but only 1 point"),
        ({"question": "How big is {b}?", "boxes": ["0,0,200,50"]}, "reaches outside the 160x120 image"),
        ({"question": "How big is {b}?", "boxes": ["50,50,10,10"]}, "needs x1 > x0"),
        ({"question": "How big is {b}?", "boxes": ["1,2,3"]}, "expected four numbers"),
        ({"question": "Where?", "points": ["a,b"]}, "expected numbers"),
        ({"question": "Where?", "depth": "missing.npy", "intrinsics": "1,1,1,1"}, "no such file"),
        ({"question": "Where?", "intrinsics": "1,1,1,1"}, "intrinsics were given without a depth map"),
        ({"question": "Where?", "kind": "colour"}, "answer kind 'colour' is not one of"),
    ],
)
def test_bad_requests_are_clear_errors(plain_asker, room_image, request_kwargs, message):
    with pytest.raises(
        AskInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")
    ):
        plain_asker.ask(AskRequest(image=room_image, **request_kwargs))


def test_bad_images_are_clear_errors(plain_asker, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1)).save(tiny)
    huge = tmp_path / "huge.png"
    Image.new("L", (20_000, 16)).save(huge)  # a few KB on disk, refused from its header before decoding
    cases = {
        garbage: "unreadable image",
        tiny: "image is 1x1 px; each side must be at least 8 px",
        huge: f"image is 20000x16 px; the longest side may be at most {MAX_IMAGE_SIDE}",
        tmp_path / "nope.png": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(AskInputError, match=message):
            plain_asker.ask(path, "How far is it?")
    # a bad image in a batch costs its own slot only
    results = plain_asker.ask_many(
        [
            AskRequest(image=garbage, question="Is it?"),
            AskRequest(image=np.zeros((32, 32, 3), np.uint8), question="Is it?"),
        ]
    )
    assert isinstance(results[0], AskInputError) and results[1].kind == "yes_no"


def test_checkpoint_without_weights_is_a_clear_error(tiny_checkpoint, tmp_path):
    broken = tmp_path / "no-weights"
    broken.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", broken / "config.json")
    with pytest.raises(AskInputError, match=r"no weights \(model.safetensors is missing\)"):
        SpatialAsker.from_checkpoint(broken)
    with pytest.raises(AskInputError, match="not a checkpoint"):
        SpatialAsker.from_checkpoint(tmp_path)
    with pytest.raises(AskInputError, match="no such directory"):
        SpatialAsker.from_checkpoint(tmp_path / "missing")


def test_unknown_registry_name_is_a_clear_error(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(AskInputError, match="models:/no-such-model/1: not found in the MLflow registry"):
        SpatialAsker.from_checkpoint("models:/no-such-model/1", tracking_uri=uri)
    with pytest.raises(AskInputError, match="not found in the MLflow registry"):
        SpatialAsker.from_checkpoint("models:/no-such-model/champion", tracking_uri=uri)


def test_latest_is_the_newest_checkpoint_under_the_data_root(tiny_checkpoint, tmp_path):
    from inference.loading import resolve_local

    root = tmp_path / "data"
    with pytest.raises(AskInputError, match="run `hispatial demo` first"):
        resolve_local("latest", root)
    old, new = root / "checkpoints" / "run-a", root / "checkpoints" / "run-b"
    shutil.copytree(tiny_checkpoint, new)
    shutil.copytree(tiny_checkpoint, old)
    os.utime(old / "model.safetensors", (1_000_000, 1_000_000))
    assert resolve_local("latest", root) == new
    assert resolve_local("run-a", root) == old


def test_official_layout_answers_like_our_checkpoint(tiny_checkpoint, tmp_path, room_image):
    """The same weights exported to the official release layout (weights.pt + config.json, no tokenizer) and
    imported back give the same answers; without a processor the error says what to pass."""
    from training.checkpoints import export_official, load_checkpoint

    model, _, _ = load_checkpoint(tiny_checkpoint)
    official = export_official(model, tmp_path / "HiSpatial-3B")
    with pytest.raises(AskInputError, match="no tokenizer files: pass the PaliGemma-2 processor"):
        SpatialAsker.from_checkpoint(official)
    theirs = SpatialAsker.from_checkpoint(official, processor=str(tiny_checkpoint), max_new_tokens=6)
    ours = SpatialAsker.from_checkpoint(tiny_checkpoint, max_new_tokens=6)
    request = AskRequest(
        image=room_image, question="How far is {b1} from {b2}?", boxes=["1,1,40,40", "50,50,90,90"]
    )
    assert theirs.loaded.kind == "official" and theirs.ask(request).answer == ours.ask(request).answer


def test_fill_question_appends_points_the_question_does_not_place():
    assert fill_question("Which is closer?", ["<a>", "<b>"], []) == (
        "Which is closer? Points: the first point at <a>, the second point at <b>."
    )
    assert fill_question("Depth at {p}?", ["<a>"], []) == "Depth at <a>?"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How far is the chair from the door?", "length"),
        ("What is the height of the lamp in centimeters?", "length"),
        ("Is the cup to the left of the plate?", "yes_no"),
        ("What are the 3D coordinates of the point at <loc0001><loc0002>?", "vector"),
        ("How many chairs are within 2 meters?", "number"),
        ("Which is closer to the camera?\nA. the chair\nB. the table", "choice"),
        ("Describe the image.", "judged"),
    ],
)
def test_kind_is_read_from_the_question(question, kind):
    assert infer_kind(question).value == kind


def test_answers_parse_with_the_evaluation_extractors():
    assert parse_answer("The distance is about 1 meter 20 cm.", "length").value == pytest.approx(1.2)
    assert parse_answer("1.27", "length").value == pytest.approx(1.27)  # our model's convention: meters
    assert parse_answer("0.61m -0.20m 1.17m", "vector").value == [0.61, -0.2, 1.17]
    choice = parse_answer("B. the table", "choice", ["the chair", "the table"])
    assert choice.value == {"index": 1, "label": "B", "option": "the table"}
    assert parse_answer("Yes, it is.", "yes_no").value is True
    assert parse_answer("I cannot know", "yes_no").value is None
    assert parse_answer("five", "number").value == 5
    assert parse_answer("<loc0001>", "length").reason == "no length found"


def test_moge_runs_once_per_batch_and_agrees_with_one_at_a_time(tiny_asker, room_image):
    requests = [
        AskRequest(image=room_image, question="What are the 3D coordinates of {p}?", points=[p])
        for p in ("20,30", "120,90")
    ]
    together = tiny_asker.ask_many(requests, batch_size=2)
    alone = [tiny_asker.ask(r) for r in requests]
    for a, b in zip(together, alone, strict=True):
        assert a.point_map == b.point_map == "moge-2"
        assert (a.points[0]["xyz"] is None) == (b.points[0]["xyz"] is None)
        if a.points[0]["xyz"] is not None:
            assert a.points[0]["xyz"] == pytest.approx(b.points[0]["xyz"], rel=1e-3, abs=1e-3)
