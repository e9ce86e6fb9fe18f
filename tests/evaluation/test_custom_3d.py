"""The custom 3D benchmark on real frames (KITTI 000008, a nuScenes CAM_FRONT sample): every L1-L3 answer and every
reference it uses is checked against the native labels, recomputed in tests/real_labels.py with numpy and the
datasets' own box convention, not with the project's geometry code."""

import json
import re

import numpy as np
import pytest

from assets.filtering import filter_shard
from assets.objects import object_clouds_shard
from assets.omni3d import DepthSpec, omni3d_shard
from assets.point_maps import point_maps_shard
from assets.references import references_shard
from assets.stage import DataError
from evaluation.benchmarks import _custom_rules
from evaluation.config import EvalConfig
from evaluation.custom import L1, L2, L3
from evaluation.custom_3d import Custom3DConfig, build_custom_3d_benchmark, load
from evaluation.scoring import score_item
from tests.real_labels import KITTI, NUSCENES, kitti_labels, nuscenes_labels, resolve

FRAMES = {"kitti": (KITTI, kitti_labels), "nuscenes": (NUSCENES, nuscenes_labels)}
UNIT_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "ft": 0.3048, "in": 0.0254}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Each real frame imported (lidar as sparse depth) and run through object_references."""
    out = {}
    for name, (folder, _) in FRAMES.items():
        root = tmp_path_factory.mktemp(name)
        omni3d_shard(
            root, "test", folder / "omni3d.json", folder, depth=DepthSpec(encoding="uint16", scale=1 / 256)
        )
        for stage in (filter_shard, point_maps_shard, object_clouds_shard, references_shard):
            report = stage(root, "test")
            assert report.num_out == 1 and not report.rejections, (name, stage.__name__, report.rejections)
        out[name] = root
    return out


def _named(item, labels):
    refs = item.meta["references"]
    assert all(ref in item.question for ref in refs), (refs, item.question)
    return [resolve(ref, item.boxes, labels) for ref in refs]


def check_gap_problem(item, named, labels) -> None:
    """The L3 rule problems: the free width between two side-by-side objects (along `right`), and whether a
    person, an item or a third object (its narrowest horizontal side) fits in it; or arm's reach."""
    q = item.question
    if "reach" in q:
        x, y = named
        distance = float(np.linalg.norm(x.center - y.center))
        if item.value is not None:
            assert item.value == pytest.approx(distance / UNIT_M[item.meta["unit"]], rel=0.01)
        return
    a, b = named[:2]
    left, right = sorted((a, b), key=lambda lb: lb.along("right"))
    gap = right.extent("right")[0] - left.extent("right")[1]
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
        width = min(named[2].w, named[2].l)
    fits = width < gap
    assert said_yes == ((not fits) if ("too narrow" in q or "too wide" in q) else fits), q


@pytest.mark.parametrize("frame", sorted(FRAMES))
@pytest.mark.parametrize("seed", range(3))
def test_l1_l2_l3_answers_match_the_native_labels(roots, frame, seed):
    labels = FRAMES[frame][1]()
    items, report = build_custom_3d_benchmark(
        roots[frame], ["test"], Custom3DConfig(l1_per_scene=10, l2_per_scene=30, l3_per_scene=10, seed=seed)
    )
    counts = report.metadata
    assert counts[L1] >= 5 and counts[L2] == 30 and not report.rejections
    for item in items:
        named = _named(item, labels)
        if item.category == L1:
            (obj,) = named
            assert item.value == pytest.approx(np.linalg.norm(obj.center), abs=1e-6)
        elif item.category == L2:
            a, b = named
            truth = (b.center - a.center) / np.linalg.norm(b.center - a.center)
            assert np.allclose(item.direction, truth, atol=1e-6)
        else:
            check_gap_problem(item, named, labels)


def test_items_score_with_the_custom_rules(roots):
    items, _ = build_custom_3d_benchmark(roots["kitti"], ["test"], Custom3DConfig(l3_per_scene=0))
    rules = _custom_rules(EvalConfig())
    l1 = next(i for i in items if i.category == L1)
    assert score_item(l1, f"{l1.value * 1.2:.2f} m", rules).correct
    assert not score_item(l1, f"{l1.value * 1.3:.2f} m", rules).correct
    l2 = next(i for i in items if i.category == L2)
    assert score_item(l2, " ".join(f"{c:.3f}" for c in l2.direction), rules).correct
    assert not score_item(l2, " ".join(f"{-c:.3f}" for c in l2.direction), rules).correct


def test_registered_as_custom_3d_and_scored_end_to_end(roots, tmp_path):
    from evaluation.run import score_benchmark

    split = roots["kitti"] / "object_references" / "test"
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
    config = EvalConfig(
        data={"custom_3d": str(split)},
        predictions={"custom_3d": str(preds)},
        use_judge=False,
        output_dir=tmp_path / "scores",
    )
    report = score_benchmark(roots["kitti"], "custom_3d", None, config)
    assert report.status == "ok", report
    n1 = sum(i.category == L1 for i in items)
    assert report.metrics["L1"] == pytest.approx(100.0 * (n1 - 1) / n1) and report.metrics["L2"] == 100.0
    with pytest.raises(DataError, match="object_references/<shard>"):
        load(roots["kitti"], EvalConfig())


def test_a_split_without_references_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="object_references first"):
        build_custom_3d_benchmark(tmp_path, ["nope"])
