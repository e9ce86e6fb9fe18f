"""The VLM image filter switched on in the `filtered_images` asset: against a real local OpenAI-compatible server
(tests/openai_server.py) its rejections and counters reach the asset; switched on without an endpoint, the asset
fails with a message that says what to set, and writes nothing."""

import json
from pathlib import Path

import dagster as dg
import pytest

from hispatial_dagster import assets as hs_assets
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import (
    DataRoot,
    FilterSettings,
    LLMEndpoint,
    SourceInbox,
    SyntheticSource,
    WildModels,
)
from hispatial_dagster.shards import ShardInbox, ShardSpec
from tests.openai_server import json_reply, serve

SHARD = "synthetic-000"
SECRET = "sk-test-ASSET-0123456789abcdef"


def run(root: Path, llm: LLMEndpoint, vlm_filter: bool) -> dg.ExecuteInProcessResult:
    ShardInbox(str(root / "inbox")).write(SHARD, ShardSpec(kind="synthetic", seed=3, num_scenes=3))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        return dg.materialize(
            [hs_assets.source_images, hs_assets.filtered_images],
            selection=dg.AssetSelection.assets(hs_assets.source_images, hs_assets.filtered_images),
            partition_key=SHARD,
            instance=instance,
            resources={
                "data_root": DataRoot(path=str(root)),
                "source_inbox": SourceInbox(url=""),
                "synthetic": SyntheticSource(),
                "filters": FilterSettings(vlm_filter=vlm_filter),
                "llm": llm,
                "wild_models": WildModels(),
            },
            raise_on_error=False,
        )


def test_switched_on_without_endpoint_fails_clearly(tmp_path: Path) -> None:
    result = run(tmp_path, LLMEndpoint(base_url=""), vlm_filter=True)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "VLM image filter is switched on" in message and "HISPATIAL_LLM_BASE_URL" in message
    assert (tmp_path / "source_images" / SHARD).exists() and not (
        tmp_path / "filtered_images" / SHARD
    ).exists()


def test_vlm_verdicts_reach_the_asset_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ASSET_LLM_KEY", SECRET)
    script = [json_reply({"keep": False, "reason": "a rendered graphic"})] + [json_reply({"keep": True})] * 2
    with serve(script) as server:
        llm = LLMEndpoint(
            base_url=server.base_url, model="vlm", api_key_env="TEST_ASSET_LLM_KEY", max_calls=10
        )
        result = run(tmp_path, llm, vlm_filter=True)
    assert result.success and len(server.requests) == 3
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key == hs_assets.filtered_images.key
    ]
    meta = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    assert (meta["num_in"], meta["num_out"], meta["num_rejected"]) == (3, 2, 1)
    assert (meta["vlm_filter_checked"], meta["vlm_filter_rejected"], meta["vlm_filter_unchecked"]) == (
        3,
        1,
        0,
    )
    assert [(r["reason"], r["count"]) for r in meta["rejection_reasons"]] == [("DataError: vlm filter", 1)]
    rejected = (tmp_path / "filtered_images" / SHARD / "rejected.jsonl").read_text()
    assert "vlm filter: a rendered graphic" in rejected and SHARD + "-0000" in rejected
    assert meta["llm_requests"] == 3 and SECRET not in str(meta)
    assert len(list((tmp_path / ".llm_cache").rglob("*.json"))) == 3
    manifest = json.loads((tmp_path / "filtered_images" / SHARD / "_manifest.json").read_text())
    assert manifest["metadata"]["vlm_filter_rejected"] == 1 and SECRET not in json.dumps(
        manifest
    )  # travels with the data


def test_off_by_default_and_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HISPATIAL_VLM_FILTER", raising=False)
    assert FilterSettings().vlm_filter is False
    assert FilterSettings().vlm_image_filter(LLMEndpoint(base_url=""), Path("unused")) is None
    for value, expected in (("1", True), ("true", True), ("TRUE", True), ("0", False), ("no", False)):
        monkeypatch.setenv("HISPATIAL_VLM_FILTER", value)
        assert FilterSettings().vlm_filter is expected
