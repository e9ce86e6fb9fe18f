"""One client for every external LLM/VLM call: OpenAI-compatible, validated, retried, budgeted and cached.

The QA engine (Level-3 problem solving), the benchmark judge and the reference VLM all talk to a chat-completions
endpoint. Doing that well is fiddly (malformed JSON, rate limits, flaky 5xx, runaway spend, paying twice for the same
prompt on a re-run), so it lives here once:

- `LLMConfig` is plain typed data. It names the *environment variable* holding the API key, never the key: the key
  is read when a request is made, is never stored on any object of ours, and is redacted from every error message.
- `LLMClient.complete_json(messages, schema, images=None)` asks for a JSON object (``response_format``), extracts
  the first JSON object from the reply text when the server ignores that, validates it with a pydantic model, and
  retries with exponential backoff on malformed/invalid replies, timeouts, HTTP 429 and 5xx.
- `LLMClient.complete_text(messages, images=None)` is the same machinery for free-text replies (a reference VLM
  answering a benchmark question).
- A per-run budget (HTTP calls and/or tokens) stops spending with `BudgetExceeded`.
- Replies are cached on disk under sha256(model, temperature, messages, schema): re-running a pipeline never pays
  twice. Cache files are written atomically and hold only the prompt hash and the validated reply.

Nothing here imports Dagster; the Dagster layer builds an `LLMClient` from a resource (or `LLMClient.from_env()`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assets.storage import atomic_write_json

log = logging.getLogger(__name__)

SchemaT = TypeVar("SchemaT", bound=BaseModel)
Message = dict[str, Any]
ImageInput = np.ndarray | bytes | Path | str | Image.Image

# Used when no key is set at all: local OpenAI-compatible servers (vLLM, llama.cpp, Ollama) ignore the key but the
# openai client insists on one.
NO_KEY_PLACEHOLDER = "EMPTY"


class LLMError(RuntimeError):
    """An LLM request could not produce a valid reply (after retries, or for a non-retryable reason)."""


class BudgetExceeded(LLMError):
    """This run's call/token budget is spent; callers should stop asking and report fewer items."""


class LLMConfig(BaseModel):
    """Where to send requests and how hard to try. Holds no secret: `api_key_env` is the variable's *name*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(min_length=1, description="OpenAI-compatible endpoint, e.g. http://host:8000/v1.")
    model: str = Field(min_length=1)
    api_key_env: str = Field(
        default="HISPATIAL_LLM_API_KEY", description="Name of the environment variable holding the API key."
    )
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, description="Extra attempts after the first one fails.")
    backoff_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles on each retry.")
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_calls: int | None = Field(
        default=None, ge=0, description="HTTP requests allowed this run (retries count)."
    )
    max_tokens_total: int | None = Field(
        default=None, ge=0, description="Prompt+completion tokens allowed this run."
    )
    max_output_tokens: int | None = Field(default=2048, gt=0)
    temperature: float = Field(default=0.0, ge=0, le=2)
    response_format: Literal["json_schema", "json_object", "none"] = Field(
        default="json_object",
        description="json_object is the most widely supported structured mode; json_schema sends the pydantic "
        "schema (non-strict); none relies on extracting JSON from the text.",
    )
    cache_dir: Path | None = Field(default=None, description="Response cache; None disables caching.")


@dataclass
class LLMStats:
    """Counters for asset metadata: what this client did during the run."""

    requests: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    invalid_replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "llm_requests": self.requests,
            "llm_cache_hits": self.cache_hits,
            "llm_retries": self.retries,
            "llm_failures": self.failures,
            "llm_invalid_replies": self.invalid_replies,
            "llm_prompt_tokens": self.prompt_tokens,
            "llm_completion_tokens": self.completion_tokens,
        }


class _RetryableReply(Exception):
    """Internal: the attempt failed in a way another attempt may fix."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`: the whole text if it parses, else the first `{...}` that does.

    Chat models often wrap JSON in prose or ```json fences even when asked not to; raw_decode at each "{" finds
    the object without a hand-written brace matcher.
    """
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    decoder = json.JSONDecoder()
    start = stripped.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(stripped, start)
        except json.JSONDecodeError:
            start = stripped.find("{", start + 1)
            continue
        if isinstance(value, dict):
            return value
        start = stripped.find("{", start + 1)
    raise ValueError(f"no JSON object in reply: {stripped[:200]!r}")


def image_data_url(image: ImageInput) -> str:
    """Encode an image (HxWx3 uint8 array, PIL image, encoded bytes, or a file path) as a base64 data URL."""
    if isinstance(image, str | Path):
        image = Path(image).read_bytes()
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as probe:
            mime = Image.MIME.get(probe.format or "", "image/png")
        return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="JPEG", quality=90)
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def attach_images(messages: Sequence[Message], images: Sequence[ImageInput]) -> list[Message]:
    """Copy of `messages` with the images appended (as data URLs) to the last user message's content parts."""
    out = [dict(m) for m in messages]
    for message in reversed(out):
        if message.get("role") == "user":
            content = message.get("content", "")
            parts = list(content) if isinstance(content, list) else [{"type": "text", "text": str(content)}]
            parts += [{"type": "image_url", "image_url": {"url": image_data_url(img)}} for img in images]
            message["content"] = parts
            return out
    raise ValueError("images need a user message to attach to")


def _schema_instruction(schema: type[BaseModel]) -> str:
    return (
        "Reply with one JSON object only (no prose, no code fences) that validates against this JSON schema:\n"
        + json.dumps(schema.model_json_schema(), sort_keys=True)
    )


class LLMClient:
    """A budgeted, caching, validating wrapper around `openai.OpenAI` chat completions. Thread-safe counters.

    Keep one client per run: the budget and the counters belong to it.
    """

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.stats = LLMStats()
        self._lock = threading.Lock()
        self._response_format = config.response_format

    def __repr__(self) -> str:
        return f"LLMClient(model={self.config.model!r}, base_url={self.config.base_url!r})"

    # ------------------------------------------------------------------------------------------- construction

    @classmethod
    def from_env(cls, prefix: str = "HISPATIAL_LLM", **overrides: Any) -> LLMClient | None:
        """Build a client from `<prefix>_BASE_URL`, `<prefix>_MODEL`, `<prefix>_API_KEY` (else `OPENAI_API_KEY`),
        optional `<prefix>_MAX_CALLS`, `<prefix>_CACHE_DIR`, `<prefix>_TIMEOUT_S`; None when no endpoint is set.

        Other users pick their own prefix (e.g. HISPATIAL_JUDGE for the benchmark judge).
        """
        env = os.environ
        base_url = env.get(f"{prefix}_BASE_URL")
        if not base_url:
            return None
        key_env = f"{prefix}_API_KEY"
        if not env.get(key_env) and env.get("OPENAI_API_KEY"):
            key_env = "OPENAI_API_KEY"
        fields: dict[str, Any] = {
            "base_url": base_url,
            "model": env.get(f"{prefix}_MODEL", "gpt-4.1"),
            "api_key_env": key_env,
        }
        for name, field in (
            ("MAX_CALLS", "max_calls"),
            ("CACHE_DIR", "cache_dir"),
            ("TIMEOUT_S", "timeout_s"),
        ):
            if env.get(f"{prefix}_{name}"):
                fields[field] = env[f"{prefix}_{name}"]
        fields.update(overrides)
        return cls(LLMConfig(**fields))

    # ------------------------------------------------------------------------------------------------ secrets

    def _api_key(self) -> str:
        return os.environ.get(self.config.api_key_env) or NO_KEY_PLACEHOLDER

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.config.api_key_env)
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    # -------------------------------------------------------------------------------------------------- cache

    def cache_key(self, messages: Sequence[Message], schema: type[BaseModel] | None) -> str:
        """sha256 over everything that determines the reply (never the key or the endpoint URL).

        `messages` are the full request messages; `schema` None means a free-text request."""
        payload = {
            "model": self.config.model,
            "temperature": self.config.temperature,
            "messages": list(messages),
            "schema": schema.model_json_schema() if schema is not None else "text",
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()

    def _cache_path(self, key: str) -> Path | None:
        if self.config.cache_dir is None:
            return None
        return Path(self.config.cache_dir) / key[:2] / f"{key}.json"

    def _cache_get(self, key: str, schema: type[SchemaT] | None) -> SchemaT | str | None:
        path = self._cache_path(key)
        if path is None or not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if schema is None:
                return str(entry["text"]) or None
            return schema.model_validate(entry["reply"])
        except (OSError, ValueError, KeyError, ValidationError) as err:
            log.warning("ignoring unreadable cache entry %s: %s", path.name, err)
            return None

    def _cache_put(self, key: str, reply: BaseModel | str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        entry: dict[str, Any] = {"key": key, "model": self.config.model}
        if isinstance(reply, str):
            entry["text"] = reply
        else:
            entry["reply"] = reply.model_dump(mode="json")
        atomic_write_json(path, entry)

    # ------------------------------------------------------------------------------------------------- budget

    def budget_left(self) -> dict[str, int | None]:
        calls = None if self.config.max_calls is None else self.config.max_calls - self.stats.requests
        tokens = (
            None
            if self.config.max_tokens_total is None
            else self.config.max_tokens_total - self.stats.total_tokens
        )
        return {"calls": calls, "tokens": tokens}

    def _reserve_call(self) -> None:
        with self._lock:
            cfg = self.config
            if cfg.max_calls is not None and self.stats.requests >= cfg.max_calls:
                raise BudgetExceeded(f"call budget of {cfg.max_calls} requests spent")
            if cfg.max_tokens_total is not None and self.stats.total_tokens >= cfg.max_tokens_total:
                raise BudgetExceeded(f"token budget of {cfg.max_tokens_total} tokens spent")
            self.stats.requests += 1

    # ---------------------------------------------------------------------------------------------- requests

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: type[SchemaT],
        images: Sequence[ImageInput] | None = None,
        *,
        use_cache: bool = True,
    ) -> SchemaT:
        """Ask for a JSON reply that validates against `schema`; retry until it does or retries run out.

        Raises `BudgetExceeded` when this run's budget is spent and `LLMError` when every attempt failed or the
        request is rejected outright (4xx other than 429). Cache hits cost nothing and count as `cache_hits`.
        """
        full = [{"role": "system", "content": _schema_instruction(schema)}, *messages]
        if images:
            full = attach_images(full, images)
        return self._complete(full, schema, use_cache)

    def complete_text(
        self,
        messages: Sequence[Message],
        images: Sequence[ImageInput] | None = None,
        *,
        use_cache: bool = True,
    ) -> str:
        """A free-text reply (e.g. a reference VLM answering a benchmark question), with the same retries, budget
        and cache as `complete_json`; an empty reply counts as invalid and is retried."""
        full = attach_images(messages, images) if images else [dict(m) for m in messages]
        return self._complete(full, None, use_cache)

    def _complete(self, full: list[Message], schema: type[SchemaT] | None, use_cache: bool) -> Any:
        """The retry loop shared by JSON and text requests: cache, budget, backoff, counters."""
        key = self.cache_key(full, schema)
        if use_cache:
            cached = self._cache_get(key, schema)
            if cached is not None:
                with self._lock:
                    self.stats.cache_hits += 1
                return cached

        last_reason = ""
        retry_after_s = 0.0
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                delay = max(self.config.backoff_s * 2 ** (attempt - 1), retry_after_s)
                delay = min(delay, self.config.backoff_max_s)
                with self._lock:
                    self.stats.retries += 1
                log.warning("LLM attempt %d failed (%s); retrying in %.2fs", attempt, last_reason, delay)
                time.sleep(delay)
            self._reserve_call()
            try:
                reply = self._attempt(full, schema)
            except _RetryableReply as err:
                last_reason = str(err)
                retry_after_s = err.retry_after_s or 0.0
                continue
            if use_cache:
                self._cache_put(key, reply)
            return reply
        with self._lock:
            self.stats.failures += 1
        raise LLMError(f"no valid reply after {self.config.max_retries + 1} attempts: {last_reason}")

    def _request_kwargs(self, messages: list[Message], schema: type[BaseModel] | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
        }
        if self.config.max_output_tokens is not None:
            kwargs["max_tokens"] = self.config.max_output_tokens
        if schema is None:
            pass  # free text: no structured output mode
        elif self._response_format == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        elif self._response_format == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.__name__,
                    "schema": schema.model_json_schema(),
                    "strict": False,
                },
            }
        return kwargs

    def _attempt(self, messages: list[Message], schema: type[SchemaT] | None) -> SchemaT | str:
        """One HTTP request. The openai client is built per attempt so the key lives only in this frame."""
        import openai  # deferred: importing openai costs ~2 s, and most users of this module never call out

        try:
            with openai.OpenAI(
                base_url=self.config.base_url,
                api_key=self._api_key(),
                timeout=self.config.timeout_s,
                max_retries=0,  # retries are ours: they must see validation failures and the budget
            ) as client:
                completion = client.chat.completions.create(**self._request_kwargs(messages, schema))
        except openai.APITimeoutError as err:
            raise _RetryableReply(f"timeout after {self.config.timeout_s}s") from err
        except openai.APIConnectionError as err:
            raise _RetryableReply(self._redact(f"connection error: {err}")) from err
        except openai.RateLimitError as err:
            raise _RetryableReply("HTTP 429 rate limited", _retry_after(err.response.headers)) from err
        except openai.APIStatusError as err:
            if err.status_code >= 500:
                raise _RetryableReply(f"HTTP {err.status_code}") from err
            if err.status_code == 400 and self._response_format != "none" and "response_format" in str(err):
                # The server does not support structured output: fall back to extracting JSON from text.
                log.warning("endpoint rejected response_format; falling back to plain text JSON extraction")
                self._response_format = "none"
                raise _RetryableReply("response_format unsupported") from err
            with self._lock:
                self.stats.failures += 1
            raise LLMError(self._redact(f"HTTP {err.status_code}: {err.message}")) from None

        usage = getattr(completion, "usage", None)
        if usage is not None:
            with self._lock:
                self.stats.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                self.stats.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        choices = getattr(completion, "choices", None) or []
        content = choices[0].message.content if choices and choices[0].message else None
        if not content:
            self._count_invalid()
            raise _RetryableReply("empty reply")
        if schema is None:
            return content.strip()
        try:
            return schema.model_validate(extract_json_object(content))
        except ValidationError as err:
            self._count_invalid()
            raise _RetryableReply(f"reply violates {schema.__name__}: {err.error_count()} errors") from err
        except ValueError as err:
            self._count_invalid()
            raise _RetryableReply(f"malformed JSON: {err}") from err

    def _count_invalid(self) -> None:
        with self._lock:
            self.stats.invalid_replies += 1


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value > 0 else None
