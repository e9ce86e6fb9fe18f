import numpy as np
import pytest
from scipy import ndimage

from assets.filtering import filter_shard
from assets.geometry import GravityFrame, box2d_from_mask
from assets.objects import ObjectExtraction, ObjectExtractor, object_clouds_shard
from assets.point_maps import point_maps_shard
from assets.records import Box3D, SceneObject
from assets.stage import ShardFailure
from assets.storage import atomic_write_bytes, decode_mask_png, encode_depth_png, read_jsonl, read_scenes
from tests.assets.scene_fixtures import (
    BACK_WALL_Z,
    FLOOR_Y,
    LEVEL_GRAVITY,
    BoxSpec,
    living_room,
    scene_from_specs,
    write_source_shard,
)


def run_upstream(root, rendered, estimator=None):
    write_source_shard(root, "s0", rendered)
    filter_shard(root, "s0")
    point_maps_shard(root, "s0", estimator=estimator)


def reasons(root):
    return {r["item"]: r["reason"] for r in read_jsonl(root / "object_clouds/s0/rejected.jsonl")}


def test_ground_truth_objects_pass_with_pixel_counts(tmp_path):
    rendered = [living_room("room", "s0")]
    run_upstream(tmp_path, rendered)
    report = object_clouds_shard(tmp_path, "s0")
    (scene,) = read_scenes(tmp_path / "object_clouds/s0/scenes.jsonl")
    mask = rendered[0][3]
    assert [o.num_pixels for o in scene.objects] == [int((mask == i).sum()) for i in range(1, 6)]
    assert scene.metadata["objects_in"] == scene.metadata["objects_out"] == 5
    assert scene.mask_file == "source_images/s0/masks/room.png"
    assert report.preview[0]["objects_out"] == 5 and not report.rejections


def test_hidden_and_depthless_labelled_objects_stay_known_but_not_askable(tmp_path):
    specs = [
        BoxSpec("cabinet", (0.0, FLOOR_Y - 0.6, 3.0), (1.0, 1.2, 0.5)),
        BoxSpec("box", (0.0, FLOOR_Y - 0.2, 4.0), (0.3, 0.3, 0.3)),  # fully behind the cabinet
        BoxSpec("lamp", (1.2, FLOOR_Y - 0.5, 3.0), (0.3, 1.0, 0.3)),
    ]
    out_of_view = [BoxSpec("box", (10.0, 0.0, 3.0), (0.3, 0.3, 0.3))]  # far to the right of the frustum
    scene, rgb, depth, mask = scene_from_specs("room", specs, shard="s0")
    run_upstream(tmp_path, [(scene, rgb, depth, mask), scene_from_specs("outside", out_of_view, shard="s0")])
    # the lamp's depth goes missing after the point-map stage (e.g. a sensor hole)
    holed = depth.copy()
    holed[mask == 3] = np.nan
    atomic_write_bytes(tmp_path / scene.depth_file, encode_depth_png(holed))
    report = object_clouds_shard(tmp_path, "s0")
    got = reasons(tmp_path)
    assert got == {"outside": "DataError: no objects: none of the 1 objects has a usable mask"}
    (kept,) = read_scenes(tmp_path / "object_clouds/s0/scenes.jsonl")
    assert [(o.category, o.askable) for o in kept.objects] == [
        ("cabinet", True),
        ("box", False),
        ("lamp", False),
    ]
    assert kept.objects[1].attributes["not_askable"] == "empty mask: box has no pixel in the instance mask"
    assert kept.objects[2].attributes["not_askable"] == "no valid 3D points: lamp mask has no valid depth"
    assert (kept.metadata["objects_in"], kept.metadata["objects_out"], kept.metadata["objects_askable"]) == (
        3,
        3,
        1,
    )
    assert report.num_out == 1
    assert (report.metadata["objects_in"], report.metadata["objects_out"]) == (3, 3)  # over kept scenes


def test_missing_mask_and_missing_extractor_are_rejections(tmp_path):
    gt = living_room("gt", "s0")
    web = living_room("web", "s0", with_files=False)
    run_upstream(tmp_path, [gt, web], estimator=DepthOracle({"web": web[2]}))
    (tmp_path / gt[0].mask_file).unlink()
    with pytest.raises(
        ShardFailure, match="all 2 items were rejected"
    ) as failure:  # nothing left: the shard fails
        object_clouds_shard(tmp_path, "s0")
    got = {r.item: r.reason for r in failure.value.rejections}
    assert got["gt"].startswith("DataError: unreadable mask")
    assert got["web"].startswith("DataError: no object extractor configured")
    assert not (tmp_path / "object_clouds/s0").exists()


class DepthOracle:
    """Point-map estimator returning the rendered depth (see test_point_maps for the estimator contract)."""

    def __init__(self, depths):
        self.depths = depths

    def estimate(self, rgb):
        from assets.geometry import depth_to_points
        from assets.point_maps import PointMapEstimate
        from tests.assets.scene_fixtures import intrinsics

        (depth,) = [d for d in self.depths.values() if d.shape == rgb.shape[:2]][:1]
        points = depth_to_points(depth, intrinsics()).astype(np.float32)
        return PointMapEstimate(points=points, valid=np.isfinite(points).all(-1), intrinsics=intrinsics())


class ForegroundExtractor:
    """A minimal real extractor: everything above the floor and before the back wall, split into connected
    components, each fitted with a gravity-aligned box (yaw 0) around its points."""

    def extract(self, rgb, points, valid, scene):
        frame = GravityFrame.from_gravity(LEVEL_GRAVITY)
        foreground = valid & (points[..., 1] < FLOOR_Y - 0.02) & (points[..., 2] < BACK_WALL_Z - 0.02)
        labels, count = ndimage.label(foreground)
        objects = []
        for instance_id in range(1, count + 1):
            pixels = labels == instance_id
            grav = frame.to_grav(points[pixels])
            lo, hi = grav.min(axis=0), grav.max(axis=0)
            size = np.maximum(hi - lo, 0.01)
            box = Box3D(
                center_cam=tuple(frame.to_cam((lo + hi) / 2)),
                width=size[1],
                height=size[2],
                length=size[0],
                yaw=0.0,
            )
            objects.append(
                SceneObject(
                    instance_id=instance_id, category="thing", box2d=box2d_from_mask(pixels), box3d=box
                )
            )
        objects.append(objects[0].model_copy(update={"instance_id": 200}))  # a detection SAM-2 lost
        return ObjectExtraction(
            objects=objects, instance_mask=labels.astype(np.uint8), gravity_cam=LEVEL_GRAVITY
        )


def test_extractor_path_stores_mask_and_gravity(tmp_path):
    specs = [
        BoxSpec("a", (-0.8, FLOOR_Y - 0.3, 3.0), (0.4, 0.6, 0.4)),
        BoxSpec("b", (0.8, FLOOR_Y - 0.3, 3.0), (0.4, 0.6, 0.4)),
    ]
    web = scene_from_specs("web", specs, shard="s0", with_files=False)
    web[0].gravity_cam = None
    web[0].has_ground_truth_3d = False
    run_upstream(tmp_path, [web], estimator=DepthOracle({"web": web[2]}))
    extractor = ForegroundExtractor()
    assert isinstance(extractor, ObjectExtractor)
    report = object_clouds_shard(tmp_path, "s0", extractor=extractor)
    (scene,) = read_scenes(tmp_path / "object_clouds/s0/scenes.jsonl")
    assert scene.gravity_cam == pytest.approx(LEVEL_GRAVITY)
    assert scene.mask_file == "object_clouds/s0/masks/web.png"
    stored = decode_mask_png(tmp_path / scene.mask_file)
    assert sorted(np.unique(stored)) == [0, 1, 2]
    assert [o.num_pixels for o in scene.objects] == [int((stored == i).sum()) for i in (1, 2)]
    # the fitted boxes sit where the rendered ones are (front faces only are seen: centers within half a depth)
    centers = sorted(o.box3d.center_cam[0] for o in scene.objects)
    assert centers == pytest.approx([-0.8, 0.8], abs=0.05)
    assert reasons(tmp_path) == {"web/200": "DataError: empty mask: thing has no pixel in the instance mask"}
    assert scene.metadata["object_source"] == "extracted" and report.num_out == 1


def _labelled_scene(metadata: dict | None = None):
    from assets.records import Box2D, Intrinsics, Scene

    intr = Intrinsics(fx=50.0, fy=50.0, cx=20.0, cy=15.0, width=40, height=30)
    table = SceneObject(
        instance_id=1,
        category="table",
        box2d=Box2D(x0=0, y0=0, x1=30, y1=30),
        box3d=Box3D(center_cam=(0.0, 0.5, 3.0), width=1.2, height=0.8, length=1.2, yaw=0.0),
    )
    cup = SceneObject(
        instance_id=2,
        category="cup",
        box2d=Box2D(x0=10, y0=0, x1=40, y1=20),
        box3d=Box3D(center_cam=(0.1, 0.3, 3.0), width=0.2, height=0.2, length=0.2, yaw=0.0),
    )
    hidden = SceneObject(
        instance_id=3,
        category="cup",
        box2d=Box2D(x0=0, y0=0, x1=5, y1=5),
        box3d=Box3D(center_cam=(-2.0, 0.5, 6.0), width=0.2, height=0.2, length=0.2, yaw=0.0),
    )
    return Scene(
        scene_id="s",
        source="omni3d",
        shard="x",
        intrinsics=intr,
        gravity_cam=LEVEL_GRAVITY,
        objects=[table, cup, hidden],
        has_ground_truth_3d=True,
        image_file="i.jpg",
        metadata=metadata or {},
    )


def test_labelled_boxes_get_masks_from_the_depth_inside_them_smallest_box_first():
    from assets.objects import ground_truth_masks

    scene = _labelled_scene()
    points = np.full((30, 40, 3), np.nan)
    valid = np.zeros((30, 40), bool)
    points[20, 5], points[10, 15], points[10, 35], points[25, 35] = (
        (0, 0.5, 3),
        (0.1, 0.3, 3),
        (0.1, 0.3, 3),
        (5, 5, 9),
    )
    valid[20, 5] = valid[10, 15] = valid[10, 35] = valid[25, 35] = True
    mask, source = ground_truth_masks(scene, points, valid)
    assert source == "depth_in_box"
    assert mask[20, 5] == 1  # inside the table only
    assert mask[10, 15] == 2  # inside both boxes: the smaller one (the cup on the table) owns it
    assert mask[10, 35] == 2  # inside the cup's 2D box only
    assert mask[25, 35] == 0 and (mask == 3).sum() == 0  # a point in no box; the hidden cup gets no pixel


@pytest.mark.parametrize("metadata", [{"depth_density": "sparse"}, {"point_map_source": "estimated"}])
def test_lidar_or_estimated_depth_with_a_segmenter_prompts_it_with_the_2d_boxes_nearer_on_top(metadata):
    from assets.objects import ground_truth_masks

    class BoxFiller:  # stands in for SAM-2 (the real one is tested in tests/assets/wild): a box's mask is the box
        def segment(self, rgb, boxes):
            masks = []
            for b in boxes:
                m = np.zeros(rgb.shape[:2], bool)
                m[int(b.y0) : int(b.y1), int(b.x0) : int(b.x1)] = True
                masks.append(m)
            return masks, [1.0] * len(boxes)

    scene = _labelled_scene(metadata)
    rgb = np.zeros((30, 40, 3), np.uint8)
    mask, source = ground_truth_masks(
        scene, np.full((30, 40, 3), np.nan), np.zeros((30, 40), bool), rgb, BoxFiller()
    )
    assert source == "sam2_box_prompt"
    assert (
        mask[25, 5] == 1 and mask[10, 15] == 2 and mask[2, 2] == 1
    )  # the hidden cup (6 m) is under the table
