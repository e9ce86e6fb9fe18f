"""The code location loads, and its table of contents says what the architecture says."""

import json

import dagster as dg
import pytest

from hispatial_dagster import assets as hs_assets
from hispatial_dagster.automation import downstream_condition
from hispatial_dagster.definitions import build_defs, defs
from hispatial_dagster.resources import DataRoot

SHARD_STAGES = [
    "source_images",
    "filtered_images",
    "point_maps",
    "object_clouds",
    "object_references",
    "qa_shards",
]


def test_loadable() -> None:
    dg.Definitions.validate_loadable(defs)


def test_graph_shape() -> None:
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {*SHARD_STAGES, "qa_dataset", "checkpoint", "benchmark_scores"}
    for upstream, downstream in zip(SHARD_STAGES, SHARD_STAGES[1:], strict=False):
        assert graph.get(dg.AssetKey(downstream)).parent_keys == {dg.AssetKey(upstream)}
    assert graph.get(dg.AssetKey("qa_dataset")).parent_keys == {dg.AssetKey("qa_shards")}
    assert graph.get(dg.AssetKey("benchmark_scores")).parent_keys == {dg.AssetKey("checkpoint")}
    for name in SHARD_STAGES:
        assert graph.get(dg.AssetKey(name)).partitions_def.name == "source_shards"
    assert graph.get(dg.AssetKey("qa_dataset")).partitions_def is None
    assert "custom" in graph.get(dg.AssetKey("benchmark_scores")).partitions_def.get_partition_keys()


def test_gpu_stages_share_the_pool_and_request_gpus() -> None:
    gpu = {a.key.to_user_string() for a in hs_assets.all_assets if a.op.pool == "gpu"}
    assert gpu == {"point_maps", "object_clouds", "checkpoint", "benchmark_scores"}
    for asset in hs_assets.all_assets:
        k8s = asset.op.tags.get("dagster-k8s/config")  # Dagster stores dict-valued tags as JSON text
        if asset.key.to_user_string() in gpu:
            k8s = json.loads(k8s)
            assert int(k8s["container_config"]["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        else:
            assert k8s is None


def test_jobs_and_sensors() -> None:
    assert defs.resolve_job_def("shard_job").partitions_def.name == "source_shards"
    shard_job_assets = {
        k.to_user_string() for k in defs.resolve_job_def("shard_job").asset_layer.executable_asset_keys
    }
    assert shard_job_assets == set(SHARD_STAGES)
    sensors = {s.name for s in defs.sensors}
    assert sensors == {"shard_inbox_sensor", "default_automation_condition_sensor"}
    for name in ("qa_dataset", "checkpoint", "benchmark_scores"):
        assert defs.resolve_asset_graph().get(dg.AssetKey(name)).automation_condition is not None


def test_automation_setting(monkeypatch) -> None:
    monkeypatch.setenv("HISPATIAL_AUTOMATION_CHECKPOINT", "cron:0 3 * * *")
    assert "on_cron(0 3 * * *" in downstream_condition("checkpoint").get_label()
    monkeypatch.setenv("HISPATIAL_AUTOMATION_CHECKPOINT", "off")
    assert downstream_condition("checkpoint") is None
    monkeypatch.setenv("HISPATIAL_AUTOMATION_CHECKPOINT", "sometimes")
    try:
        downstream_condition("checkpoint")
    except ValueError as err:
        assert "eager" in str(err)
    else:
        raise AssertionError("an unknown automation setting must be rejected")


def test_resources_from_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HISPATIAL_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("HISPATIAL_LLM_API_KEY", "sk-secret-value")
    built = build_defs()
    resources = built.resources
    assert DataRoot.model_validate(resources["data_root"]).root == tmp_path.resolve()
    # The LLM key never becomes part of any resource's config.
    for resource in resources.values():
        assert "sk-secret-value" not in repr(
            resource.model_dump() if hasattr(resource, "model_dump") else resource
        )


def test_benchmark_partitions_follow_configured_data(monkeypatch) -> None:
    from hispatial_dagster.partitions import benchmark_names

    monkeypatch.delenv("HISPATIAL_BENCHMARKS", raising=False)
    monkeypatch.delenv("HISPATIAL_EVAL_OPTIONS", raising=False)
    assert benchmark_names() == ["custom"]
    monkeypatch.setenv(
        "HISPATIAL_EVAL_OPTIONS", '{"data": {"3dsrbench": "/d/3dsr"}, "predictions": {"cv_bench": "p"}}'
    )
    assert benchmark_names() == ["custom", "cv_bench", "3dsrbench"]  # evaluation's registry order
    monkeypatch.setenv("HISPATIAL_BENCHMARKS", "custom, embspatial")
    assert benchmark_names() == ["custom", "embspatial"]


def test_unknown_config_override_is_an_error() -> None:
    from hispatial_dagster.resources import QASettings, SyntheticSource

    with pytest.raises(ValueError, match="no field"):
        QASettings(options={"mc_max_optoins": 4}).config()
    config = SyntheticSource(options={"image_size": 512}).config(seed=3, num_scenes=7, spec_options={})
    assert (config.image_size, config.seed, config.num_scenes) == (512, 3, 7)


def test_the_cli_stage_list_names_the_shard_assets_in_order():
    from hispatial_dagster.assets import shard_assets
    from hispatial_dagster.shards import SHARD_STAGES as NAMED

    assert tuple(a.key.to_user_string() for a in shard_assets) == NAMED
