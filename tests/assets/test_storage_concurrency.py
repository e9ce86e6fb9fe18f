"""Two writers of one directory, and crashes at each point of a publish (issue 19, findings 1 and 10).

The crash cases run the real `atomic_dir` in a subprocess that SIGKILLs itself at one point of the publish, so no
cleanup code of the writer runs, exactly as after a kill or a power cut of the process."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from assets.storage import PartitionBusyError, atomic_dir, shard_dir


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_second_writer_waits_and_never_touches_the_first_writers_files(tmp_path, caplog):
    """Finding 1: the second run's atomic_dir deleted the first run's live temp directory."""
    final = tmp_path / "source_images" / "s1"
    first_inside = threading.Event()
    second_started = threading.Event()
    events: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with atomic_dir(final) as tmp:
                (tmp / "images").mkdir()
                (tmp / "images" / "0.jpg").write_bytes(b"a")
                first_inside.set()
                second_started.wait(5)
                time.sleep(0.6)  # the second writer is now trying to start
                (tmp / "images" / "1.jpg").write_bytes(b"b")  # main: FileNotFoundError, its tmp is gone
                events.append("first published")
        except BaseException as err:  # noqa: BLE001 (reported by the assertion below)
            errors.append(err)

    def second() -> None:
        first_inside.wait(5)
        second_started.set()
        with atomic_dir(final) as tmp:
            events.append("second writing")
            (tmp / "images").mkdir()
            for i in range(3):
                (tmp / "images" / f"{i}.jpg").write_bytes(b"c")

    caplog.set_level(logging.WARNING, logger="assets.storage")
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors, f"the first writer lost its files: {errors!r}"
    assert events == ["first published", "second writing"], "the second writer did not wait for the first"
    assert _names(final / "images") == ["0.jpg", "1.jpg", "2.jpg"]
    assert _names(final.parent) == ["s1"], "no lock, temp or old directory is left behind"
    assert any("waiting for" in r.getMessage() and "pid" in r.getMessage() for r in caplog.records), (
        "the waiting writer says what it waits for"
    )


def test_second_writer_with_a_timeout_fails_clearly_and_leaves_the_first_alone(tmp_path):
    final = tmp_path / "qa_shards" / "s1"
    with atomic_dir(final) as tmp:
        (tmp / "qa.parquet").write_bytes(b"first")
        with (
            pytest.raises(PartitionBusyError, match=r"being written by pid \d+"),
            atomic_dir(final, timeout_s=0.3),
        ):
            pytest.fail("entered a directory another writer holds")
        assert (tmp / "qa.parquet").read_bytes() == b"first"
    assert (final / "qa.parquet").read_bytes() == b"first"


def test_stale_temp_of_a_dead_writer_is_removed_by_the_next_writer(tmp_path):
    """Only temps whose writer is gone are cleaned: the lock a dead process held is free again."""
    _run_and_kill(tmp_path, "inside")
    stage = tmp_path / "stage"
    assert any(name.startswith(".s0.tmp-") for name in _names(stage))
    with atomic_dir(stage / "s0") as tmp:
        (tmp / "v").write_text("3")
    assert _names(stage) == ["s0"]


# ------------------------------------------------------------------------------------------ crash during publish

_CRASH_SCRIPT = """
import os, signal, sys
from pathlib import Path
import assets.storage as storage

point, root = sys.argv[1], Path(sys.argv[2])
final = root / "stage" / "s0"
armed = False
real_replace = os.replace
real_exchange = getattr(storage, "_rename_exchange", lambda a, b: False)  # main had no atomic swap

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def replace(a, b):
    real_replace(a, b)
    if armed and point == "fallback-after-first-rename" and Path(b).name.startswith(".s0.old-"):
        die()
    if armed and point == "fallback-after-second-rename" and Path(b) == final:
        die()

def exchange(a, b):
    if point.startswith("fallback"):
        return False
    done = real_exchange(a, b)
    if armed and point == "after-swap":
        die()
    return done

os.replace = replace
storage._rename_exchange = exchange
with storage.atomic_dir(final) as tmp:
    (tmp / "v").write_text("new")
    if point == "inside":
        die()
    armed = True
raise SystemExit("not killed")
"""


def _run_and_kill(root: Path, point: str) -> None:
    stage = root / "stage"
    if not (stage / "s0").exists():
        with atomic_dir(stage / "s0") as tmp:
            (tmp / "v").write_text("old")
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CRASH_SCRIPT), point, str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr


@pytest.mark.parametrize(
    ("point", "visible"),
    [
        ("inside", "old"),  # killed while writing the temp directory
        ("after-swap", "new"),  # killed after the atomic swap, before the previous version was removed
        ("fallback-after-first-rename", "old"),  # no atomic swap: killed between the two renames
        ("fallback-after-second-rename", "new"),  # no atomic swap: killed before removing `.old-*`
    ],
)
def test_crash_at_any_point_of_a_publish_leaves_a_complete_version(tmp_path, point, visible):
    """Finding 10: a crash between atomic_dir's two renames left the shard invisible and never restored it."""
    _run_and_kill(tmp_path, point)
    # A reader going through shard_dir sees a complete version (restored if the crash hid it).
    assert (shard_dir(tmp_path, "stage", "s0") / "v").read_text() == visible
    # The next write of the shard cleans up whatever the crash left and publishes normally.
    with atomic_dir(tmp_path / "stage" / "s0") as tmp:
        (tmp / "v").write_text("next")
    assert (tmp_path / "stage" / "s0" / "v").read_text() == "next"
    assert _names(tmp_path / "stage") == ["s0"]


def test_next_write_restores_a_version_hidden_by_a_crash(tmp_path):
    """Without a read in between, the next writer restores first; if it then fails, the old version stays."""
    _run_and_kill(tmp_path, "fallback-after-first-rename")
    assert not (tmp_path / "stage" / "s0").exists()
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "stage" / "s0"):
        raise RuntimeError("this run fails too")
    assert (tmp_path / "stage" / "s0" / "v").read_text() == "old"
    assert _names(tmp_path / "stage") == ["s0"]
