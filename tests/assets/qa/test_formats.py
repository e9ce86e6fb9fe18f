from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from assets.qa.config import QAConfig
from assets.qa.context import QAContext
from assets.qa.formats import (
    Choice,
    FreeForm,
    Judgement,
    QABase,
    convert_length,
    emit,
    format_length,
    format_vector,
    format_xyz,
    length_distractors,
    length_value,
    multiple_choice,
    numeric_distractors,
    option_labels,
    to_meters,
)
from assets.records import QAFormat, QAPair, Task
from tests.assets.qa.scenes import make_scene


@pytest.mark.parametrize(
    ("meters", "unit", "text"),
    [
        (1.2749, "m", "1.27 m"),
        (1.275001, "m", "1.28 m"),
        (1.27, "cm", "127 cm"),
        (1.0, "ft", "3.28 ft"),
        (1.0, "in", "39.4 in"),
        (0.3048, "ft", "1.00 ft"),
        (0.0, "m", "0.00 m"),
    ],
)
def test_format_length_uses_the_requested_unit(meters, unit, text):
    assert format_length(meters, unit) == text


def test_unit_conversions_round_trip_and_match_definitions():
    assert convert_length(1.0, "in") == pytest.approx(1 / 0.0254)
    assert convert_length(2.0, "cm") == pytest.approx(200.0)
    assert to_meters(convert_length(3.7, "ft"), "ft") == pytest.approx(3.7)
    assert length_value(1.2345, "cm") == 123.0
    assert length_value(1.2345, "in") == pytest.approx(48.6)


def test_xyz_and_vector_styles():
    assert format_xyz([0.612, -0.2, 1.1749]) == "0.61m -0.20m 1.17m"
    assert format_xyz([-0.001, 0.0, 2.0]) == "0.00m 0.00m 2.00m"  # no "-0.00"
    assert format_vector([0.6, -0.8, 0.0]) == "0.60 -0.80 0.00"


def test_label_styles():
    assert option_labels("upper", 3) == ["A.", "B.", "C."]
    assert option_labels("paren_lower", 2) == ["(a)", "(b)"]
    assert option_labels("number", 3) == ["1.", "2.", "3."]
    assert option_labels("roman", 4) == ["I.", "II.", "III.", "IV."]
    with pytest.raises(ValueError):
        option_labels("emoji", 2)


def test_correct_option_position_is_uniform():
    rng = np.random.default_rng(0)
    positions = Counter()
    for _ in range(4000):
        mc = multiple_choice(rng, "Q?", "right", ["w1", "w2", "w3", "w4"], min_options=5, max_options=5)
        assert mc.options[mc.correct_index] == "right"
        assert mc.answer.endswith(" right") and mc.options.count("right") == 1
        positions[mc.correct_index] += 1
    observed = [positions[i] for i in range(5)]
    assert chisquare(observed).pvalue > 0.001, observed


def test_multiple_choice_lists_options_and_varies_size_and_style():
    rng = np.random.default_rng(1)
    sizes, styles = set(), set()
    for _ in range(300):
        mc = multiple_choice(rng, "Q?", "x", ["a", "b", "c", "d", "e", "a"], min_options=2, max_options=6)
        assert 2 <= len(mc.options) <= 6 and len(set(mc.options)) == len(mc.options)
        for option in mc.options:
            assert option in mc.question
        sizes.add(len(mc.options))
        styles.add(mc.label_style)
    assert sizes == {2, 3, 4, 5, 6}
    assert styles == {"upper", "paren_lower", "number", "roman"}
    assert multiple_choice(rng, "Q?", "x", ["x"]) is None  # no distinct distractor: no question


def test_numeric_distractors_are_unambiguous():
    rng = np.random.default_rng(2)
    for truth in (0.05, 0.8, 3.0, 40.0):
        for _ in range(200):
            values = numeric_distractors(rng, truth, 4, min_rel=0.25)
            assert len(values) == 4
            for v in values:
                assert v > 0 and not 0.75 * truth <= v <= 1.25 * truth
            for a in values:
                for b in values:
                    if a is not b:
                        assert max(a, b) / min(a, b) >= 1.15 - 1e-9
    with pytest.raises(ValueError):
        numeric_distractors(rng, 0.0, 3)


def test_emit_builds_each_enabled_format_with_balanced_truth():
    scene = make_scene(0)
    ctx = QAContext.build(scene, QAConfig(seed=3))
    obj = ctx.objects[0]
    answers = Counter()
    for i in range(200):
        base = QABase(task=Task.SIZE, subtask="width", objects=[obj], references=["the thing"], extra=str(i))
        pairs = emit(
            ctx,
            base,
            FreeForm("How wide?", "1.00 m", "t.ff", 1.0, "m"),
            Choice("How wide?", "1.00 m", ["2.00 m", "0.50 m"], "t.mc"),
            Judgement("It is 1.00 m wide.", "It is 2.00 m wide.", "t.tf"),
        )
        assert [p.format for p in pairs] == list(QAFormat)
        for p in pairs:
            QAPair.model_validate(p.model_dump())
        tf = pairs[2]
        answers[tf.answer] += 1
        assert ("1.00 m" in tf.question) == (tf.answer == "True")
    assert answers["True"] == answers["False"] == 100  # alternating coin: exact balance

    only_ff = QAContext.build(scene, QAConfig(formats=[QAFormat.FREE_FORM]))
    pairs = emit(
        only_ff,
        QABase(task=Task.SIZE, subtask="width", objects=[obj]),
        FreeForm("Q", "A", "t"),
        Choice("Q", "A", ["B"], "t"),
        Judgement("s", "f", "t"),
    )
    assert [p.format for p in pairs] == [QAFormat.FREE_FORM]


def test_yes_no_judgement_answers_yes_no():
    ctx = QAContext.build(make_scene(1), QAConfig())
    pairs = emit(
        ctx,
        QABase(task=Task.SIZE, subtask="width", objects=ctx.objects[:1]),
        judgement=Judgement("Is it wide?", "Is it narrow?", "t.yn", yes_no=True),
    )
    assert pairs[0].answer in ("Yes", "No")
    assert pairs[0].question == ("Is it wide?" if pairs[0].answer == "Yes" else "Is it narrow?")


def test_emitted_pairs_carry_exactly_the_qapair_fields():
    ctx = QAContext.build(make_scene(2), QAConfig())
    pairs = emit(
        ctx,
        QABase(task=Task.SIZE, subtask="width", objects=ctx.objects[:1]),
        FreeForm("Q", "1.00 m", "t", 1.0, "m"),
        Choice("Q", "A", ["B"], "t"),
        Judgement("s", "f", "t"),
    )
    for p in pairs:
        assert set(vars(p)) == set(QAPair.model_fields)
        assert QAPair.model_validate(p.model_dump()) == p


def test_length_distractors_stay_apart_after_rounding():
    rng = np.random.default_rng(4)
    for meters, unit in ((0.03, "cm"), (0.021, "cm"), (0.05, "in"), (0.4, "ft"), (0.02, "m")):
        truth = length_value(meters, unit)
        for _ in range(100):
            wrong = [length_value(w, unit) for w in length_distractors(rng, meters, unit, 4)]
            assert len(set(wrong)) == len(wrong) >= 1
            assert all(w > 0 and abs(w - truth) >= 0.25 * truth for w in wrong), (meters, unit, truth, wrong)
