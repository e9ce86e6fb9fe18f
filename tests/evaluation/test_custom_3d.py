"""The custom 3D benchmark on a real KITTI frame: every L1-L3 answer and every reference is checked against the
native KITTI labels (tests/fixtures/omni3d/kitti_000008/label_2.txt, calib_P2.txt), recomputed here with numpy and
KITTI's own box convention (location = bottom center, dimensions h w l, x = +-l/2 and z = +-w/2 turned by ry),
not with the project's geometry code."""

import re
from pathlib import Path

import numpy as np
import pytest

from assets.filtering import filter_shard
from assets.objects import object_clouds_shard
from assets.omni3d import DepthSpec, omni3d_shard
from assets.point_maps import point_maps_shard
from assets.references import references_shard
from assets.stage import DataError
from assets.storage import read_scenes
from evaluation.benchmarks import _custom_rules
from evaluation.config import EvalConfig
from evaluation.custom import L1, L2, L3
from evaluation.custom_3d import Custom3DConfig, build_custom_3d_benchmark
from evaluation.scoring import score_item

KITTI = Path(__file__).resolve().parents[1] / "fixtures" / "omni3d" / "kitti_000008"
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")


class Label:
    """One KITTI label_2 line, in the image's own camera frame (cam 2: rectified cam-0 frame + K^-1 P2[:, 3])."""

    def __init__(self, line: str, shift: np.ndarray):
        f = line.split()
        self.type = f[0]
        self.bbox = [float(v) for v in f[4:8]]
        h, w, length = (float(v) for v in f[8:11])
        self.w, self.l = w, length
        location = np.array([float(v) for v in f[11:14]]) + shift
        ry = float(f[14])
        self.center = location - np.array([0.0, h / 2, 0.0])
        c, s = np.cos(ry), np.sin(ry)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        local = np.array([[sx * length / 2, sy, sz * w / 2] for sx in (-1, 1) for sy in (0.0, -h) for sz in (-1, 1)])
        self.corners = local @ rot.T + location


def native_labels() -> list[Label]:
    P2 = np.array([float(v) for v in (KITTI / "calib_P2.txt").read_text().split()[1:]]).reshape(3, 4)
    shift = np.linalg.solve(P2[:, :3], P2[:, 3])
    lines = (KITTI / "label_2.txt").read_text().splitlines()
    return [Label(line, shift) for line in lines if not line.startswith("DontCare")]


def resolve(phrase: str, boxes: list[tuple], labels: list[Label]) -> Label:
    """Our reference phrases, read against the labels: KITTI's camera is level (the boxes' vertical axis is the
    camera's y), so left-right is camera x, front-back is camera z."""
    if m := re.fullmatch(r"the car \(highlighted by the (\w+) box\)", phrase):
        (box,) = [b for b in boxes if b[4] == m.group(1)]
        (label,) = [lb for lb in labels if np.allclose(lb.bbox, [min(max(v, 0), 1242) for v in box[:4]], atol=0.01)]
        return label
    if m := re.fullmatch(rf"the ({'|'.join(ORDINALS)}) car from the (left|right|front|back)", phrase):
        rank, end = ORDINALS.index(m.group(1)), m.group(2)
        axis = 0 if end in ("left", "right") else 2
        order = sorted(labels, key=lambda lb: lb.center[axis], reverse=end in ("right", "back"))
        return order[rank]
    if m := re.fullmatch(r"the (leftmost|rightmost|frontmost|rearmost) car", phrase):
        axis = 0 if m.group(1) in ("leftmost", "rightmost") else 2
        return sorted(labels, key=lambda lb: lb.center[axis], reverse=m.group(1) in ("rightmost", "rearmost"))[0]
    if m := re.fullmatch(r"the (?:(\w+) )?(closest|farthest) car (?:to|from) the camera", phrase):
        rank = ORDINALS.index(m.group(1)) if m.group(1) else 0
        order = sorted(labels, key=lambda lb: np.linalg.norm(lb.center), reverse=m.group(2) == "farthest")
        return order[rank]
    raise AssertionError(f"unexpected reference phrase {phrase!r}")


PHRASE = r"the car \(highlighted by the \w+ box\)|the (?:\w+ )?car from the \w+|the \w+most car|the (?:\w+ )?(?:closest|farthest) car (?:to|from) the camera"


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    omni3d_shard(root, "kitti-test", KITTI / "omni3d.json", KITTI, depth=DepthSpec(encoding="uint16", scale=1 / 256))
    for stage in (filter_shard, point_maps_shard, object_clouds_shard, references_shard):
        report = stage(root, "kitti-test")
        assert report.num_out == 1 and not report.rejections, (stage.__name__, report.rejections)
    return root


def test_every_reference_names_its_own_labelled_car(kitti_root):
    (scene,) = read_scenes(kitti_root / "object_references/kitti-test/scenes.jsonl")
    labels = native_labels()
    assert len(scene.objects) == len(labels) == 6  # every labelled car is in the scene
    assert scene.metadata["point_map_source"] == "ground_truth" and scene.metadata["depth_density"] == "sparse"
    for obj in scene.objects:
        boxes = [(*obj.box2d.as_list(), obj.attributes["box_color"])] if "box_color" in obj.attributes else []
        own = resolve(obj.reference, boxes, labels)
        assert np.allclose(own.center, obj.box3d.center_cam, atol=1e-6), obj.reference


UNIT_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "ft": 0.3048, "in": 0.0254}


def check_gap_problem(item, labels: list[Label]) -> None:
    """The L3 rule problems on this frame are all about the free width between two side-by-side cars (along the
    camera's x axis), and whether a person, an item or a third car (its narrowest horizontal side) fits in it."""
    q = item.question
    pair = re.search(rf"between ({PHRASE}) and ({PHRASE})", q)
    a, b = (resolve(pair.group(k), item.boxes, labels) for k in (1, 2))
    left, right = sorted((a, b), key=lambda lb: lb.center[0])
    gap = right.corners[:, 0].min() - left.corners[:, 0].max()
    if item.value is not None:  # numeric (free form or choice): the gap in the question's unit
        assert item.value == pytest.approx(gap / UNIT_M[item.meta["unit"]], rel=0.01)
        return
    said_yes = item.answer.startswith("Yes")
    if "walk through" in q:
        assert said_yes == ((gap <= 0.6) if "too narrow" in q else (gap > 0.6))
        return
    if m := re.search(r"an item ([\d.]+) (m|cm|mm|ft|in) wide", q):
        width = float(m.group(1)) * UNIT_M[m.group(2)]
    else:
        (thing,) = [p for p in re.findall(PHRASE, q) if p not in (pair.group(1), pair.group(2))]
        car = resolve(thing, item.boxes, labels)
        width = min(car.w, car.l)
    fits = width < gap
    assert said_yes == ((not fits) if ("too narrow" in q or "too wide" in q) else fits), q


@pytest.mark.parametrize("seed", range(4))
def test_l1_l2_l3_answers_match_the_native_labels(kitti_root, seed):
    items, report = build_custom_3d_benchmark(
        kitti_root, ["kitti-test"], Custom3DConfig(l1_per_scene=6, l2_per_scene=30, l3_per_scene=10, seed=seed))
    labels = native_labels()
    counts = report.metadata
    assert counts[L1] == 6 and counts[L2] == 30 and counts[L3] >= 1 and not report.rejections
    for item in items:
        named = [resolve(p, item.boxes, labels) for p in re.findall(PHRASE, item.question)]
        if item.category == L1:
            (car,) = named
            assert item.value == pytest.approx(np.linalg.norm(car.center), abs=1e-6)
        elif item.category == L2:
            a, b = named
            truth = (b.center - a.center) / np.linalg.norm(b.center - a.center)
            assert np.allclose(item.direction, truth, atol=1e-6)
        else:
            check_gap_problem(item, labels)


def test_items_score_with_the_custom_rules(kitti_root):
    items, _ = build_custom_3d_benchmark(kitti_root, ["kitti-test"], Custom3DConfig(l3_per_scene=0))
    rules = _custom_rules(EvalConfig())
    l1 = next(i for i in items if i.category == L1)
    assert score_item(l1, f"{l1.value * 1.2:.2f} m", rules).correct
    assert not score_item(l1, f"{l1.value * 1.3:.2f} m", rules).correct
    l2 = next(i for i in items if i.category == L2)
    assert score_item(l2, " ".join(f"{c:.3f}" for c in l2.direction), rules).correct
    assert not score_item(l2, " ".join(f"{-c:.3f}" for c in l2.direction), rules).correct


def test_a_split_without_references_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="object_references first"):
        build_custom_3d_benchmark(tmp_path, ["nope"])


def test_registered_as_custom_3d_and_scored_end_to_end(kitti_root, tmp_path):
    import json

    from evaluation.custom_3d import load
    from evaluation.run import score_benchmark

    split = kitti_root / "object_references" / "kitti-test"
    items = [i for i in load(split, EvalConfig()) if i.category != L3]
    lines = []
    for item in items:  # right answers, except one L1 off by 30 %
        if item.category == L1:
            factor = 1.3 if item is items[0] else 1.0
            lines.append({"id": item.item_id, "prediction": f"{item.value * factor:.2f} m"})
        else:
            lines.append({"id": item.item_id, "prediction": " ".join(f"{c:.3f}" for c in item.direction)})
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(line) for line in lines))
    config = EvalConfig(data={"custom_3d": str(split)}, predictions={"custom_3d": str(preds)}, use_judge=False,
                        output_dir=tmp_path / "scores")
    report = score_benchmark(kitti_root, "custom_3d", None, config)
    assert report.status == "ok", report
    n1 = sum(i.category == L1 for i in items)
    assert report.metrics["L1"] == pytest.approx(100.0 * (n1 - 1) / n1) and report.metrics["L2"] == 100.0
    with pytest.raises(DataError, match="object_references/<shard>"):
        load(kitti_root, EvalConfig())
