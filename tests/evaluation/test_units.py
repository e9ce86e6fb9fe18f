import pytest

from evaluation.units import canonical_unit, from_meters, to_meters


@pytest.mark.parametrize(
    ("value", "unit", "meters"),
    [
        (1, "m", 1),
        (1, "Meters", 1),
        (100, "cm", 1),
        (1000, "millimeters", 1),
        (1, "ft", 0.3048),
        (1, "feet", 0.3048),
        (1, "inch", 0.0254),
        (1, '"', 0.0254),
        (1, "'", 0.3048),
        (1, "yards", 0.9144),
    ],
)
def test_to_meters(value, unit, meters):
    assert to_meters(value, unit) == pytest.approx(meters)


def test_unknown_unit_is_an_error_not_a_guess():
    assert canonical_unit("parsecs") is None
    with pytest.raises(ValueError):
        to_meters(1.0, "parsecs")


def test_round_trip():
    assert from_meters(to_meters(5.0, "ft"), "ft") == pytest.approx(5.0)
