"""The in-the-wild object extractor: composition, accuracy with oracle masks, and a whole shard through the real
stages (sources -> filtering -> point_maps -> object_clouds) with tiny random models."""

import json

import numpy as np
import pytest

from assets.filtering import filter_shard
from assets.geometry import box2d_from_mask, depth_to_points
from assets.objects import ObjectExtractor, object_clouds_shard
from assets.point_maps import point_maps_shard
from assets.records import Annotation2D, Box2D, Scene
from assets.sources import coco_shard
from assets.stage import DataError, ShardFailure
from assets.storage import encode_jpeg, read_scenes
from assets.wild.box_scenes import render_box_scene
from assets.wild.extractor import WildObjectExtractor
from assets.wild.moge import MoGeEstimator
from assets.wild.segment import Sam2Segmenter


class OracleSegmenter:
    """Stands in for SAM (an external model, not ours): the true instance mask whose box best matches the prompt."""

    def __init__(self, instance_ids: np.ndarray) -> None:
        self.instance_ids = instance_ids

    def segment(self, rgb, boxes):
        from assets.geometry import box2d_iou

        ids = [i for i in np.unique(self.instance_ids) if i]
        truth = {i: box2d_from_mask(self.instance_ids == i) for i in ids}
        masks = [self.instance_ids == max(ids, key=lambda i: box2d_iou(truth[i], box)) for box in boxes]
        return masks, [1.0] * len(masks)


def _scene_with_boxes(scene_3d, category="box", score=1.0):
    annotations = [
        Annotation2D(category=category, box2d=box2d_from_mask(scene_3d.instance_ids == i), score=score)
        for i in np.unique(scene_3d.instance_ids)
        if i
    ]
    return Scene(
        scene_id="s",
        source="coco",
        shard="x",
        intrinsics=scene_3d.intrinsics,
        image_file="i.jpg",
        annotations_2d=annotations,
    )


def test_extractor_with_dataset_boxes_recovers_the_boxes():
    truth = render_box_scene(3, width=240, height=180)
    points = depth_to_points(truth.depth, truth.intrinsics)
    valid = np.isfinite(points).all(axis=-1)
    rgb = np.zeros((180, 240, 3), dtype=np.uint8)
    extractor = WildObjectExtractor(segmenter=OracleSegmenter(truth.instance_ids))
    assert isinstance(extractor, ObjectExtractor)
    result = extractor.extract(rgb, points, valid, _scene_with_boxes(truth, category="crate", score=0.8))
    assert result.objects and all(o.category == "crate" for o in result.objects)
    assert all(
        o.attributes["detector_score"] == "0.800" for o in result.objects
    )  # the annotation's own score
    assert np.degrees(np.arccos(np.clip(np.dot(result.gravity_cam, truth.gravity_cam), -1, 1))) < 1.0
    assert result.instance_mask.dtype == np.uint8 and result.instance_mask.shape == (180, 240)
    checked = 0
    for obj in result.objects:
        mask = result.instance_mask == obj.instance_id
        assert obj.num_pixels == mask.sum() and obj.front_grav is None  # no orientation model: no guess
        true_index = int(np.bincount(truth.instance_ids[mask]).argmax()) - 1
        if truth.visible_fraction[true_index] < 0.9:
            continue
        center = truth.center_cam(true_index)
        assert np.linalg.norm(np.asarray(obj.box3d.center_cam) - center) < 0.05 * np.linalg.norm(center)
        assert obj.box3d.height == pytest.approx(truth.boxes[true_index].height, rel=0.1)
        checked += 1
    assert checked >= 2


class FixedAzimuth:
    """Stands in for OrientAnything (an external model, not on PyPI): the same view azimuth for every object."""

    def __init__(self, azimuth_deg):
        self.azimuth_deg = azimuth_deg

    def view_azimuth_deg(self, rgb, box):
        return self.azimuth_deg


def test_orientation_is_read_against_each_object_s_viewing_ray():
    """Azimuth 0 means "the camera is straight in front": every object then faces the camera along its own ray,
    not along the optical axis (off-centre objects would be turned by their angle off the axis); 90 means the
    camera stands on the object's left, so the front is the ray turned clockwise by 90 degrees."""
    from assets.geometry import GravityFrame

    truth = render_box_scene(3, width=240, height=180)
    points = depth_to_points(truth.depth, truth.intrinsics)
    valid = np.isfinite(points).all(axis=-1)
    rgb = np.zeros((180, 240, 3), dtype=np.uint8)
    off_axis = []
    for azimuth, expected_turn in ((0.0, 0.0), (90.0, -90.0)):
        extractor = WildObjectExtractor(
            segmenter=OracleSegmenter(truth.instance_ids), orientation_model=FixedAzimuth(azimuth)
        )
        result = extractor.extract(rgb, points, valid, _scene_with_boxes(truth))
        frame = GravityFrame.from_gravity(result.gravity_cam)
        for obj in result.objects:
            to_camera = -frame.to_grav(np.asarray(obj.box3d.center_cam))[:2]
            to_camera /= np.linalg.norm(to_camera)
            front = np.asarray(obj.front_grav)[:2]
            turn = np.degrees(
                np.arctan2(to_camera[0] * front[1] - to_camera[1] * front[0], to_camera @ front)
            )
            assert turn == pytest.approx(expected_turn, abs=0.5)
            # the box's length axis is the footprint axis nearest the front, signed like it (docs/CONVENTIONS.md)
            assert np.cos(obj.box3d.yaw - np.arctan2(front[1], front[0])) >= np.cos(np.radians(45)) - 1e-9
            off_axis.append(abs(np.degrees(np.arctan2(to_camera[0], -to_camera[1]))))
    assert max(off_axis) > 5  # some object is off the optical axis, where the correction matters

    class NoFront:
        def view_azimuth_deg(self, rgb, box):
            return None

    result = WildObjectExtractor(
        segmenter=OracleSegmenter(truth.instance_ids), orientation_model=NoFront()
    ).extract(rgb, points, valid, _scene_with_boxes(truth))
    assert all(o.front_grav is None for o in result.objects)


def test_extractor_bad_inputs_are_data_errors():
    truth = render_box_scene(3, width=120, height=90)
    points = depth_to_points(truth.depth, truth.intrinsics)
    valid = np.isfinite(points).all(axis=-1)
    rgb = np.zeros((90, 120, 3), dtype=np.uint8)
    plain = Scene(scene_id="s", source="web", shard="x", intrinsics=truth.intrinsics, image_file="i.jpg")
    with pytest.raises(DataError, match="no detector"):
        WildObjectExtractor(segmenter=OracleSegmenter(truth.instance_ids)).extract(rgb, points, valid, plain)

    # a real (tiny) detector that finds nothing: the image has no objects for us
    from assets.wild.detect import GroundingDinoDetector

    blind = GroundingDinoDetector.tiny(["chair"], box_threshold=1.01)
    with pytest.raises(DataError, match="no objects: nothing detected"):
        WildObjectExtractor(
            segmenter=OracleSegmenter(truth.instance_ids), detector=blind, categories=["chair"]
        ).extract(rgb, points, valid, plain)
    with pytest.raises(DataError, match="no categories"):
        WildObjectExtractor(segmenter=OracleSegmenter(truth.instance_ids), detector=blind).extract(
            rgb, points, valid, plain
        )

    class NoMasks:  # a segmenter that returns nothing
        def segment(self, rgb, boxes):
            return [], []

    with pytest.raises(DataError, match="0 masks"):
        WildObjectExtractor(segmenter=NoMasks()).extract(rgb, points, valid, _scene_with_boxes(truth))
    # a wall-only point map: no support plane, so no gravity and no boxes (never a guessed frame)
    wall = depth_to_points(np.full((90, 120), 3.0), truth.intrinsics)
    with pytest.raises(DataError, match="no gravity"):
        WildObjectExtractor(segmenter=OracleSegmenter(truth.instance_ids)).extract(
            rgb, wall, np.ones((90, 120), dtype=bool), _scene_with_boxes(truth)
        )


@pytest.fixture(scope="module")
def sam():
    return Sam2Segmenter.tiny()


def test_tagger_detector_segmenter_chain_with_tiny_models(sam):
    """Unannotated image: CLIP tagger -> GroundingDINO -> SAM-2 -> geometry on a true point map. Random weights
    give garbage masks, so the result is either objects consistent with the instance mask or a named DataError."""
    from assets.wild.clip import OBJECT_VOCABULARY, ClipScorer, ClipTagger
    from assets.wild.detect import GroundingDinoDetector

    truth = render_box_scene(0, width=96, height=72)
    points = depth_to_points(truth.depth, truth.intrinsics)
    valid = np.isfinite(points).all(axis=-1)
    rgb = np.random.default_rng(1).integers(0, 255, (72, 96, 3), dtype=np.uint8)
    tagger = ClipTagger(
        ClipScorer.tiny([f"a photo of a {v}" for v in OBJECT_VOCABULARY]), top_k=3, min_margin=1.0
    )
    extractor = WildObjectExtractor(
        segmenter=sam,
        detector=GroundingDinoDetector.tiny(OBJECT_VOCABULARY),
        tagger=tagger,
        min_score=0.0,
        min_mask_pixels=20,
    )
    scene = Scene(scene_id="s", source="web", shard="x", intrinsics=truth.intrinsics, image_file="i.jpg")
    try:
        result = extractor.extract(rgb, points, valid, scene)
    except DataError as err:
        assert str(err).startswith("no objects")
        return
    assert result.gravity_cam is not None
    tags = set(tagger.tag(rgb))
    for obj in result.objects:
        assert obj.category in tags
        assert obj.num_pixels == int((result.instance_mask == obj.instance_id).sum()) >= 20
    assert set(np.unique(result.instance_mask)) - {0} == {o.instance_id for o in result.objects}


def test_shard_through_the_real_stages_with_tiny_models(tmp_path, sam):
    """COCO-style images -> filter -> MoGe-2 (tiny) -> SAM-2 (tiny) + geometry: every scene either comes out with
    consistent objects or is rejected with a reason; nothing is lost."""
    images = tmp_path / "imgs"
    images.mkdir()
    truth = render_box_scene(0, width=96, height=72)
    shade = (truth.instance_ids * 40 + 30).astype(np.uint8)
    rgb = np.stack([shade, 255 - shade, np.full_like(shade, 128)], axis=-1)
    (images / "1.jpg").write_bytes(encode_jpeg(rgb))
    (images / "2.jpg").write_bytes(b"corrupt")
    boxes = [box2d_from_mask(truth.instance_ids == i) for i in np.unique(truth.instance_ids) if i]
    ann = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 96, "height": 72},
            {"id": 2, "file_name": "2.jpg", "width": 96, "height": 72},
        ],
        "categories": [{"id": 1, "name": "box"}],
        "annotations": [
            {
                "id": k,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "bbox": [b.x0, b.y0, b.x1 - b.x0, b.y1 - b.y0],
            }
            for k, b in enumerate(boxes)
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    root = tmp_path / "data"
    shard = "o365-000"
    source = coco_shard(root, shard, tmp_path / "ann.json", images)
    assert (source.num_out, len(source.rejections)) == (1, 1)
    filter_shard(root, shard)
    maps = point_maps_shard(root, shard, estimator=MoGeEstimator.tiny(num_tokens=16, fov_x_deg=60.0))
    assert maps.num_in == maps.num_out + len(maps.rejections)
    # a random point map has no floor: without a gravity prior the only scene is rejected ("no gravity") and the
    # shard fails as a whole; the smoke runs' level-camera prior lets it through to the geometry
    with pytest.raises(ShardFailure, match="no gravity"):
        object_clouds_shard(root, shard, extractor=WildObjectExtractor(segmenter=sam))
    extractor = WildObjectExtractor(segmenter=sam, fallback_gravity_cam=(0.0, 1.0, 0.0))
    for scene in read_scenes(root / "point_maps" / shard / "scenes.jsonl"):  # the dataset boxes travel on
        assert [a.box2d.as_list() for a in scene.annotations_2d] == [b.as_list() for b in boxes]
    objects = object_clouds_shard(root, shard, extractor=extractor)
    assert objects.num_in == maps.num_out
    kept = read_scenes(root / "object_clouds" / shard / "scenes.jsonl")
    assert len(kept) + len({r.item for r in objects.rejections if "/" not in r.item}) == objects.num_in
    assert kept and kept[0].gravity_cam == (0.0, 1.0, 0.0)
    for scene in kept:
        assert scene.objects and scene.gravity_cam is not None
        assert len(scene.annotations_2d) == len(
            boxes
        )  # kept as the source's record next to the lifted objects
        assert all(isinstance(o.box2d, Box2D) and o.box3d.height > 0 for o in scene.objects)
    for rejection in objects.rejections:
        assert rejection.reason  # random weights: "no gravity", "no objects: ...", each with its reason
