"""Run faults through the real `hispatial` CLI (issue 19): two runs of one partition at once, and a run killed
while it holds the only `gpu` pool slot, with no daemon to clean up after it.

The slot holder is a real Dagster run on the same instance: a one-asset job in the `gpu` pool executed in-process
with the CLI's process tags (what `hispatial stage point_maps` does), paused inside its step."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

HISPATIAL = str(Path(sys.executable).with_name("hispatial"))
REPO = Path(__file__).resolve().parents[2]


def _env(root: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HISPATIAL_DATA_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DAGSTER_HOME", None)
    return env


def _cli(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [HISPATIAL, *args],
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int | None, str]:
    """(returncode, output); a process still running after `timeout` is killed and reported as None."""
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


@pytest.mark.slow  # ~20-35 s on 2 shared cores; tests/assets/test_storage_concurrency.py covers it in seconds
def test_two_runs_of_one_partition_at_once_lose_nothing(tmp_path: Path) -> None:
    """Finding 1: the second run deleted the first one's temp directory; the first exited 0 with most items
    'rejected' (FileNotFoundError) and could publish a shard without its images."""
    root = tmp_path / "data"
    assert _finish(_cli(root, "register", "s1", "--num-scenes", "24"), 120)[0] == 0
    runs = [_cli(root, "stage", "source_images", "--shard", "s1") for _ in range(2)]  # started together
    results = [_finish(run, 240) for run in runs]
    for code, out in results:
        assert code == 0, out
        assert re.search(r"│ source_images +│ s1 +│ 24 +│ 24 +│ 0 ", out), out
    waited = [out for _, out in results if "waiting for" in out]
    assert len(waited) == 1 and "being written by pid" in waited[0], results
    stage_dir = root / "source_images"
    manifest = json.loads((stage_dir / "s1" / "_manifest.json").read_text())
    assert (manifest["num_out"], manifest["num_rejected"]) == (24, 0)
    scenes = (stage_dir / "s1" / "scenes.jsonl").read_text().splitlines()
    assert len(scenes) == 24 and len(list((stage_dir / "s1" / "images").glob("*.jpg"))) == 24
    assert sorted(p.name for p in stage_dir.iterdir()) == ["s1"]


_HOLDER = """
import sys, time
from pathlib import Path
import dagster as dg
from hispatial_dagster.status import asset_status
from hispatial_dagster.instance import GPU_POOL, open_instance, process_tags

root = Path(sys.argv[1])

@dg.asset(pool=GPU_POOL)
def holds_gpu() -> None:
    (root / "holding").write_text("yes")
    time.sleep(600)

instance = open_instance(root)
defs = dg.Definitions(assets=[holds_gpu], jobs=[dg.define_asset_job("hold", [holds_gpu])])
job = defs.resolve_job_def("hold")
job.execute_in_process(instance=instance, tags=process_tags())
"""


def _hold_gpu_slot(root: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HOLDER), str(root)],
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not (root / "holding").exists():
        assert holder.poll() is None, holder.stdout.read()
        assert time.time() < deadline, "the holder never started its step"
        time.sleep(0.1)
    return holder


def _shard_ready_for_point_maps(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard whose point_maps can run: registered, its first two stages materialized (in this process, the
    same commands as the CLI; only the runs under test are separate processes)."""
    from hispatial_dagster import cli

    monkeypatch.setenv("HISPATIAL_DATA_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    monkeypatch.delenv("HISPATIAL_INBOX", raising=False)
    assert cli.main(["register", "s1", "--num-scenes", "2"]) == 0
    for stage in ("source_images", "filtered_images"):
        assert cli.main(["stage", stage, "--shard", "s1"]) == 0


def test_a_killed_run_does_not_keep_the_gpu_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 2: fail_orphaned_runs marked the killed run failed but never freed its slot, so every later GPU
    stage waited forever (at ~100% CPU, printing nothing)."""
    root = tmp_path / "data"
    _shard_ready_for_point_maps(root, monkeypatch)
    holder = _hold_gpu_slot(root)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(30)
    code, out = _finish(_cli(root, "stage", "point_maps", "--shard", "s1"), 90)
    assert code == 0, f"point_maps did not proceed after the slot holder was killed:\n{out}"
    assert re.search(r"│ point_maps +│ s1 +│ 2 +│ 2 ", out), out


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_step_waiting_for_the_gpu_slot_says_so_and_stops_on_a_signal(tmp_path: Path, sig: int) -> None:
    root = tmp_path / "data"
    assert _finish(_cli(root, "register", "s1", "--num-scenes", "2"), 120)[0] == 0  # it waits before reading
    holder = _hold_gpu_slot(root)
    try:
        waiting = _cli(root, "stage", "point_maps", "--shard", "s1")
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in waiting.stdout], daemon=True).start()
        seen = []
        deadline = time.time() + 45
        while time.time() < deadline and not any("waiting for a gpu slot" in line for line in seen):
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.5))
        said = next((line for line in seen if "waiting for a gpu slot" in line), None)
        assert said is not None, "the waiting CLI said nothing about what it waits for:\n" + "".join(seen)
        assert "held by run" in said, said
        time.sleep(1.0)
        os.killpg(waiting.pid, sig)
        try:
            code = waiting.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(waiting.pid, signal.SIGKILL)
            code = None
        assert code is not None, "the waiting CLI ignored the signal for 10 s"
        assert code != 0
        assert holder.poll() is None, "the signal reached only the waiting process"
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)


# ------------------------------------------------------------------------------ failures named, status complete


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("HISPATIAL_DATA_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("HISPATIAL_INBOX", raising=False)
    return root


def test_cli_failure_names_its_cause_in_one_line(data_root: Path, capsys: pytest.CaptureFixture) -> None:
    """Finding 9: the failure line said only 'Error occurred while executing op ...'; the cause was in the trace."""
    from hispatial_dagster import cli

    assert cli.main(["register", "s1", "--num-scenes", "2"]) == 0
    capsys.readouterr()
    assert cli.main(["stage", "filtered_images", "--shard", "s1"]) == 1
    lines = capsys.readouterr().out.splitlines()
    failure = next(line for line in lines if line.startswith("filtered_images failed (run "))
    assert re.search(
        r"\): filtered_images: FileNotFoundError: \S+/source_images/s1/scenes\.jsonl does not exist: "
        r"materialize the upstream stage for this shard first$",
        failure,
    ), failure


def test_status_shows_failed_unpartitioned_assets(data_root: Path) -> None:
    """Finding 9: `hispatial status` showed a failed qa_dataset or checkpoint as 'missing'."""
    from hispatial_dagster import cli
    from hispatial_dagster.definitions import build_defs
    from hispatial_dagster.instance import open_instance
    from hispatial_dagster.status import asset_status

    assert cli.main(["stage", "qa_dataset"]) == 1  # no QA shard to build it from
    assert cli.main(["stage", "checkpoint"]) == 1  # no QA dataset to train on
    rows = {
        (r["asset"], r["partition"]): r["status"]
        for r in asset_status(open_instance(data_root), build_defs())
    }
    assert rows[("qa_dataset", "-")] == "failed"
    assert rows[("checkpoint", "-")] == "failed"


_WAITER = """
import sys, uuid
from pathlib import Path
import dagster as dg
from hispatial_dagster.instance import GPU_POOL, open_instance, process_tags, watch_slot_wait

root = Path(sys.argv[1])

@dg.asset(pool=GPU_POOL)
def wants_gpu() -> None:
    (root / "got the slot").write_text("yes")

instance = open_instance(root)
defs = dg.Definitions(assets=[wants_gpu], jobs=[dg.define_asset_job("want", [wants_gpu])])
run_id = str(uuid.uuid4())
print("run", run_id, flush=True)
with watch_slot_wait(instance, run_id, lambda text: print(text, flush=True)):
    defs.resolve_job_def("want").execute_in_process(instance=instance, tags=process_tags(), run_id=run_id)
"""


def test_a_run_waiting_inside_dagster_for_the_slot_stops_on_ctrl_c(tmp_path: Path) -> None:
    """Where another run takes the slot between the CLI's own wait and Dagster's claim, Dagster waits in a loop
    that defers Ctrl-C until the slot is free; the watcher says whom it waits for and cancels the run."""
    import dagster as dg

    root = tmp_path / "data"
    holder = _hold_gpu_slot(root)
    try:
        waiter = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_WAITER), str(root)],
            env=_env(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in waiter.stdout], daemon=True).start()
        seen: list[str] = []
        deadline = time.time() + 45
        while time.time() < deadline and not any("waiting for a gpu slot" in line for line in seen):
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.5))
        assert any("held by run" in line for line in seen), "".join(seen)
        os.killpg(waiter.pid, signal.SIGINT)
        try:
            code = waiter.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(waiter.pid, signal.SIGKILL)
            code = None
        assert code == 130, "the waiting run ignored Ctrl-C"
        assert not (root / "got the slot").exists()
        run_id = next(line.split()[1] for line in seen if line.startswith("run "))
        with dg.DagsterInstance.from_config(str(root / ".dagster")) as instance:
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED
            assert run_id not in instance.event_log_storage.get_concurrency_info("gpu").pending_run_ids
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)
