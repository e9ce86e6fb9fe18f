"""Operations faults: a run killed with SIGKILL mid-partition, and two partitions running at once.

Both drive the real `hispatial` CLI in subprocesses against one persistent instance; slow (tens of seconds)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hispatial_dagster.shards import ShardInbox, ShardSpec

pytestmark = pytest.mark.slow
HISPATIAL = str(Path(sys.executable).with_name("hispatial"))


def _env(root: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "HISPATIAL_DATA_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
    }
    env.pop("DAGSTER_HOME", None)
    return env


def _stage(root: Path, name: str, shard: str) -> subprocess.Popen:
    return subprocess.Popen(
        [HISPATIAL, "stage", name, "--shard", shard],
        env=_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _status(root: Path) -> dict[tuple[str, str], str]:
    out = subprocess.run(
        [HISPATIAL, "status"], env=_env(root), capture_output=True, text=True, timeout=300, check=True
    ).stdout
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.startswith("│")
    ]
    return {(row[0], row[1]): row[2] for row in rows}


def test_sigkill_mid_partition_leaves_no_partial_shard_and_retry_completes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    ShardInbox(str(root / "inbox")).write("synthetic-000", ShardSpec(kind="synthetic", seed=1, num_scenes=30))
    proc = _stage(root, "source_images", "synthetic-000")
    stage_dir = root / "source_images"
    deadline = time.time() + 120
    # Wait until the stage is visibly mid-write (its temp directory holds some images), then kill it hard.
    while time.time() < deadline:
        temps = list(stage_dir.glob(".synthetic-000.tmp-*")) if stage_dir.exists() else []
        if temps and len(list((temps[0] / "images").glob("*.jpg"))) >= 2:
            break
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    else:
        pytest.fail("the stage never started writing")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (stage_dir / "synthetic-000").exists(), "a killed run must not leave a visible shard"
    assert list(stage_dir.glob(".synthetic-000.tmp-*")), "the partial write stays hidden under its temp name"

    # The killed run is recognised as dead (its pid is gone), not left "in progress".
    assert _status(root)[("source_images", "synthetic-000")] == "failed"

    retry = _stage(root, "source_images", "synthetic-000")
    out, _ = retry.communicate(timeout=600)
    assert retry.returncode == 0, out
    manifest = json.loads((stage_dir / "synthetic-000" / "_manifest.json").read_text())
    assert manifest["num_out"] + manifest["num_rejected"] == 30
    lines = (stage_dir / "synthetic-000" / "scenes.jsonl").read_text().splitlines()
    assert len(lines) == manifest["num_out"]
    assert not list(stage_dir.glob(".synthetic-000.tmp-*")), (
        "the retry cleans up the killed run's temp directory"
    )


def test_two_partitions_at_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    inbox = ShardInbox(str(root / "inbox"))
    for i in range(2):
        inbox.write(f"synthetic-00{i}", ShardSpec(kind="synthetic", seed=10 + i, num_scenes=4))
    for stage in ("source_images", "filtered_images"):
        procs = [_stage(root, stage, f"synthetic-00{i}") for i in range(2)]
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, out
    seeds = {}
    for i in range(2):
        shard_dir = root / "filtered_images" / f"synthetic-00{i}"
        scenes = [json.loads(ln) for ln in (shard_dir / "scenes.jsonl").read_text().splitlines()]
        assert scenes and all(s["shard"] == f"synthetic-00{i}" for s in scenes)
        seeds[i] = json.loads((root / "source_images" / f"synthetic-00{i}" / "_manifest.json").read_text())[
            "digest"
        ]
    assert seeds[0] != seeds[1]

    status = subprocess.run(
        [HISPATIAL, "status"], env=_env(root), capture_output=True, text=True, timeout=300, check=True
    ).stdout
    rows = [line for line in status.splitlines() if "filtered_images" in line]
    assert len(rows) == 2 and all("materialized" in row for row in rows)
