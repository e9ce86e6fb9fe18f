"""The persistent local Dagster instance the CLI, DVC stages and `dagster dev` share.

DAGSTER_HOME defaults to `<data root>/.dagster`, with SQLite storage under it, so runs launched by `hispatial demo`
appear in `dagster dev` afterwards. The `gpu` concurrency pool is limited to one slot by default
(HISPATIAL_GPU_SLOTS), so GPU stages of concurrent runs queue instead of fighting over one device. Slots of runs
that died are freed here without a daemon (fail_orphaned_runs, free_slots_of_ended_runs), and a CLI run waits for
a slot in a loop that says whom it waits for and stops on Ctrl-C (wait_for_slot, watch_slot_wait).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

DAGSTER_YAML = "dagster.yaml"
GPU_POOL = "gpu"


def dagster_home(data_root: Path) -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or Path(data_root) / ".dagster").expanduser().resolve()


def instance_config(home: Path) -> dict:
    return {
        "storage": {"sqlite": {"base_dir": str(home / "storage")}},
        # Free op-concurrency (gpu pool) slots held by runs that ended without releasing them, and retry a
        # failed daemon-launched run once from the failed step.
        "run_monitoring": {"enabled": True, "free_slots_after_run_end_seconds": 60},
        "run_retries": {"enabled": True, "max_retries": 1},
        "concurrency": {
            "runs": {"max_concurrent_runs": int(os.environ.get("HISPATIAL_MAX_CONCURRENT_RUNS", "2"))},
            "pools": {"granularity": "op"},
        },
        "telemetry": {"enabled": False},
    }


def ensure_dagster_home(data_root: Path) -> Path:
    """Create DAGSTER_HOME with our dagster.yaml if it has none (an existing file is the user's and is kept)."""
    home = dagster_home(data_root)
    home.mkdir(parents=True, exist_ok=True)
    config_path = home / DAGSTER_YAML
    if not config_path.exists():
        tmp = config_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(instance_config(home), sort_keys=False))
        os.replace(tmp, config_path)
    return home


def open_instance(
    data_root: Path,
):  # -> dagster.DagsterInstance (import kept local: the CLI's --help stays fast)
    """The persistent instance at DAGSTER_HOME, created on first use, with the gpu pool limited."""
    import dagster as dg

    home = ensure_dagster_home(data_root)
    os.environ["DAGSTER_HOME"] = str(home)
    # Two CLI processes opening a brand-new instance at once race on creating its SQLite schemas ("UNIQUE
    # constraint failed: alembic_version"); an exclusive lock while opening serialises only that moment.
    with open(home / ".open.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.from_config(str(home))
        # The gpu pool limit persists until changed: it is set when the pool has never been configured (a new
        # instance gets HISPATIAL_GPU_SLOTS, default 1), or when HISPATIAL_GPU_SLOTS is set explicitly. Otherwise
        # a limit set with `dagster instance concurrency set gpu N` or in the UI is left alone.
        storage = instance.event_log_storage
        if storage.supports_global_concurrency_limits:
            explicit = os.environ.get("HISPATIAL_GPU_SLOTS", "").strip()
            if explicit or GPU_POOL not in storage.get_concurrency_keys():
                if explicit and not explicit.isdigit():
                    raise ValueError(f"HISPATIAL_GPU_SLOTS must be a whole number >= 0, got {explicit!r}")
                slots = int(explicit or "1")
                if storage.get_concurrency_info(GPU_POOL).slot_count != slots:
                    storage.set_concurrency_slots(GPU_POOL, slots)
    return instance


def prepare_instance(data_root: Path) -> Path:
    """DAGSTER_HOME with its storage schemas created, for commands that start several Dagster processes at once.

    `dagster dev` (or a webserver and a daemon started together) opens a brand-new SQLite instance from each
    process at the same moment, and their schema migrations race ("Version table 'alembic_version' has more than
    one head present": measured in the daemon integration test). Opening it once here, under `open_instance`'s
    lock, leaves nothing for them to create. Unlike `open_instance` it leaves the environment as it was."""
    home = dagster_home(data_root)
    previous = os.environ.get("DAGSTER_HOME")
    try:
        open_instance(data_root).dispose()
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous
    return home


PID_TAG = "hispatial/pid"
HOST_TAG = "hispatial/host"


def process_tags() -> dict[str, str]:
    """Tags identifying the process that executes an in-process run (see fail_orphaned_runs)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_runs(instance) -> list[str]:  # instance: dagster.DagsterInstance
    """Mark as failed the in-process runs of this host whose process is gone (killed, crashed machine).

    A CLI run killed with SIGKILL never reports its end, so Dagster would show its partition "in progress" (and
    hold its gpu slot) forever; the daemon's run monitoring only watches runs it launched. Runs carry the pid and
    host of their process (process_tags); a dead pid on this host means the run cannot be running."""
    import dagster as dg

    orphaned = []
    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={HOST_TAG: socket.gethostname()},
        )
    )
    for record in records:
        run = record.dagster_run
        pid = run.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            instance.report_run_failed(run, message=f"process {pid} ended without finishing the run")
            orphaned.append(run.run_id)
    free_slots_of_ended_runs(instance)
    return orphaned


def free_slots_of_ended_runs(
    instance, pool: str = GPU_POOL
) -> list[str]:  # instance: dagster.DagsterInstance
    """Free the `pool` slots (claimed or queued) of runs that have ended or no longer exist; their run ids.

    A run killed with SIGKILL never releases its concurrency slot. The daemon's run monitoring frees it
    (`free_slots_after_run_end_seconds`), but the CLI runs without a daemon, so before this every later GPU step
    waited for ever on a run already marked failed. Dagster's own `free_concurrency_slots_for_run` does the
    freeing (what the UI's "free slots" button calls)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    info = storage.get_concurrency_info(pool)
    freed = []
    for run_id in sorted({s.run_id for s in info.claimed_slots} | {s.run_id for s in info.pending_steps}):
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            freed.append(run_id)
    return freed


def describe_slot_holders(instance, pool: str = GPU_POOL) -> str:  # instance: dagster.DagsterInstance
    """Who holds the slots of `pool`, for a waiting step's message: run id, step and process of each."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    holders = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        tags = run.tags if run else {}
        where = f", pid {tags[PID_TAG]} on {tags.get(HOST_TAG, '?')}" if PID_TAG in tags else ""
        holders.append(f"run {slot.run_id} (step {slot.step_key}{where})")
    if not holders:
        return f"no run holds one, but the pool has {info.slot_count} slot(s)"
    return "held by " + ", ".join(holders)


def has_free_slot(instance, pool: str = GPU_POOL) -> bool:  # instance: dagster.DagsterInstance
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return True
    info = storage.get_concurrency_info(pool)
    if info.limit is None and info.slot_count == 0:
        return True  # no limit configured for this pool: Dagster does not gate it
    return info.slot_count - info.active_slot_count - info.assigned_step_count > 0


def wait_for_slot(instance, say, pool: str = GPU_POOL, poll_s: float = 1.0) -> None:
    """Block until `pool` has a free slot, freeing slots of dead runs meanwhile and saying once whom it waits for.

    Runs before Dagster's own claim: Dagster 1.13's in-process executor, while a step waits for a slot, spins
    without sleeping (InstanceConcurrencyContext.interval_to_next_pending_claim_check returns <= 0) inside
    `capture_interrupts`, so it prints nothing, uses a full core and defers Ctrl-C and SIGTERM until the slot is
    free. This loop sleeps and is an ordinary Python loop: Ctrl-C raises KeyboardInterrupt, SIGTERM ends it."""
    said = False
    while True:
        fail_orphaned_runs(instance)
        if has_free_slot(instance, pool):
            return
        if not said:
            say(f"waiting for a {pool} slot: {describe_slot_holders(instance, pool)} (Ctrl-C stops waiting)")
            said = True
        time.sleep(poll_s)


@contextlib.contextmanager
def watch_slot_wait(instance, run_id: str, say, pool: str = GPU_POOL, poll_s: float = 1.0) -> Iterator[None]:
    """While an in-process run executes, watch whether one of its steps waits for a `pool` slot (another run took
    the slot after wait_for_slot returned). Then say whom it waits for, keep freeing slots of dead runs, and on
    Ctrl-C / SIGTERM (which Dagster only records while it waits) cancel the run and exit: a waiting in-process run
    executes no step, so nothing is mid-write."""
    # Not public API: the flag Dagster's SIGINT/SIGTERM handler sets while an execution captures interrupts.
    from dagster._utils.interrupts import check_captured_interrupt

    stop = threading.Event()

    def watch() -> None:
        said = False
        while not stop.wait(poll_s):
            info = instance.event_log_storage.get_concurrency_info(pool)
            if run_id not in info.pending_run_ids:
                continue
            if not said:
                say(
                    f"waiting for a {pool} slot: {describe_slot_holders(instance, pool)} (Ctrl-C stops waiting)"
                )
                said = True
            fail_orphaned_runs(instance)
            if check_captured_interrupt() and run_id in info.pending_run_ids:
                run = instance.get_run_by_id(run_id)
                if run is not None:
                    instance.report_run_canceled(run, message=f"interrupted while waiting for a {pool} slot")
                instance.event_log_storage.free_concurrency_slots_for_run(run_id)
                say(f"interrupted while waiting for a {pool} slot: run {run_id} canceled")
                os._exit(130)

    thread = threading.Thread(target=watch, name=f"watch-{pool}-slot", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
