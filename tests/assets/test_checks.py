import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, PngImagePlugin

from assets import checks
from assets.filtering import filter_shard
from assets.objects import object_clouds_shard
from assets.point_maps import point_maps_shard
from assets.records import Level, QAFormat, QAPair, Task
from assets.references import references_shard
from assets.storage import read_scenes, write_scenes
from tests.assets.scene_fixtures import gravity_for_pitch, living_room, write_source_shard


@pytest.fixture
def root(tmp_path):
    rendered = [living_room("room-0", "s0"), living_room("room-1", "s0", gravity=gravity_for_pitch(20.0))]
    write_source_shard(tmp_path, "s0", rendered)
    for stage in (filter_shard, point_maps_shard, object_clouds_shard, references_shard):
        assert stage(tmp_path, "s0").num_out == 2
    return tmp_path


def edit_scenes(path, change):
    scenes = read_scenes(path)
    change(scenes)
    write_scenes(path, scenes)


def test_all_checks_pass_on_a_clean_shard(root):
    passed, meta = checks.points_in_boxes(root, "s0")
    assert passed, meta
    assert meta["num_objects_checked"] == 10 and meta["min_fraction_inside"] >= 0.999
    for check in (checks.point_maps_finite, checks.boxes_inside_image, checks.references_unique):
        passed, meta = check(root, "s0")
        assert passed, (check.__name__, meta)
    assert checks.references_unique(root, "s0")[1]["kind_linear_order"] == 6


def test_points_in_boxes_names_a_misplaced_box(root):
    def shift(scenes):
        box = scenes[1].objects[2].box3d
        box.center_cam = (box.center_cam[0] + 0.3, *box.center_cam[1:])

    edit_scenes(root / "object_clouds/s0/scenes.jsonl", shift)
    passed, meta = checks.points_in_boxes(root, "s0")
    assert not passed
    assert meta["num_below_threshold"] == 1
    assert meta["worst"][0].startswith("room-1/3: ")
    # 0.3 m shift of a 0.45 m wide chair: the points on the far side (about a third) stay inside the grown box
    assert float(meta["worst"][0].split(": ")[1]) < 0.5


def test_points_in_box_fraction_on_a_known_cloud():
    scene, _, depth, mask = living_room()
    from assets.geometry import depth_to_points

    points = depth_to_points(depth, scene.intrinsics)
    valid = np.isfinite(points).all(-1)
    fractions = checks.mask_points_in_box_fractions(scene, points, valid, mask, tol=0.005)
    assert min(fractions.values()) > 0.99
    shrunk = scene.model_copy(deep=True)
    shrunk.objects[0].box3d.width = (
        shrunk.objects[0].box3d.width / 2
    )  # the sofa's 1.8 m along the image plane
    fraction = checks.mask_points_in_box_fractions(shrunk, points, valid, mask, tol=0.005)[1]
    assert fraction == pytest.approx(0.5, abs=0.1)


def test_boxes_outside_the_image_are_reported(root):
    def widen(scenes):
        scenes[0].objects[0].box2d.x1 = scenes[0].intrinsics.width + 5

    edit_scenes(root / "object_clouds/s0/scenes.jsonl", widen)
    passed, meta = checks.boxes_inside_image(root, "s0")
    assert not passed and meta["outside"] == ["room-0/1"]


def test_duplicate_and_wrong_references_fail(root):
    def break_refs(scenes):
        chairs = scenes[0].objects[1:4]
        chairs[0].reference, chairs[2].reference = chairs[2].reference, chairs[0].reference  # swapped: wrong
        scenes[1].objects[4].reference = scenes[1].objects[0].reference  # "the sofa" twice

    edit_scenes(root / "object_references/s0/scenes.jsonl", break_refs)
    passed, meta = checks.references_unique(root, "s0")
    assert not passed
    assert (meta["num_duplicate"], meta["num_unresolved"], meta["num_missing"]) == (2, 2, 0)


def test_point_maps_finite_catches_a_corrupt_header_and_a_missing_file(root):
    scenes = read_scenes(root / "point_maps/s0/scenes.jsonl")
    path = root / scenes[0].depth_file
    with Image.open(path) as img:
        codes = np.asarray(img)
    info = PngImagePlugin.PngInfo()
    info.add_text("near", "nan")
    info.add_text("far", "10.0")
    Image.fromarray(codes).save(path, pnginfo=info)
    (root / scenes[1].depth_file).unlink()
    passed, meta = checks.point_maps_finite(root, "s0")
    assert not passed
    assert meta["nonfinite_valid_pixels"] == codes.size
    assert meta["failures"][0].startswith("room-0: 6912 non-finite of 6912 valid pixels")
    assert meta["failures"][1].startswith("room-1: unreadable depth")


def qa_table(answers):
    rows = [
        QAPair(
            qa_id=f"q{i}",
            scene_id="room-0",
            shard="s0",
            level=Level.L1,
            task=Task.SIZE,
            format=QAFormat.FREE_FORM,
            question="How tall is the sofa?",
            answer=answer,
        ).model_dump(mode="json")
        for i, answer in enumerate(answers)
    ]
    return pa.Table.from_pylist(rows)


def test_qa_schema(tmp_path):
    assert not checks.qa_schema(tmp_path, "s0")[0]  # no file
    (tmp_path / "qa_shards/s0").mkdir(parents=True)
    pq.write_table(qa_table(["0.80 m", "0.81 m"]), tmp_path / "qa_shards/s0/qa.parquet")
    passed, meta = checks.qa_schema(tmp_path, "s0")
    assert passed and meta["num_rows"] == 2
    pq.write_table(qa_table(["0.80 m", " "]), tmp_path / "qa_shards/s0/qa.parquet")
    passed, meta = checks.qa_schema(tmp_path, "s0")
    assert not passed and meta["problems"] == ["q1: empty question or answer"]
    pq.write_table(qa_table(["x"]).drop_columns(["task"]), tmp_path / "qa_shards/s0/qa.parquet")
    assert checks.qa_schema(tmp_path, "s0")[1]["missing_columns"] == ["task"]


def test_a_real_synthetic_shard_passes_every_stage_and_check(tmp_path):
    from assets.synthetic import SyntheticConfig, write_synthetic_shard

    source = write_synthetic_shard(tmp_path, "synthetic-000", SyntheticConfig(num_scenes=4, seed=3))
    assert source.num_out == 4
    for stage in (filter_shard, point_maps_shard, object_clouds_shard, references_shard):
        report = stage(tmp_path, "synthetic-000")
        assert report.num_out == 4 and not report.rejections, (stage.__name__, report.rejections)
    scenes = read_scenes(tmp_path / "object_references/synthetic-000/scenes.jsonl")
    assert all(s.metadata["point_map_source"] == "ground_truth" for s in scenes)
    assert all(o.reference for s in scenes for o in s.objects)
    passed, meta = checks.points_in_boxes(tmp_path, "synthetic-000")
    assert passed and meta["num_objects_checked"] == sum(len(s.objects) for s in scenes) > 8
    assert meta["min_fraction_inside"] >= 0.98
    for check in (checks.point_maps_finite, checks.boxes_inside_image, checks.references_unique):
        passed, meta = check(tmp_path, "synthetic-000")
        assert passed, (check.__name__, meta)
