"""L1/L2 rules: ambiguity, margins, balance of answers (correctness itself: test_answers_independent.py)."""

from collections import Counter

import numpy as np
from scipy.stats import chisquare

from assets.geometry import GravityFrame, extents_overlap
from assets.qa.config import QAConfig
from assets.qa.context import QAContext
from assets.qa.engine import generate_scene_qa
from assets.qa.l1 import facing_class, orientation_questions
from assets.qa.l2 import (
    direction_questions,
    extreme_questions,
    orientation_consistency_questions,
    orientation_relation,
    qualitative_relation,
)
from assets.records import Box2D, Box3D, Intrinsics, QAFormat, Scene, SceneObject, Task
from tests.assets.qa.scenes import make_scene

K = Intrinsics(fx=500, fy=500, cx=320, cy=240, width=640, height=480)
LEVEL = (0.0, 1.0, 0.0)  # gravity along image down: right = x, forward = z, up = -y


def obj(i: int, center_grav, size=(0.5, 0.5, 0.5), yaw=0.0, front=None, category="box") -> SceneObject:
    frame = GravityFrame.from_gravity(LEVEL)
    c = frame.to_cam(np.asarray(center_grav, dtype=float))
    return SceneObject(
        instance_id=i,
        category=category,
        box2d=Box2D(x0=10 * i, y0=10, x1=10 * i + 5, y1=20),
        box3d=Box3D(center_cam=tuple(c), width=size[0], height=size[1], length=size[2], yaw=yaw),
        front_grav=front,
        reference=f"the {category} {i}",
        reference_kind="written",
    )


def scene_of(*objects: SceneObject) -> Scene:
    return Scene(
        scene_id="hand",
        source="test",
        shard="t",
        intrinsics=K,
        gravity_cam=LEVEL,
        objects=list(objects),
        image_file="x.jpg",
    )


def test_no_qualitative_relation_on_overlapping_extents():
    # side by side but overlapping vertically: left/right is asked, above/below is not
    a, b = obj(1, (-1.0, 3.0, 0.0)), obj(2, (1.0, 3.0, 0.2))
    ctx = QAContext.build(scene_of(a, b))
    assert extents_overlap(a.box3d, b.box3d, ctx.frame, "up")
    assert direction_questions(ctx, a, b, "up") == []
    assert direction_questions(ctx, a, b, "forward") == []
    pairs = direction_questions(ctx, a, b, "right")
    assert {p.format for p in pairs} == set(QAFormat)
    assert qualitative_relation(ctx, a, b, "right") == "to the left of"
    assert qualitative_relation(ctx, b, a, "right") == "to the right of"
    # a yawed box reaches further: 45 deg makes a 0.5 m cube span 0.71 m, touching a box 0.6 m away
    c, d = obj(3, (0.0, 3.0, 0.0), yaw=np.pi / 4), obj(4, (0.6, 3.0, 1.5))
    ctx2 = QAContext.build(scene_of(c, d))
    assert qualitative_relation(ctx2, c, d, "right") is None
    assert qualitative_relation(ctx2, c, d, "up") == "below"
    assert qualitative_relation(ctx2, c, d, "forward") is None


def test_front_behind_means_nearer_along_forward():
    near, far = obj(1, (0.0, 2.0, 0.0)), obj(2, (0.3, 5.0, 0.0))
    ctx = QAContext.build(scene_of(near, far))
    assert qualitative_relation(ctx, near, far, "forward") == "in front of"
    assert qualitative_relation(ctx, far, near, "forward") == "behind"


def test_orientation_only_for_clear_facings():
    assert facing_class((0.0, -1.0, 0.0)) == "towards"
    assert facing_class((np.sin(0.4), -np.cos(0.4), 0.0)) == "towards"  # 23 deg off: still clear
    assert facing_class((np.sin(np.pi / 4), -np.cos(np.pi / 4), 0.0)) is None  # 45 deg: in between
    assert facing_class((-1.0, 0.05, 0.0)) == "left"
    assert facing_class((0.0, 0.0, 1.0)) == "up"
    diagonal = obj(1, (0.0, 3.0, 0.0), front=(np.sqrt(0.5), np.sqrt(0.5), 0.0), category="chair")
    unfronted = obj(2, (1.0, 3.0, 0.0))
    ctx = QAContext.build(scene_of(diagonal, unfronted))
    assert orientation_questions(ctx, diagonal) == "facing between two directions"
    assert orientation_questions(ctx, unfronted) == "no front"


def test_orientation_consistency_needs_a_clear_angle():
    assert orientation_relation((1, 0, 0), (np.cos(0.3), np.sin(0.3), 0), 20) == "similar"  # 17 deg
    assert orientation_relation((1, 0, 0), (0, 1, 0), 20) == "orthogonal"
    assert orientation_relation((1, 0, 0), (-1, 0.1, 0), 20) == "opposite"
    assert orientation_relation((1, 0, 0), (1, 1, 0), 20) is None  # 45 deg
    a = obj(1, (0, 3, 0), front=(1.0, 0.0, 0.0), category="chair")
    b = obj(2, (2, 3, 0), front=(np.sqrt(0.5), np.sqrt(0.5), 0.0), category="sofa")
    ctx = QAContext.build(scene_of(a, b))
    assert orientation_consistency_questions(ctx, a, b) == []


def test_comparisons_need_a_clear_margin():
    # camera distances 3.0, 3.1 and 5.0 m: "nearest" is too close to call, "farthest" is clear
    objs = [obj(1, (0, 3.0, 0)), obj(2, (0.5, 3.06, 0.5)), obj(3, (0, 5.0, 0))]
    ctx = QAContext.build(scene_of(*objs))
    asked = Counter()
    for _ in range(40):
        for p in extreme_questions(ctx, objs, "distance"):
            asked[p.subtask] += 1
            if p.format == QAFormat.FREE_FORM:
                assert p.answer == "The box 3."
    assert asked["max_distance"] > 0 and asked["min_distance"] == 0


def _many_pairs(n: int = 30):
    pairs = []
    for seed in range(n):
        got, _ = generate_scene_qa(
            make_scene(seed, n_objects=7), None, QAConfig(seed=seed, l0_eval_samples=0, include_l3=False)
        )
        pairs.extend(got)
    return pairs


def test_true_false_balance_per_axis_and_mc_position_balance():
    pairs = _many_pairs()
    truth = Counter()
    total = Counter()
    for p in pairs:
        if p.format == QAFormat.TRUE_FALSE:
            key = (p.task, p.subtask if p.task != Task.RELATIONAL_COMPARISON else p.subtask.split("_")[0])
            total[key] += 1
            truth[key] += p.answer in ("True", "Yes")
    for axis in ("right", "forward", "up"):
        key = (Task.RELATIVE_DIRECTION, axis)
        assert total[key] >= 20, key
        assert abs(truth[key] / total[key] - 0.5) <= 0.15, (key, truth[key], total[key])
    overall = sum(truth.values()) / sum(total.values())
    assert abs(overall - 0.5) < 0.05
    positions = Counter(
        p.correct_index for p in pairs if p.format == QAFormat.MULTIPLE_CHOICE and len(p.options) == 4
    )
    assert sum(positions.values()) > 100
    assert chisquare([positions[i] for i in range(4)]).pvalue > 0.001


def test_questions_vary_units_and_templates():
    pairs = _many_pairs(10)
    units = Counter(p.unit for p in pairs if p.unit)
    assert set(units) == {"m", "cm", "ft", "in"}
    for p in pairs:
        if p.unit and p.unit != "m" and p.format != QAFormat.TRUE_FALSE:
            assert {"cm": "centimeters", "ft": "feet", "in": "inches"}[p.unit] in p.question
    used = {}
    for p in pairs:
        used.setdefault((p.task, p.format), set()).add(p.template_id.split("/")[0])
    assert all(len(ids) >= 3 for ids in used.values()), {k: len(v) for k, v in used.items()}


def test_every_phrasing_table_has_at_least_three_templates():
    from assets.qa import formats, l0, l1, l2

    tables = [
        v
        for m in (formats, l0, l1, l2)
        for v in vars(m).values()
        if isinstance(v, tuple) and v and all(isinstance(t, formats.Template) for t in v)
    ]
    assert len(tables) >= 30
    for table in tables:
        assert len(table) >= 3, table[0].id
        assert len({t.id for t in table}) == len(table)
