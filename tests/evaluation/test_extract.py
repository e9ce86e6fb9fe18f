"""Answer extraction on real-looking model outputs, including the toolkit traps listed in BENCHMARKS.md."""

import pytest

from evaluation.extract import (
    extract_choice,
    extract_clock,
    extract_number,
    extract_qspatial,
    extract_quantity,
    extract_vector,
    extract_yes_no,
    find_quantities,
)

LABELS = ["A", "B", "C", "D"]
OPTIONS = ["the red mug", "the lamp", "the sofa", "the bookshelf"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", 1),
        ("(c)", 2),
        ("D.", 3),
        ("**B**", 1),
        ("[A]", 0),
        ("The answer is B.", 1),  # trap: a start-anchored regex reads this as "T"
        ("The correct answer is (C) the sofa.", 2),
        ("Answer: d", 3),
        ("Option B", 1),
        ("\\boxed{C}", 2),
        ("B. the lamp", 1),
        ("(A) the red mug is closer", 0),
        ("C - the sofa", 2),
        ("<think>Could be A or C. The lamp is far.</think>C", 2),
        ("<answer>D</answer>", 3),
        ("the lamp", 1),  # option text instead of the letter
        ("It is the bookshelf, clearly.", 3),
        ("I believe (B) is right because of the shadow.", 1),
    ],
)
def test_choice_styles(text, expected):
    assert extract_choice(text, LABELS, OPTIONS).index == expected


@pytest.mark.parametrize(
    "text",
    [
        "A mug sits on a table near the window.",  # trap: sentence-initial article "A" is not option A
        "I cannot tell from this image.",  # pronoun "I" is not a label
        "the answer is a chair",  # lowercase article after a marker
        "",
    ],
)
def test_choice_refuses_to_guess(text):
    assert extract_choice(text, LABELS, OPTIONS).index is None


def test_choice_labels_in_other_styles():
    assert extract_choice("(b)", ["(a)", "(b)"], ["left", "right"]).index == 1
    assert extract_choice("2", ["1", "2", "3"], ["x", "y", "z"]).index == 1
    assert extract_choice("The answer is II", ["I", "II", "III"], ["x", "y", "z"]).index == 1
    # an option nested inside a longer option: the longer one named wins
    assert (
        extract_choice("to the left of the lamp", ["A", "B"], ["left", "to the left of the lamp"]).index == 1
    )
    # two options named: ambiguous
    assert extract_choice("the sofa or the lamp", LABELS, OPTIONS).index is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", True),
        ("yes.", True),
        ("No, it is not.", False),
        ("True", True),
        ("False.", False),
        ("**No**", False),
        ("The answer is yes.", True),
        ("Based on the image, the answer is no", False),
        ("There is no dog in the image.", False),
        ("I do not know", None),  # trap: "not"/"know" contain "no"
        ("It cannot be determined.", None),  # trap: "cannot"
        ("Nothing can be seen", None),
        ("", None),
    ],
)
def test_yes_no(text, expected):
    assert extract_yes_no(text) is expected


@pytest.mark.parametrize(
    ("text", "meters"),
    [
        ("1.27 m", 1.27),
        ("It is about 1.5 meters wide.", 1.5),
        ("150 cm", 1.5),
        ("1500mm", 1.5),
        ("3 ft", 0.9144),
        ("5 feet", 1.524),
        ("10 inches", 0.254),
        ('12"', 0.3048),
        ("6'", 1.8288),
        ("5'6\"", 1.6764),
        ("1 meter 20 cm", 1.2),
        ("2 feet 3 inches", 0.6858),
        ("3.5-4 m", 3.75),
        ("3.5 - 4 meters", 3.75),
        ("between 2 and 3 meters", 2.5),
        ("3 to 4 feet", 1.0668),
        ("five feet", 1.524),
        ("twenty-five centimeters", 0.25),
        ("half a meter", 0.5),
        ("about a foot", 0.3048),
        ("The width of Region [0] is 1.2 meters.", 1.2),  # the region index is not the answer
        ("The chair is 40 cm wide, so the answer is 0.9 m.", 0.9),  # last answer marker wins
        ("1,200 mm", 1.2),
    ],
)
def test_quantity(text, meters):
    assert extract_quantity(text) == pytest.approx(meters, rel=1e-6)


def test_bare_number_needs_a_default_unit():
    assert extract_quantity("1.5") is None
    assert extract_quantity("1.5", default_unit="m") == pytest.approx(1.5)
    assert extract_quantity("no idea") is None


def test_negative_numbers_are_not_ranges():
    values = [q.value for q in find_quantities("0.61m -0.20m 1.17m")]
    assert values == pytest.approx([0.61, -0.20, 1.17])


@pytest.mark.parametrize(
    ("text", "xyz"),
    [
        ("0.61m -0.20m 1.17m", (0.61, -0.20, 1.17)),
        ("(0.61, -0.2, 1.17)", (0.61, -0.2, 1.17)),
        ("x=0.61 m, y=-0.20 m, z=1.17 m", (0.61, -0.2, 1.17)),
        ("The direction is [61 cm, -20 cm, 117 cm].", (0.61, -0.2, 1.17)),
    ],
)
def test_vector(text, xyz):
    assert extract_vector(text) == pytest.approx(xyz)


def test_vector_needs_three_numbers():
    assert extract_vector("the direction is 0.5 1.0") is None


def test_qspatial_official_reading():
    assert extract_qspatial(r"\scalar{3} \distance_unit{feet}") == pytest.approx(0.9144)
    assert extract_qspatial(r"\scalar{3-4} \distance_unit{meters}") == pytest.approx(3.5)  # range -> mean
    assert extract_qspatial(
        r"first \scalar{1} \distance_unit{m}, final \scalar{50} \distance_unit{cm}"
    ) == pytest.approx(0.5)
    assert extract_qspatial(r"\scalar{120}") == pytest.approx(1.2)  # no unit: centimeters (official)
    assert extract_qspatial("about 2 meters") == pytest.approx(2.0)  # free text fallback


def test_numbers_and_clock():
    assert extract_number("There are three chairs.") == 3
    assert extract_number("The answer is 12") == 12
    assert extract_clock("It is at 2 o'clock.") == 2
    assert extract_clock("roughly the 11 o’clock direction") == 11
    assert extract_clock("to the left") is None
