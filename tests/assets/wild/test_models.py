"""Model adapters end to end with tiny random-initialised models of the real classes, and the pure post-processing
between them. Random weights predict garbage: these tests pin shapes, dtypes, conventions and bad-input handling."""

import numpy as np
import pytest

from assets.point_maps import PointMapEstimate, PointMapEstimator
from assets.records import Box2D, Scene
from assets.sources import placeholder_intrinsics
from assets.stage import DataError
from assets.wild.clip import (
    EXCLUDE_TAGS,
    INCLUDE_TAGS,
    OBJECT_VOCABULARY,
    ClipScorer,
    ClipTagFilter,
    ClipTagger,
)
from assets.wild.detect import (
    Detection,
    GroundingDinoDetector,
    filter_detections,
    phrase_category,
    subtract_contained,
)
from assets.wild.moge import MoGeEstimator, _pixel_intrinsics
from assets.wild.segment import Sam2Segmenter

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 255, (60, 80, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def moge():
    return MoGeEstimator.tiny(num_tokens=16, fov_x_deg=60.0)


def test_moge_batched_estimates_keep_order_and_shapes(moge):
    assert isinstance(moge, PointMapEstimator)
    small = IMAGE[:40, :50].copy()
    results = moge.estimate_batch([IMAGE, small, IMAGE])
    assert [r.points.shape for r in results] == [(60, 80, 3), (40, 50, 3), (60, 80, 3)]
    for result, (h, w) in zip(results, [(60, 80), (40, 50), (60, 80)], strict=True):
        assert isinstance(result, PointMapEstimate) and result.points.dtype == np.float32
        assert result.valid.shape == (h, w) and result.valid.dtype == bool
        assert np.isfinite(result.points[result.valid]).all() and np.isnan(result.points[~result.valid]).all()
        # the known 60 degree FOV reaches the intrinsics: fx = W / (2 tan 30deg), principal point centred
        assert result.intrinsics.fx == pytest.approx(w / (2 * np.tan(np.radians(30))), rel=1e-3)
        assert (result.intrinsics.cx, result.intrinsics.cy) == pytest.approx((w / 2, h / 2))
    # the same image twice in one batch gives the same answer (no cross-talk between batch items)
    assert np.array_equal(results[0].valid, results[2].valid)


def test_moge_rejects_bad_input_and_bad_focal(moge):
    with pytest.raises(DataError, match="uint8"):
        moge.estimate(IMAGE.astype(np.float32))
    with pytest.raises(DataError, match="focal"):
        _pixel_intrinsics(np.array([[-0.5, 0, 0.5], [0, -0.6, 0.5], [0, 0, 1]]), 80, 60)
    K = _pixel_intrinsics(np.array([[0.8, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]), 80, 60)
    assert (K.fx, K.fy, K.cx, K.cy) == (64.0, 60.0, 40.0, 30.0)


@pytest.fixture(scope="module")
def clip():
    texts = list(INCLUDE_TAGS) + list(EXCLUDE_TAGS) + [f"a photo of a {v}" for v in OBJECT_VOCABULARY]
    return ClipScorer.tiny(texts)


def test_clip_filter_votes(clip):
    scene = Scene(
        scene_id="s", source="web", shard="x", intrinsics=placeholder_intrinsics(80, 60), image_file="i"
    )
    sims = clip.similarities([IMAGE, IMAGE[::-1]], ["a chart", "a photo of a kitchen"])
    assert sims.shape == (2, 2) and np.all(np.abs(sims) <= 1.0 + 1e-5)
    keep, reason = ClipTagFilter(clip, top_k=5)(IMAGE, scene)
    votes, top = ClipTagFilter(clip, top_k=5).votes(IMAGE)
    assert keep == (votes * 2 > 5) and len(top) == 5 and f"{votes}/5" in reason
    # with only exclude tags in reach every vote is against; with only include tags every vote is for
    assert (
        ClipTagFilter(clip, include=["a photo of a kitchen"], exclude=EXCLUDE_TAGS, top_k=3).votes(IMAGE)[0]
        <= 1
    )
    assert ClipTagFilter(clip, include=INCLUDE_TAGS, exclude=[], top_k=3)(IMAGE, scene)[0]
    assert not ClipTagFilter(clip, include=[], exclude=EXCLUDE_TAGS, top_k=3)(IMAGE, scene)[0]
    with pytest.raises(ValueError):
        ClipTagFilter(clip, top_k=0)


def test_clip_tagger_returns_vocabulary_words(clip):
    tags = ClipTagger(clip, top_k=4, min_margin=1.0).tag(IMAGE)
    assert len(tags) == 4 and set(tags) <= set(OBJECT_VOCABULARY)
    assert ClipTagger(clip, top_k=4, min_margin=0.0).tag(IMAGE) == tags[:1]


def test_grounding_dino_tiny_detects_prompt_categories():
    detector = GroundingDinoDetector.tiny(["chair", "table", "cup"])
    detections = detector.detect(IMAGE, ["chair", "table", "cup"])
    assert detections, "with thresholds at 0 a random model still returns boxes"
    for d in detections:
        assert d.category in {"chair", "table", "cup"}
        assert 0 <= d.box.x0 < d.box.x1 <= 80 and 0 <= d.box.y0 < d.box.y1 <= 60
    assert detector.detect(IMAGE, []) == []


def test_phrase_category_picks_the_first_named_prompt():
    assert phrase_category("cup table", ["chair", "table", "cup"]) == "cup"
    assert phrase_category("trash can", ["can", "trash can"]) == "trash can"
    assert phrase_category("[SEP]", ["chair"]) is None


def test_detection_filters_and_nms():
    def det(x0, y0, x1, y1, score, cat="chair"):
        return Detection(Box2D(x0=x0, y0=y0, x1=x1, y1=y1), cat, score)

    dets = [
        det(10, 10, 50, 50, 0.9),
        det(11, 11, 51, 51, 0.8, "sofa"),  # duplicate under another phrase
        det(60, 10, 70, 20, 0.2),  # low confidence
        det(0, 0, 1, 1, 0.9),  # speck
        det(0, 0, 100, 100, 0.9),  # the whole image
        det(60, 30, 90, 60, 0.5),
    ]
    kept = filter_detections(dets, image_area=100 * 100)
    assert [(d.category, d.score) for d in kept] == [("chair", 0.9), ("chair", 0.5)]
    assert filter_detections([], 100.0) == []


def test_contained_masks_are_subtracted_from_their_container():
    table = np.zeros((20, 20), dtype=bool)
    table[5:15, 2:18] = True
    cup = np.zeros_like(table)
    cup[6:9, 4:7] = True
    neighbour = np.zeros_like(table)
    neighbour[12:20, 15:20] = True  # overlaps the table but mostly lies outside it
    table_out, cup_out, neighbour_out = subtract_contained([table, cup, neighbour])
    assert not (table_out & cup).any() and cup_out.sum() == 9
    assert (table_out & neighbour).any()  # partial overlap is not containment
    assert table_out.sum() == table.sum() - 9


def test_sam2_tiny_masks_per_box():
    segmenter = Sam2Segmenter.tiny()
    boxes = [Box2D(x0=5, y0=5, x1=40, y1=30), Box2D(x0=30, y0=20, x1=75, y1=55)]
    masks, scores = segmenter.segment(IMAGE, boxes)
    assert len(masks) == 2 and len(scores) == 2
    assert all(m.shape == (60, 80) and m.dtype == bool for m in masks)
    one, _ = segmenter.segment(IMAGE, boxes[:1])
    assert len(one) == 1 and one[0].shape == (60, 80)
    assert segmenter.segment(IMAGE, []) == ([], [])


def test_moge_estimates_for_a_known_camera(moge):
    """Ground-truth 3D sources without depth hand their camera in; MoGe-2 is given its FOV, not its own guess."""
    from assets.point_maps import CalibratedPointMapEstimator
    from assets.records import Intrinsics

    known = Intrinsics(fx=130.0, fy=130.0, cx=40.0, cy=30.0, width=80, height=60)
    rgb = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    assert isinstance(moge, CalibratedPointMapEstimator)
    estimate = moge.estimate(rgb, known=known)
    assert estimate.intrinsics.fx == pytest.approx(
        130.0, rel=1e-4
    )  # the constructor's 60 deg FOV is overridden
