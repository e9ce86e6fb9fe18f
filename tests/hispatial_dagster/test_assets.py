"""Materialize the per-shard stages for one small synthetic shard (5 scenes) on a temporary instance, with the real
stage code, and check what was written and what the assets report."""

import json
from pathlib import Path

import dagster as dg
import pytest

from assets.storage import directory_digest
from hispatial_dagster import assets as hs_assets
from hispatial_dagster import checks as hs_checks
from hispatial_dagster.metadata import markdown_table, rejection_table
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import (
    DataRoot,
    FilterSettings,
    LLMEndpoint,
    QASettings,
    SourceInbox,
    SyntheticSource,
    WildModels,
)
from hispatial_dagster.shards import ShardInbox, ShardSpec

SHARD = "synthetic-000"
NUM_SCENES = 5
STAGES = [
    hs_assets.source_images,
    hs_assets.filtered_images,
    hs_assets.point_maps,
    hs_assets.object_clouds,
    hs_assets.object_references,
    hs_assets.qa_shards,
]


def resources(root: Path) -> dict:
    return {
        "data_root": DataRoot(path=str(root)),
        "source_inbox": SourceInbox(url=""),
        "synthetic": SyntheticSource(),
        "filters": FilterSettings(),
        "qa": QASettings(),
        "llm": LLMEndpoint(base_url=""),
        "wild_models": WildModels(point_map_model="", segmenter_model=""),
    }


def materialize(root: Path, instance: dg.DagsterInstance, selection: list) -> dg.ExecuteInProcessResult:
    checks = hs_checks.all_checks
    return dg.materialize(
        [*STAGES, *checks],
        selection=dg.AssetSelection.assets(*selection),
        partition_key=SHARD,
        instance=instance,
        resources=resources(root),
    )


def expected_digest(out: Path) -> str:
    """The stage's own content digest from its manifest, or (stages whose manifest has none) the directory's."""
    return json.loads((out / "_manifest.json").read_text()).get("digest") or directory_digest(out)


def metadata_of(result: dg.ExecuteInProcessResult, asset: dg.AssetsDefinition) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == asset.key]
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("data")
    ShardInbox(str(root / "inbox")).write(SHARD, ShardSpec(kind="synthetic", seed=3, num_scenes=NUM_SCENES))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        result = materialize(root, instance, STAGES)
        assert result.success
        yield root, instance, result


def test_every_stage_writes_its_shard_and_reports_counts(shard) -> None:
    root, _, result = shard
    for asset in STAGES:
        name = asset.key.path[-1]
        out = root / name / SHARD
        manifest = json.loads((out / "_manifest.json").read_text())
        meta = metadata_of(result, asset)
        assert meta["num_out"] == manifest["num_out"]
        assert meta["num_rejected"] == manifest["num_rejected"]
        assert meta["content_digest"] == expected_digest(out)
        if (out / "scenes.jsonl").exists():
            lines = [ln for ln in (out / "scenes.jsonl").read_text().splitlines() if ln.strip()]
            assert meta["num_out"] == len(lines) > 0
    source = metadata_of(result, hs_assets.source_images)
    assert source["num_in"] == NUM_SCENES and source["source_kind"] == "synthetic"
    # No stage directory was left half-written.
    assert not list(root.glob("*/.*.tmp-*"))


def test_data_version_is_the_manifest_digest(shard) -> None:
    root, instance, _ = shard
    for asset in STAGES:
        event = instance.get_latest_materialization_event(asset.key)
        out = root / asset.key.path[-1] / SHARD
        assert event.asset_materialization.tags["dagster/data_version"] == expected_digest(out)


def test_preview_and_rejection_tables(shard) -> None:
    root, _, result = shard
    meta = metadata_of(result, hs_assets.object_references)
    scene_ids = [
        json.loads(ln)["scene_id"] for ln in (root / "object_references" / SHARD / "scenes.jsonl").open()
    ]
    assert scene_ids[0] in meta["preview"]
    assert meta["rejections"] == "_no rejections_" or "| reason |" in meta["rejections"]


def test_thumbnail_is_drawn_and_inlined(shard) -> None:
    _, _, result = shard
    meta = metadata_of(result, hs_assets.object_clouds)
    thumbnail = Path(meta["thumbnail"])
    assert thumbnail.exists() and thumbnail.read_bytes()[:4] == b"\x89PNG"
    assert meta["thumbnail_preview"].startswith("![") and "base64," in meta["thumbnail_preview"]


def test_ground_truth_passthrough_is_recorded(shard) -> None:
    _, _, result = shard
    for asset in (hs_assets.point_maps, hs_assets.object_clouds):
        meta = metadata_of(result, asset)
        assert meta["ground_truth_passthrough"] is True
        assert meta["ground_truth_scenes"] == meta["num_out"] > 0


def test_same_spec_same_data_version(shard) -> None:
    root, instance, _ = shard
    before = instance.get_latest_materialization_event(hs_assets.source_images.key).asset_materialization.tags
    again = materialize(root, instance, [hs_assets.source_images])
    after = metadata_of(again, hs_assets.source_images)
    assert after["content_digest"] == before["dagster/data_version"]


def test_corrupt_image_is_quarantined_not_fatal(tmp_path: Path) -> None:
    root = tmp_path
    ShardInbox(str(root / "inbox")).write(SHARD, ShardSpec(kind="synthetic", seed=5, num_scenes=4))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        materialize(root, instance, [hs_assets.source_images])
        scenes = [json.loads(ln) for ln in (root / "source_images" / SHARD / "scenes.jsonl").open()]
        (root / scenes[1]["image_file"]).write_bytes(b"\xff\xd8 not a jpeg")
        result = materialize(root, instance, [hs_assets.filtered_images])
        meta = metadata_of(result, hs_assets.filtered_images)
    assert (meta["num_in"], meta["num_out"], meta["num_rejected"]) == (4, 3, 1)
    assert scenes[1]["scene_id"] in meta["rejections"]
    rejected = [json.loads(ln) for ln in (root / "filtered_images" / SHARD / "rejected.jsonl").open()]
    assert [r["item"] for r in rejected] == [scenes[1]["scene_id"]]


def test_unknown_source_kind_fails_clearly(tmp_path: Path) -> None:
    # The sensor and `register` refuse such a spec (test_spec_validation.py); one written by hand still fails
    # the run clearly, naming its file and field.
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / f"{SHARD}.json").write_text('{"kind": "nosuchkind"}')
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        with pytest.raises(Exception, match=rf"{SHARD}.json: kind: Input should be 'synthetic'"):
            materialize(tmp_path, instance, [hs_assets.source_images])
    assert not (tmp_path / "source_images" / SHARD).exists()


def test_image_folder_source_quarantines_corrupt_files(tmp_path: Path) -> None:
    """A web-image shard with a corrupt file completes; the file is rejected with its reason and quarantined."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "raw"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    root = tmp_path / "data"
    ShardInbox(str(root / "inbox")).write("web-000", ShardSpec(kind="images", path=str(folder)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, ["web-000"])
        result = dg.materialize(
            [hs_assets.source_images], partition_key="web-000", instance=instance, resources=resources(root)
        )
    meta = metadata_of(result, hs_assets.source_images)
    assert (meta["num_in"], meta["num_out"], meta["num_rejected"]) == (4, 3, 1)
    assert "broken" in meta["rejections"] and meta["source_kind"] == "images"
    quarantined = list((root / "source_images" / "web-000").rglob("quarantine/*"))
    assert len(quarantined) == 1 and quarantined[0].read_bytes().endswith(b"truncated")


def test_omni3d_shard_with_every_image_rejected_fails_with_the_first_reasons(tmp_path: Path) -> None:
    """A shard with 0 scenes is not a success: the asset fails naming the reasons (counted per reason, the first
    ones in full), and nothing is published over a previous version."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "omni3d" / "kitti_000008"
    labels = json.loads((fixture / "omni3d.json").read_text())
    for ann in labels["annotations"]:
        ann["valid3D"] = False
    src = tmp_path / "raw"
    src.mkdir()
    (src / "image.jpg").write_bytes((fixture / "image.jpg").read_bytes())
    (src / "omni3d.json").write_text(json.dumps(labels))
    root = tmp_path / "data"
    spec = ShardSpec(kind="omni3d", path=str(src), options={"annotation_file": "omni3d.json"})
    ShardInbox(str(root / "inbox")).write("omni-000", spec)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, ["omni-000"])
        result = dg.materialize(
            [hs_assets.source_images],
            partition_key="omni-000",
            instance=instance,
            resources=resources(root),
            raise_on_error=False,
        )
    assert not result.success
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error.to_string()
    assert "all 1 items were rejected" in error and "valid3D is false" in error
    assert not (root / "source_images" / "omni-000").exists()


def test_markdown_helpers() -> None:
    table = markdown_table([{"a": 1, "b": "x|y"}, {"a": 2, "c": [1, 2]}])
    assert table.splitlines()[0] == "| a | b | c |"
    assert "x\\|y" in table and table.count("\n") == 3
    from assets.stage import StageReport

    report = StageReport(stage="s", shard="x", output_dir=Path("."))
    for i in range(3):
        report.reject(f"scene-{i}", f"DataError: no visible object: {i} candidates tried")
    report.reject("scene-9", "ValueError: unreadable image")
    rows = rejection_table(report).splitlines()
    assert rows[2] == "| DataError: no visible object | 3 | scene-0, scene-1, scene-2 |"
    assert rows[3] == "| ValueError: unreadable image | 1 | scene-9 |"


def _web_shard(tmp_path: Path) -> Path:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "raw"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (56, 70, 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
    root = tmp_path / "data"
    ShardInbox(str(root / "inbox")).write("web-001", ShardSpec(kind="images", path=str(folder)))
    return root


def test_web_images_without_estimator_fail_the_partition_with_the_reason(tmp_path: Path) -> None:
    """No ground truth and no estimator configured: every scene would be rejected for the same reason, which is
    a setting, not the data, so the partition fails with that reason and publishes nothing."""
    root = _web_shard(tmp_path)
    stages = [hs_assets.source_images, hs_assets.filtered_images, hs_assets.point_maps]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, ["web-001"])
        result = dg.materialize(
            stages,
            partition_key="web-001",
            instance=instance,
            resources=resources(root),
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "point_maps"
    message = failure.event_specific_data.error.cause.message
    assert "all 2 items were rejected" in message and "no point-map estimator configured (2)" in message
    assert not (root / "point_maps" / "web-001").exists()


@pytest.mark.slow
def test_web_images_get_estimated_point_maps(tmp_path: Path) -> None:
    """With HISPATIAL_POINT_MAP_MODEL=tiny the stage runs MoGe-2 (real class, random weights) on every scene."""
    root = _web_shard(tmp_path)
    with_moge = {**resources(root), "wild_models": WildModels(point_map_model="tiny", device="cpu")}
    stages = [hs_assets.source_images, hs_assets.filtered_images, hs_assets.point_maps]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, ["web-001"])
        result = dg.materialize(stages, partition_key="web-001", instance=instance, resources=with_moge)
    meta = metadata_of(result, hs_assets.point_maps)
    assert meta["num_in"] == 2 and meta["num_out"] + meta["num_rejected"] == 2
    assert len(list((root / "point_maps" / "web-001").rglob("*.png"))) == meta["num_out"]


def test_clip_tag_filter_runs_in_filtered_images_when_configured(tmp_path: Path) -> None:
    """HISPATIAL_CLIP_FILTER_MODEL=tiny: the paper's CLIP tag vote (real CLIP class, random weights) judges every
    image. Random weights vote every image out, so with the paper's majority the partition fails with the votes as
    reasons; with the smoke threshold (HISPATIAL_CLIP_FILTER_MIN_VOTES=0) the votes are cast and every image kept."""
    from assets.scene_stage import load_scene_rgb
    from assets.storage import read_scenes

    root = _web_shard(tmp_path)
    models = WildModels(clip_filter_model="tiny", device="cpu")
    stages = [hs_assets.source_images, hs_assets.filtered_images]
    clip = models.clip_filter()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, ["web-001"])
        result = dg.materialize(
            stages,
            partition_key="web-001",
            instance=instance,
            raise_on_error=False,
            resources={**resources(root), "wild_models": models},
        )
        sources = read_scenes(root / "source_images" / "web-001" / "scenes.jsonl")
        assert not any(clip(load_scene_rgb(root, s), s)[0] for s in sources)  # what the filter itself says
        assert not result.success and not (root / "filtered_images" / "web-001").exists()
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "DataError: clip filter (2)" in failure.event_specific_data.error.cause.message

        smoke = WildModels(clip_filter_model="tiny", device="cpu", clip_filter_min_votes=0)
        result = dg.materialize(
            [hs_assets.filtered_images],
            partition_key="web-001",
            instance=instance,
            resources={**resources(root), "wild_models": smoke},
        )
    meta = metadata_of(result, hs_assets.filtered_images)
    assert meta["clip_filter"] is True and (meta["num_in"], meta["num_out"]) == (2, 2)
    assert WildModels(clip_filter_model="").clip_filter() is None  # off unless configured
