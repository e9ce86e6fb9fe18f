"""A real local HTTP server speaking the OpenAI chat-completions protocol, with scripted replies.

Tests of anything that calls an LLM/VLM endpoint (the QA engine's problem solving, the benchmark judge, the
reference VLM) run the real `openai` client over real HTTP against this server, so retries, timeouts, status codes
and JSON handling are exercised end to end without any mock of our own code.

    from tests.openai_server import serve, json_reply, text_reply, error_reply

    with serve([error_reply(500), json_reply({"answer": "yes"})]) as server:
        client = LLMClient(LLMConfig(base_url=server.base_url, model="m", backoff_s=0))
        ...
        assert len(server.requests) == 2
        assert server.requests[0].body["model"] == "m"

`replies` is either a sequence (served in order, then `default`, which is HTTP 500 "script exhausted" unless
given) or a function `request -> Reply` for routing by prompt content (e.g. teacher vs. student prompts).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted response: assistant `content` wrapped in a chat completion, or a raw `body` with `status`."""

    status: int = 200
    content: str | None = None
    body: Any = None
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    prompt_tokens: int = 10
    completion_tokens: int = 5


def json_reply(obj: Any, **kwargs: Any) -> Reply:
    """A well-formed reply whose assistant message is `obj` serialised as JSON."""
    return Reply(content=json.dumps(obj), **kwargs)


def text_reply(text: str, **kwargs: Any) -> Reply:
    """A reply whose assistant message is arbitrary text (prose, fenced JSON, broken JSON...)."""
    return Reply(content=text, **kwargs)


def error_reply(status: int, message: str = "scripted error", **kwargs: Any) -> Reply:
    """An HTTP error with the OpenAI error body shape."""
    return Reply(
        status=status, body={"error": {"message": message, "type": "server_error", "code": status}}, **kwargs
    )


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    @property
    def text(self) -> str:
        """All message text of the request joined, for routing and assertions."""
        parts: list[str] = []
        for message in self.messages:
            content = message.get("content", "")
            if isinstance(content, list):
                parts += [
                    p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
                ]
            else:
                parts.append(str(content))
        return "\n".join(parts)

    @property
    def image_urls(self) -> list[str]:
        urls = []
        for message in self.messages:
            content = message.get("content", "")
            if isinstance(content, list):
                urls += [
                    p["image_url"]["url"]
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "image_url"
                ]
        return urls


ReplyScript = Sequence[Reply] | Callable[[RecordedRequest], Reply]


class ScriptedOpenAIServer:
    """The running server: `base_url` (ends in /v1), `requests` (recorded in arrival order), `remaining`."""

    def __init__(self, replies: ReplyScript, default: Reply | None = None) -> None:
        self._script = replies if callable(replies) else list(replies)
        self._default = default or error_reply(500, "script exhausted")
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="openai-test-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def remaining(self) -> int:
        """Scripted replies not served yet (0 for a function script)."""
        return 0 if callable(self._script) else len(self._script)

    def start(self) -> ScriptedOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if callable(self._script):
                return self._script(request)
            return self._script.pop(0) if self._script else self._default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr access logs
                return

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to deliver

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                request = RecordedRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    with server._lock:
                        server.requests.append(request)
                    self._send(404, {"error": {"message": f"unknown path {self.path}"}})
                    return
                reply = server._next_reply(request)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.body is not None:
                    payload = reply.body.encode("utf-8") if isinstance(reply.body, str) else reply.body
                    self._send(reply.status, payload, reply.headers)
                    return
                model = body.get("model", "scripted") if isinstance(body, dict) else "scripted"
                completion = {
                    "id": f"chatcmpl-{len(server.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": reply.prompt_tokens,
                        "completion_tokens": reply.completion_tokens,
                        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                    },
                }
                self._send(reply.status, completion, reply.headers)

        return Handler


@contextlib.contextmanager
def serve(replies: ReplyScript = (), default: Reply | None = None) -> Iterator[ScriptedOpenAIServer]:
    """Run a scripted server on 127.0.0.1 (random free port) for the duration of the block."""
    server = ScriptedOpenAIServer(replies, default).start()
    try:
        yield server
    finally:
        server.stop()
