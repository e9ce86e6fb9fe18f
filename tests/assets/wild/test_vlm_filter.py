"""The VLM image filter over real HTTP (tests/openai_server.py), run through the filtering stage itself.

Each scene carries a coloured patch in its top-left corner; the scripted server reads the patch back out of the
image the filter sent and answers for it (red: keep, blue: reject, green: a reply that is not JSON), so the
verdicts follow the images, not the request order."""

import base64
import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from assets.filtering import ImageFilter, filter_shard
from assets.llm import LLMClient, LLMConfig
from assets.storage import read_jsonl, read_scenes
from assets.wild.vlm_filter import FILTER_PROMPT, FilterVerdict, VlmImageFilter, fit_image
from tests.assets.scene_fixtures import living_room, write_source_shard
from tests.openai_server import error_reply, json_reply, serve, text_reply

SECRET = "sk-test-VLMFILTER-0123456789abcdef"
KEY_ENV = "TEST_VLM_FILTER_KEY"
PATCHES = {"red": (230, 20, 20), "blue": (20, 20, 230), "green": (20, 230, 20)}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def build_shard(root, colours):
    rendered = []
    for i, colour in enumerate(colours):
        scene, rgb, depth, mask = living_room(f"{colour}-{i}", "s0")
        rgb = rgb.copy()
        rgb[:16, :16] = PATCHES[colour]
        rendered.append((scene, rgb, depth, mask))
    write_source_shard(root, "s0", rendered)


def patch_colour(request) -> str:
    [url] = request.image_urls
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    mean = rgb[2:10, 2:10].reshape(-1, 3).mean(axis=0)
    return min(PATCHES, key=lambda c: float(np.abs(mean - PATCHES[c]).sum()))


def verdicts(green_reply=None):
    def route(request):
        colour = patch_colour(request)
        if colour == "red":
            return json_reply({"keep": True, "reason": "indoor room with a sofa and chairs"})
        if colour == "blue":
            return text_reply('Sure:\n```json\n{"keep": false, "reason": "screenshot of a   web page"}\n```')
        return green_reply or text_reply("I cannot tell.")

    return route


def make_filter(server, tmp_path=None, **overrides):
    config = {
        "base_url": server.base_url,
        "model": "vlm",
        "api_key_env": KEY_ENV,
        "backoff_s": 0.0,
        "max_retries": 0,
        "timeout_s": 5.0,
        "cache_dir": tmp_path / "cache" if tmp_path else None,
    }
    return VlmImageFilter(LLMClient(LLMConfig(**{**config, **overrides})))


def reasons(root):
    return {r["item"]: r["reason"] for r in read_jsonl(root / "filtered_images/s0/rejected.jsonl")}


def kept(root):
    return [s.scene_id for s in read_scenes(root / "filtered_images/s0/scenes.jsonl")]


def test_keep_reject_with_reason_and_unparseable_reply_kept_unchecked(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    build_shard(tmp_path, ["red", "blue", "green", "red"])
    with serve(verdicts()) as server:
        vlm = make_filter(server)
        assert isinstance(vlm, ImageFilter)
        report = filter_shard(tmp_path, "s0", vlm_filter=vlm)
    assert kept(tmp_path) == ["red-0", "green-2", "red-3"]
    # the VLM's own reason, whitespace collapsed, after the stage's "vlm filter:" label
    assert reasons(tmp_path) == {"blue-1": "DataError: vlm filter: screenshot of a web page"}
    assert (report.num_in, report.num_out, len(report.rejections)) == (4, 3, 1)
    assert report.metadata["vlm_filter"] is True
    assert dict(vlm.stats) == {"checked": 3, "kept": 2, "rejected": 1, "unchecked": 1, "llm_failed": 1}
    meta = vlm.metadata()
    assert {
        k: meta[k]
        for k in ("vlm_filter_checked", "vlm_filter_unchecked", "llm_requests", "llm_invalid_replies")
    } == {"vlm_filter_checked": 3, "vlm_filter_unchecked": 1, "llm_requests": 4, "llm_invalid_replies": 1}
    # what was sent: the prompt, the schema instruction and one image; the key only in the auth header
    request = server.requests[0]
    assert FILTER_PROMPT in request.text and '"keep"' in request.text and len(request.image_urls) == 1
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    written = "".join(p.read_text() for p in (tmp_path / "filtered_images").rglob("*") if p.is_file())
    assert SECRET not in written + str(meta) + caplog.text


def test_server_errors_and_spent_budget_keep_the_images(tmp_path):
    build_shard(tmp_path, ["blue", "blue", "blue"])
    with serve(
        [error_reply(500), error_reply(503)] + [json_reply({"keep": False, "reason": "chart"})] * 3
    ) as server:
        # one retry: the first image sees 500 then 503 (no verdict), the second is rejected, the budget of
        # three calls is then spent and the third image is never sent
        vlm = make_filter(server, max_retries=1, max_calls=3)
        report = filter_shard(tmp_path, "s0", vlm_filter=vlm)
    assert len(server.requests) == 3
    assert kept(tmp_path) == ["blue-0", "blue-2"]
    assert reasons(tmp_path) == {"blue-1": "DataError: vlm filter: chart"}
    assert dict(vlm.stats) == {
        "unchecked": 2,
        "llm_failed": 1,
        "budget_exceeded": 1,
        "checked": 1,
        "rejected": 1,
    }
    assert report.num_out == 2 and vlm.metadata()["llm_retries"] == 1


def test_rerun_asks_only_for_images_without_a_cached_verdict(tmp_path):
    build_shard(tmp_path, ["red", "blue", "green"])
    with serve(verdicts()) as server:
        first = make_filter(server, tmp_path)
        filter_shard(tmp_path, "s0", vlm_filter=first)
    assert len(server.requests) == 3 and first.stats["unchecked"] == 1
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 2  # valid verdicts only: the unparseable reply was not cached
    assert not any(SECRET in p.read_text() for p in cached)

    # the endpoint has recovered: the re-run pays for the green image only and now rejects it
    with serve(verdicts(json_reply({"keep": False, "reason": "collage of four photos"}))) as server:
        second = make_filter(server, tmp_path)
        filter_shard(tmp_path, "s0", vlm_filter=second)
    assert [patch_colour(r) for r in server.requests] == ["green"]
    assert second.client.stats.cache_hits == 2 and second.client.stats.requests == 1
    assert kept(tmp_path) == ["red-0"]
    assert reasons(tmp_path) == {
        "blue-1": "DataError: vlm filter: screenshot of a web page",
        "green-2": "DataError: vlm filter: collage of four photos",
    }
    assert dict(second.stats) == {"checked": 3, "kept": 1, "rejected": 2}


def test_rejection_without_reason_is_still_explained():
    with serve([json_reply({"keep": False}), json_reply({"keep": True, "reason": " x " * 300})]) as server:
        vlm = make_filter(server)
        rgb = np.full((40, 50, 3), 128, np.uint8)
        assert vlm(rgb, None) == (False, "no reason given")
        keep, reason = vlm(rgb, None)
    assert keep and len(reason) == 200


def test_fit_image_scales_the_longer_side():
    rgb = np.zeros((300, 1200, 3), np.uint8)
    assert fit_image(rgb, 768).shape == (192, 768, 3)
    assert fit_image(rgb, None) is rgb and fit_image(rgb[:100, :100], 768).shape == (100, 100, 3)
    with pytest.raises(ValueError, match="max_side"):
        VlmImageFilter(LLMClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m")), max_side=4)
    assert FilterVerdict.model_validate(json.loads('{"keep": true}')).reason == ""
