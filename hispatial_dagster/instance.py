"""The persistent local Dagster instance the CLI, DVC stages and `dagster dev` share.

DAGSTER_HOME defaults to `<data root>/.dagster`, with SQLite storage under it, so runs launched by `hispatial demo`
appear in `dagster dev` afterwards. The `gpu` concurrency pool is limited to one slot by default
(HISPATIAL_GPU_SLOTS), so GPU stages of concurrent runs queue instead of fighting over one device.
"""

from __future__ import annotations

import fcntl
import os
import socket
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
    return orphaned
