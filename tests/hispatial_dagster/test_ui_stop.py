"""`hispatial ui` ends its whole tree (dagster dev: webserver, daemon, code servers) within seconds when it gets
SIGTERM (a service manager, `kill`) or SIGINT (Ctrl-C). Before, `dagster dev` survived 8 s after SIGINT and a
SIGTERM to `hispatial ui` left it running for good."""

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from .servers import BIN, REPO, free_port, graphql, wait_until

STOP_WITHIN_S = 10.0


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
        except psutil.NoSuchProcess:
            pass
    return out


class _Proc:
    """Adapter for servers.wait_until (which asks services whether they are alive)."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc, self.log, self.name = proc, log, "hispatial ui"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=["SIGTERM", "SIGINT"]
)
def test_ui_stops_with_all_its_processes(tmp_path: Path, signum: int) -> None:
    port = free_port()
    env = {**os.environ, "HISPATIAL_DATA_ROOT": str(tmp_path / "data"), "HISPATIAL_SENSOR_INTERVAL_S": "5"}
    env.pop("DAGSTER_HOME", None)
    log = tmp_path / "ui.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [str(BIN / "hispatial"), "ui", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree: list[psutil.Process] = []
    try:
        wait_until(lambda: graphql(port, "query { version }"), [_Proc(proc, log)], 180, "hispatial ui", 2.0)
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
        assert len(tree) >= 3, [p.cmdline() for p in tree]  # hispatial, dagster dev, webserver/daemon/...
        started = time.monotonic()
        os.kill(proc.pid, signum)  # to `hispatial ui` alone, as a service manager or Ctrl-C would
        while _alive(tree) and time.monotonic() - started < 30:
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        left = [" ".join(p.cmdline()[:3]) for p in _alive(tree)]
        assert not left, f"still running {elapsed:.1f} s after {signal.Signals(signum).name}: {left}"
        assert elapsed < STOP_WITHIN_S, f"took {elapsed:.1f} s"
        assert proc.wait(timeout=5) == 128 + signum
    finally:
        for process in _alive([psutil.Process(proc.pid)] if proc.poll() is None else []) + _alive(tree):
            process.kill()


@pytest.mark.slow
def test_ui_over_a_demo_built_instance_launches_no_run(tmp_path: Path) -> None:
    """The user's path: `hispatial demo`, then `hispatial ui` on the same instance with nothing changed. With
    both sensors ticking every 5 s for two minutes, no run may start (before: every shard stage re-ran, then
    qa_dataset, then a new training run, then benchmark_scores)."""
    import dagster as dg

    env = {
        **os.environ,
        "HISPATIAL_DATA_ROOT": str(tmp_path / "data"),
        "HISPATIAL_SENSOR_INTERVAL_S": "5",
        "HISPATIAL_AUTOMATION_INTERVAL_S": "5",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db",
    }
    env.pop("DAGSTER_HOME", None)
    demo = subprocess.run(
        [str(BIN / "hispatial"), "demo", "--scenes", "4"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    home = tmp_path / "data" / ".dagster"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        before = len(instance.get_run_records())

    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [str(BIN / "hispatial"), "ui", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: graphql(port, "query { version }"), [_Proc(proc, log)], 180, "hispatial ui", 2.0)
        time.sleep(120)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_run_records()
            states = [s for s in instance.all_instigator_state() if s.name == "shard_inbox_sensor"]
            ticks = (
                instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id) if states else []
            )
        assert ticks, "the inbox sensor never ticked: the check proves nothing\n" + log.read_text()[-3000:]
        new = [r.dagster_run for r in runs][: len(runs) - before]
        assert not new, [(r.job_name, r.tags.get("dagster/partition")) for r in new]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
