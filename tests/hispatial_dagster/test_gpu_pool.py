"""The `gpu` pool limit persists until changed (deploy/README.md: "Change it at any time with
`dagster instance concurrency set gpu 2`"): opening the instance again must not reset it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hispatial_dagster.instance import GPU_POOL, open_instance


def _slots(data_root: Path) -> int:
    instance = open_instance(data_root)
    try:
        return instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count
    finally:
        instance.dispose()


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("HISPATIAL_GPU_SLOTS", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path


def test_a_new_instance_gets_one_gpu_slot(data_root) -> None:
    assert _slots(data_root) == 1


def test_a_limit_set_with_the_dagster_cli_survives_reopening(data_root) -> None:
    _slots(data_root)  # creates the instance
    dagster = Path(sys.executable).with_name("dagster")
    subprocess.run(
        [str(dagster), "instance", "concurrency", "set", GPU_POOL, "2"],
        env={**os.environ, "DAGSTER_HOME": os.environ["DAGSTER_HOME"]},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert _slots(data_root) == 2
    assert _slots(data_root) == 2  # and again: nothing resets it


def test_an_explicit_env_value_still_wins(data_root, monkeypatch) -> None:
    _slots(data_root)
    monkeypatch.setenv("HISPATIAL_GPU_SLOTS", "3")
    assert _slots(data_root) == 3
    monkeypatch.delenv("HISPATIAL_GPU_SLOTS")
    assert _slots(data_root) == 3  # persists once the variable is gone


def test_a_bad_env_value_is_a_clear_error(data_root, monkeypatch) -> None:
    monkeypatch.setenv("HISPATIAL_GPU_SLOTS", "two")
    with pytest.raises(ValueError, match="HISPATIAL_GPU_SLOTS must be a whole number"):
        _slots(data_root)
