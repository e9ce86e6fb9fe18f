"""LLMClient against a real local HTTP server speaking the OpenAI protocol (tests/openai_server.py)."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest
from pydantic import BaseModel, Field

from assets.llm import BudgetExceeded, LLMClient, LLMConfig, LLMError, extract_json_object
from tests.openai_server import Reply, error_reply, json_reply, serve, text_reply

SECRET = "sk-test-SECRET-0123456789abcdef"


class Verdict(BaseModel):
    answer: str
    confidence: float = Field(ge=0, le=1)


MESSAGES = [{"role": "user", "content": "Is the cup left of the laptop?"}]


def make_client(base_url: str, tmp_path=None, **overrides) -> LLMClient:
    fields = {
        "base_url": base_url,
        "model": "test-model",
        "api_key_env": "TEST_LLM_KEY",
        "backoff_s": 0.0,
        "timeout_s": 5.0,
        "cache_dir": tmp_path / "cache" if tmp_path is not None else None,
    }
    fields.update(overrides)
    return LLMClient(LLMConfig(**fields))


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", SECRET)


def test_good_reply_is_validated_and_request_is_well_formed():
    with serve(
        [json_reply({"answer": "yes", "confidence": 0.9}, prompt_tokens=30, completion_tokens=7)]
    ) as server:
        client = make_client(server.base_url)
        verdict = client.complete_json(MESSAGES, Verdict)
    assert verdict == Verdict(answer="yes", confidence=0.9)
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "test-model"
    assert request.body["response_format"] == {"type": "json_object"}
    assert (
        request.body["messages"][0]["role"] == "system"
        and '"confidence"' in request.body["messages"][0]["content"]
    )
    assert request.body["messages"][-1] == MESSAGES[0]
    assert client.stats.requests == 1 and client.stats.retries == 0
    assert client.stats.total_tokens == 37


def test_json_wrapped_in_prose_and_fences_is_extracted():
    reply = 'Sure! Here it is:\n```json\n{"answer": "no", "confidence": 0.25}\n```\nAnything else?'
    with serve([text_reply(reply)]) as server:
        verdict = make_client(server.base_url).complete_json(MESSAGES, Verdict)
    assert verdict.answer == "no" and verdict.confidence == 0.25


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('x {"a": {"b": [1, 2]}} y {"c": 3}', {"a": {"b": [1, 2]}}),
        ('[1] {bad {"a": 2}', {"a": 2}),
    ],
)
def test_extract_json_object(text, expected):
    assert extract_json_object(text) == expected


def test_extract_json_object_rejects_text_without_object():
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json_object("[1, 2, 3] no object here")


def test_malformed_then_good_retries():
    with serve(
        [text_reply('{"answer": "yes", "confid'), json_reply({"answer": "yes", "confidence": 1.0})]
    ) as server:
        client = make_client(server.base_url)
        verdict = client.complete_json(MESSAGES, Verdict)
    assert verdict.confidence == 1.0
    assert len(server.requests) == 2
    assert client.stats.retries == 1 and client.stats.invalid_replies == 1


def test_schema_violation_is_retried_then_fails():
    bad = json_reply({"answer": "yes", "confidence": 7})  # confidence > 1 violates the schema
    with serve([bad, bad, bad]) as server:
        client = make_client(server.base_url, max_retries=2)
        with pytest.raises(LLMError, match="violates Verdict"):
            client.complete_json(MESSAGES, Verdict)
    assert len(server.requests) == 3
    assert client.stats.failures == 1 and client.stats.invalid_replies == 3


def test_server_errors_until_retries_exhausted_with_exponential_backoff():
    with serve([error_reply(500)] * 4) as server:
        client = make_client(server.base_url, max_retries=3, backoff_s=0.05)
        start = time.monotonic()
        with pytest.raises(LLMError, match="HTTP 500"):
            client.complete_json(MESSAGES, Verdict)
        elapsed = time.monotonic() - start
    assert len(server.requests) == 4
    assert elapsed >= 0.05 + 0.1 + 0.2  # backoff doubles: 0.05, 0.1, 0.2
    assert client.stats.retries == 3


def test_rate_limit_then_success_honours_retry_after():
    with serve(
        [error_reply(429, headers={"retry-after": "0.3"}), json_reply({"answer": "a", "confidence": 0})]
    ) as server:
        client = make_client(server.base_url, backoff_s=0.01)
        start = time.monotonic()
        assert client.complete_json(MESSAGES, Verdict).answer == "a"
        assert time.monotonic() - start >= 0.3
    assert len(server.requests) == 2


def test_client_error_is_not_retried():
    with serve([error_reply(401, f"Incorrect API key provided: {SECRET}")]) as server:
        client = make_client(server.base_url)
        with pytest.raises(LLMError) as info:
            client.complete_json(MESSAGES, Verdict)
    assert len(server.requests) == 1
    assert SECRET not in str(info.value) and "401" in str(info.value)


def test_slow_reply_times_out_and_is_retried():
    with serve(
        [
            Reply(content='{"answer": "late", "confidence": 0}', delay_s=1.0),
            json_reply({"answer": "ok", "confidence": 0}),
        ]
    ) as server:
        client = make_client(server.base_url, timeout_s=0.3)
        assert client.complete_json(MESSAGES, Verdict).answer == "ok"
    assert client.stats.retries == 1


def test_unsupported_response_format_falls_back_to_text():
    with serve(
        [
            error_reply(400, "response_format is not supported"),
            text_reply('{"answer": "b", "confidence": 0.5}'),
        ]
    ) as server:
        client = make_client(server.base_url)
        assert client.complete_json(MESSAGES, Verdict).answer == "b"
    assert "response_format" in server.requests[0].body
    assert "response_format" not in server.requests[1].body


def test_json_schema_mode_sends_the_pydantic_schema():
    with serve([json_reply({"answer": "c", "confidence": 0.5})]) as server:
        make_client(server.base_url, response_format="json_schema").complete_json(MESSAGES, Verdict)
    fmt = server.requests[0].body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == Verdict.model_json_schema()


def test_call_budget_is_enforced_across_calls_and_retries():
    good = json_reply({"answer": "yes", "confidence": 0.5})
    with serve([error_reply(503), good, good, good]) as server:
        client = make_client(server.base_url, max_calls=3)
        client.complete_json(MESSAGES, Verdict)  # 2 requests (one retry)
        client.complete_json([{"role": "user", "content": "second"}], Verdict)  # 3rd request
        with pytest.raises(BudgetExceeded):
            client.complete_json([{"role": "user", "content": "third"}], Verdict)
    assert len(server.requests) == 3
    assert client.budget_left()["calls"] == 0


def test_token_budget_is_enforced():
    with serve(
        lambda request: json_reply({"answer": "y", "confidence": 0}, prompt_tokens=60, completion_tokens=50)
    ) as server:
        client = make_client(server.base_url, max_tokens_total=200)
        for i in range(2):
            client.complete_json([{"role": "user", "content": f"q{i}"}], Verdict)
        with pytest.raises(BudgetExceeded, match="token budget"):
            client.complete_json([{"role": "user", "content": "q2"}], Verdict)
    assert len(server.requests) == 2 and client.stats.total_tokens == 220


def test_cache_hit_on_second_call_and_key_never_written(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with serve([error_reply(500), json_reply({"answer": "yes", "confidence": 0.5})]) as server:
        first = make_client(server.base_url, tmp_path)
        a = first.complete_json(MESSAGES, Verdict)
        # A new client (a re-run of the pipeline) with the same cache pays nothing.
        second = make_client(server.base_url, tmp_path)
        b = second.complete_json(MESSAGES, Verdict)
    assert a == b
    assert len(server.requests) == 2  # one 500 + one good reply, no request for the second run
    assert second.stats.cache_hits == 1 and second.stats.requests == 0
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["reply"] == {
        "answer": "yes",
        "confidence": 0.5,
    }
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text()
    assert not list((tmp_path / "cache").rglob("*.tmp-*"))
    assert SECRET not in caplog.text
    assert (
        SECRET not in repr(first)
        and SECRET not in repr(first.config)
        and SECRET not in str(first.config.model_dump())
    )


def test_cache_key_depends_on_prompt_schema_and_model(tmp_path):
    class Other(BaseModel):
        answer: str

    client = make_client("http://127.0.0.1:9/v1", tmp_path)
    key = client.cache_key(MESSAGES, Verdict)
    assert key == make_client("http://127.0.0.1:9/v1").cache_key(MESSAGES, Verdict)
    assert key != client.cache_key([{"role": "user", "content": "other"}], Verdict)
    assert key != client.cache_key(MESSAGES, Other)
    assert key != make_client("http://127.0.0.1:9/v1", model="other").cache_key(MESSAGES, Verdict)


def test_images_are_sent_as_base64_data_urls():
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    image[:, :6] = 255
    with serve([json_reply({"answer": "left", "confidence": 1})]) as server:
        make_client(server.base_url).complete_json(MESSAGES, Verdict, images=[image])
    (url,) = server.requests[0].image_urls
    assert url.startswith("data:image/jpeg;base64,")
    assert "Is the cup left of the laptop?" in server.requests[0].text


def test_unreachable_endpoint_fails_cleanly():
    with serve([]) as server:
        url = server.base_url  # the port is free again once the server stops
    client = make_client(url, max_retries=1)
    with pytest.raises(LLMError, match="connection error"):
        client.complete_json(MESSAGES, Verdict)


def test_from_env(monkeypatch, tmp_path):
    for name in ("HISPATIAL_LLM_BASE_URL", "HISPATIAL_LLM_API_KEY", "OPENAI_API_KEY", "HISPATIAL_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert LLMClient.from_env() is None
    monkeypatch.setenv("HISPATIAL_LLM_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HISPATIAL_LLM_MAX_CALLS", "7")
    client = LLMClient.from_env(cache_dir=tmp_path)
    assert client is not None
    assert client.config.api_key_env == "OPENAI_API_KEY" and client.config.max_calls == 7
    assert client.config.model == "gpt-4.1" and client.config.cache_dir == tmp_path
    assert SECRET not in repr(client) and SECRET not in client.config.model_dump_json()


def test_complete_text_retries_empty_replies_caches_and_sends_images(tmp_path):
    image = np.full((4, 4, 3), 128, dtype=np.uint8)
    with serve([text_reply(""), text_reply("  The cup is 0.42 m from the laptop.\n")]) as server:
        client = make_client(server.base_url, tmp_path)
        answer = client.complete_text(MESSAGES, images=[image])
        again = make_client(server.base_url, tmp_path).complete_text(MESSAGES, images=[image])
    assert answer == again == "The cup is 0.42 m from the laptop."
    assert len(server.requests) == 2 and client.stats.invalid_replies == 1
    assert "response_format" not in server.requests[0].body
    assert server.requests[1].image_urls and server.requests[1].body["messages"][0]["role"] == "user"
    # Text and JSON requests of the same messages never share a cache entry.
    assert client.cache_key(MESSAGES, None) != client.cache_key(MESSAGES, Verdict)


def test_budget_running_out_during_retries_raises_budget_exceeded():
    with serve([error_reply(500)] * 5) as server:
        client = make_client(server.base_url, max_calls=2, max_retries=4)
        with pytest.raises(BudgetExceeded):
            client.complete_json(MESSAGES, Verdict)
    assert len(server.requests) == 2
