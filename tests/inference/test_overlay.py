"""The answer drawn on the image (inference.overlay), pixel by pixel: no model, no browser."""

import numpy as np

from inference.overlay import LINE_COLOR, POINT_COLOR, draw_answer


def _is(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return (image == np.array(color, np.uint8)).all(axis=-1)


def test_a_distance_is_a_line_between_the_box_centres():
    rgb = np.full((240, 320, 3), 100, np.uint8)
    boxes = [{"box": [20, 20, 100, 100], "color": "red"}, {"box": [200, 120, 300, 220], "color": "green"}]
    out = draw_answer(rgb, boxes=boxes, kind="length", value=1.5)
    line = _is(out, LINE_COLOR)
    # centres (60, 60) and (250, 170): the line passes through the midpoint region and ends at the centres
    assert line[57:64, 57:64].any() and line[167:174, 247:254].any() and line.sum() > 300
    assert _is(out, (230, 25, 75)).sum() > 200 and _is(out, (60, 180, 75)).sum() > 200  # the boxes' colours
    assert not _is(draw_answer(rgb, boxes=boxes), LINE_COLOR).any()  # before asking: no line


def test_a_point_carries_its_xyz_and_nothing_is_drawn_outside_marks():
    rgb = np.zeros((120, 160, 3), np.uint8)
    plain = draw_answer(rgb, points=[{"u": 40, "v": 60, "xyz": None}])
    labelled = draw_answer(
        rgb, points=[{"u": 40, "v": 60, "xyz": None}], kind="vector", value=[0.5, -0.2, 1.3]
    )
    # the xyz tag makes the label wider than the bare "p1" tag
    assert _is(labelled, POINT_COLOR).sum() > _is(plain, POINT_COLOR).sum() + 200
    assert not plain[:, 100:].any()  # nothing far from the point
