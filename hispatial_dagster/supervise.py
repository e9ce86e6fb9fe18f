"""Run a tree of processes (`dagster dev`: webserver, daemon, code servers) so that Ctrl-C or SIGTERM ends all of
it within seconds.

`dagster dev` started in the caller's process group would get the terminal's SIGINT together with us, but a
SIGTERM sent to us alone (a service manager, `kill`, a CI timeout) would leave its children running; and
`dagster dev` itself takes about 20 s to act on SIGTERM. So the tree runs in its own session, and we end it: SIGINT
first (its own graceful shutdown), then SIGTERM, then SIGKILL, each to every process of the tree that is still
alive, children that left the group included.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Mapping, Sequence

import psutil

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_tree(pid: int, grace_s: float = 3.0, term_s: float = 2.0) -> None:
    """End the process `pid` and all its descendants: SIGINT, then SIGTERM after `grace_s`, then SIGKILL."""
    known = {p.pid: p for p in _tree(pid)}
    for signum, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, term_s), (signal.SIGKILL, 5.0)):
        known.update({p.pid: p for p in _tree(pid)})  # children started since the last look
        alive = [p for p in known.values() if _running(p)]
        if not alive:
            return
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)
        _, still = psutil.wait_procs(alive, timeout=wait_s)
        if not still:
            return


def run_supervised(command: Sequence[str], env: Mapping[str, str] | None = None, grace_s: float = 3.0) -> int:
    """Run `command` in its own session until it exits, or until we get SIGINT/SIGTERM/SIGHUP, then end its whole
    tree (`stop_tree`). Returns its exit code, or 128 + the signal that stopped us."""

    def _raise(signum: int, _frame: object) -> None:
        raise _Stop(signum)

    previous = {s: signal.signal(s, _raise) for s in STOP_SIGNALS}
    proc = None
    try:
        proc = subprocess.Popen(
            list(command), env=dict(env) if env is not None else None, start_new_session=True
        )
        return proc.wait()
    except _Stop as stop:
        if proc is not None:
            stop_tree(proc.pid, grace_s)
            proc.wait()
        return 128 + stop.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if proc is not None and proc.poll() is None:  # an exception of another kind: leave nothing behind
            stop_tree(proc.pid, grace_s)
            proc.wait()
