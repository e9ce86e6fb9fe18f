"""Real services for the slow integration tests (dagster-webserver, dagster-daemon, the MLflow tracking server):
start each on 127.0.0.1 in its own process group with its output in a log file, wait until it answers, and end the
whole group afterwards (services spawn children: Dagster code servers, gunicorn/uvicorn workers), so a failing
test leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
DAGSTER_WORKSPACE = ["-m", "hispatial_dagster.definitions", "-d", str(REPO)]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a race with another process is unlikely)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One started service: its process (the leader of its own group) and the log file it writes to."""

    def __init__(self, name: str, proc: subprocess.Popen, log_path: Path, handle) -> None:
        self.name, self.proc, self.log_path, self._handle = name, proc, log_path, handle

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        self._handle.flush()
        return (
            f"--- {self.name} log ({self.log_path}) ---\n"
            + self.log_path.read_text(errors="replace")[-chars:]
        )

    def stop(self) -> None:
        """End the service's whole process group; SIGKILL if SIGTERM is ignored for 20 s."""
        try:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=20)
            # The leader may have exited while children of its group live on: sweep the group too.
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        finally:
            self._handle.close()


def start_service(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> Service:
    """Start `argv` in a new session (its own process group) with stdout+stderr to `<log_dir>/<name>.log`."""
    log_path = Path(log_dir) / f"{name}.log"
    handle = open(log_path, "w")  # noqa: SIM115 - closed by Service.stop
    proc = subprocess.Popen(
        list(argv), env=dict(env), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
    )
    return Service(name, proc, log_path, handle)


@contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    """Yield the services and stop every one of them at the end, whatever happened in between."""
    try:
        yield services
    finally:
        for service in services:
            service.stop()


def wait_until(probe, services: Sequence[Service], timeout_s: float, what: str, interval_s: float = 1.0):
    """Call `probe()` until it returns without a connection error; fail early if a service died meanwhile."""
    deadline = time.time() + timeout_s
    while True:
        try:
            return probe()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            dead = [s for s in services if not s.alive()]
            assert not dead, f"{what}: {dead[0].name} exited\n" + dead[0].log_tail()
            assert time.time() < deadline, f"{what}: not up after {timeout_s} s\n" + "\n".join(
                s.log_tail() for s in services
            )
            time.sleep(interval_s)


def http_get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def http_json(url: str, body: dict | None = None, timeout: float = 30) -> dict:
    """GET (body None) or POST a JSON body; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """A Dagster GraphQL query against the webserver on 127.0.0.1:`port`; its data (asserts no GraphQL errors)."""
    payload = http_json(f"http://127.0.0.1:{port}/graphql", {"query": query, "variables": variables or {}})
    assert "errors" not in payload, payload
    return payload["data"]


def dagster_webserver(port: int, env: Mapping[str, str], log_dir: Path) -> Service:
    argv = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *DAGSTER_WORKSPACE]
    return start_service("webserver", argv, env, log_dir)


def dagster_daemon(env: Mapping[str, str], log_dir: Path) -> Service:
    return start_service("daemon", [str(BIN / "dagster-daemon"), "run", *DAGSTER_WORKSPACE], env, log_dir)


def wait_for_dagster(port: int, services: Sequence[Service], timeout_s: float = 180) -> None:
    wait_until(lambda: graphql(port, "query { version }"), services, timeout_s, "dagster-webserver", 2.0)
