import numpy as np
import pytest

from assets.qa.l0 import loc_text, loc_to_pixel, loc_tokens, sample_l0
from assets.records import QAFormat, Task
from tests.assets.qa.scenes import make_point_map


def test_loc_token_values_follow_the_paligemma_convention():
    y, x = loc_tokens(np.array([320.5, 0.0, 640.0, 639.999]), np.array([479.5, 0.0, 480.0, 0.2]), 640, 480)
    # YYYY = floor(v / H * 1024), XXXX = floor(u / W * 1024), clipped to 0..1023
    assert y.tolist() == [1022, 0, 1023, 0]
    assert x.tolist() == [512, 0, 1023, 1023]
    assert loc_text(7, 512) == "<loc0007><loc0512>"


@pytest.mark.parametrize(("w", "h"), [(640, 480), (2048, 1536), (1000, 3)])
def test_token_decoding_reads_a_pixel_with_the_same_token(w, h):
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    yb, xb = loc_tokens(cols + 0.5, rows + 0.5, w, h)
    r2, c2 = loc_to_pixel(yb, xb, w, h)
    y2, x2 = loc_tokens(c2 + 0.5, r2 + 0.5, w, h)
    assert np.array_equal(y2, yb) and np.array_equal(x2, xb)


def test_point_queries_read_the_point_map_at_valid_pixels():
    points, valid = make_point_map(0, invalid_share=0.5)
    rng = np.random.default_rng(0)
    items = sample_l0(points, valid, rng, 400, tasks=(Task.POINT_QUERY,), formats=(QAFormat.FREE_FORM,))
    assert len(items) == 400
    for item in items:
        ((col, row),) = item["pixels"]
        assert valid[row, col]
        y, x = loc_tokens(col + 0.5, row + 0.5, 640, 480)
        assert loc_text(int(y), int(x)) in item["question"]
        xyz = [float(t.rstrip("m")) for t in item["answer"].split()]
        np.testing.assert_allclose(xyz, points[row, col], atol=0.0051)


def test_plain_pixel_text_option():
    points, valid = make_point_map(1)
    items = sample_l0(points, valid, np.random.default_rng(1), 50, loc_tokens=False)
    assert items and all("<loc" not in i["question"] for i in items)
    for item in items:
        for col, row in item["pixels"]:
            assert f"({col}, {row})" in item["question"]


def test_depth_order_pairs_have_a_margin_and_a_balanced_answer():
    points, valid = make_point_map(2)
    rng = np.random.default_rng(2)
    first = second = 0
    for _ in range(50):
        for item in sample_l0(
            points, valid, rng, 20, tasks=(Task.DEPTH_ORDER,), formats=(QAFormat.FREE_FORM,)
        ):
            (c1, r1), (c2, r2) = item["pixels"]
            z1, z2 = points[r1, c1, 2], points[r2, c2, 2]
            assert abs(z1 - z2) >= 0.1 * min(z1, z2)
            first += item["answer"] == "The first point."
            second += item["answer"] == "The second point."
            closer = "closer" in item["question"]
            assert (item["answer"] == "The first point.") == ((z1 < z2) == closer)
    assert first + second == 1000
    assert abs(first - second) <= 100  # nearer-first is exactly balanced; closer/farther wording is a coin


def test_formats_true_false_balance_and_mc_options():
    points, valid = make_point_map(3)
    items = sample_l0(points, valid, np.random.default_rng(3), 600)
    by_format = {f: [i for i in items if i["format"] == f] for f in QAFormat}
    assert all(len(v) > 100 for v in by_format.values())
    tf = [i["answer"] in ("True", "Yes") for i in by_format[QAFormat.TRUE_FALSE]]
    assert abs(sum(tf) - len(tf) / 2) <= 1
    for item in by_format[QAFormat.MULTIPLE_CHOICE]:
        assert item["answer"].endswith(item["options"][item["correct_index"]])
    tasks = [i["task"] for i in items]
    # default mix follows Table 7's L0 ratio 10.51 : 2.69
    assert 0.72 < tasks.count(Task.POINT_QUERY) / len(tasks) < 0.87


def test_bad_point_maps():
    rng = np.random.default_rng(0)
    empty = np.full((10, 10, 3), np.nan, dtype=np.float32)
    assert sample_l0(empty, None, rng, 5) == []
    with pytest.raises(ValueError, match="point map"):
        sample_l0(np.zeros((10, 10)), None, rng, 5)
    sparse = np.full((100, 100, 3), np.nan, dtype=np.float32)
    sparse[3, 4] = (0.1, 0.2, 2.0)
    items = sample_l0(sparse, None, rng, 3, tasks=(Task.POINT_QUERY,), formats=(QAFormat.FREE_FORM,))
    assert items and all(i["answer"] == "0.10m 0.20m 2.00m" for i in items)
