"""`hispatial` commands, run in-process against a temporary data root and instance."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hispatial_dagster import cli
from hispatial_dagster.status import asset_status


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("HISPATIAL_DATA_ROOT", str(root))  # restored after the test (the CLI sets it too)
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("HISPATIAL_INBOX", raising=False)
    return root


@pytest.mark.parametrize("command", [[], ["demo"], ["register"], ["stage"], ["status"], ["ui"], ["mlflow"]])
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: hispatial" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("hispatial")
    out = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "demo" in out and "stage" in out and "status" in out


def test_register_stage_status_and_staleness(data_root: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["register", "synthetic-000", "--num-scenes", "2", "--seed", "4"]) == 0
    spec = json.loads((data_root / "inbox" / "synthetic-000.json").read_text())
    assert (spec["kind"], spec["num_scenes"], spec["seed"]) == ("synthetic", 2, 4)
    assert cli.main(["stage", "source_images", "--shard", "synthetic-000"]) == 0
    assert cli.main(["stage", "filtered_images", "--shard", "synthetic-000"]) == 0
    assert (data_root / "filtered_images" / "synthetic-000" / "scenes.jsonl").exists()

    from hispatial_dagster.definitions import build_defs
    from hispatial_dagster.instance import open_instance

    def status() -> dict[tuple[str, str], str]:
        rows = asset_status(open_instance(data_root), build_defs())
        return {(r["asset"], r["partition"]): r["status"] for r in rows}

    before = status()
    assert before[("source_images", "synthetic-000")] == "materialized"
    assert before[("filtered_images", "synthetic-000")] == "materialized"
    assert before[("point_maps", "synthetic-000")] == "missing"
    assert before[("qa_dataset", "-")] == "missing"

    # A different spec gives different source data: the filtered shard is now stale.
    assert cli.main(["register", "synthetic-000", "--num-scenes", "3", "--seed", "4", "--replace"]) == 0
    assert cli.main(["stage", "source_images", "--shard", "synthetic-000"]) == 0
    after = status()
    assert after[("source_images", "synthetic-000")] == "materialized"
    assert after[("filtered_images", "synthetic-000")].startswith("stale")

    capsys.readouterr()
    assert cli.main(["status"]) == 0
    assert "filtered_images" in capsys.readouterr().out


def test_stage_needs_a_shard(data_root: Path) -> None:
    assert cli.main(["stage", "point_maps"]) == 2


def test_failed_stage_exits_nonzero(data_root: Path) -> None:
    # No spec in the inbox for this shard: a usage error (exit 2) said before any run starts; nothing is written.
    assert cli.main(["stage", "source_images", "--shard", "synthetic-404"]) == 2
    assert not (data_root / "source_images" / "synthetic-404").exists()


def test_ui_prints_a_local_command(data_root: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["ui", "--print-only", "--port", "3999"]) == 0
    out = capsys.readouterr().out
    assert "dev -h 127.0.0.1 -p 3999 -m hispatial_dagster.definitions" in out
    assert (data_root / ".dagster" / "dagster.yaml").exists()


def test_bulk_staleness_agrees_with_dagsters_resolver(data_root: Path) -> None:
    """Two shards re-imported after their filter ran: one with a new spec (new data: stale), one with the same
    spec (same digest: still fresh). The bulk read and Dagster's per-partition resolver say the same."""
    for shard in ("synthetic-001", "synthetic-002"):
        assert cli.main(["register", shard, "--num-scenes", "2", "--seed", "1"]) == 0
        assert cli.main(["stage", "source_images", "--shard", shard]) == 0
        assert cli.main(["stage", "filtered_images", "--shard", shard]) == 0
    assert cli.main(["register", "synthetic-001", "--num-scenes", "3", "--seed", "1", "--replace"]) == 0
    for shard in ("synthetic-001", "synthetic-002"):
        assert cli.main(["stage", "source_images", "--shard", shard]) == 0

    import dagster as dg

    from hispatial_dagster.definitions import build_defs
    from hispatial_dagster.instance import open_instance

    # an externally reported materialization (no provenance): judged by time against its dependency
    open_instance(data_root).report_runless_asset_event(
        dg.AssetMaterialization(asset_key="point_maps", partition="synthetic-002")
    )

    def status(bulk: bool) -> dict[tuple[str, str], str]:
        rows = asset_status(open_instance(data_root), build_defs(), batched_staleness=bulk)
        return {(r["asset"], r["partition"]): r["status"].split(" ")[0] for r in rows}

    bulk, resolver = status(True), status(False)
    assert bulk == resolver
    assert bulk[("filtered_images", "synthetic-001")] == "stale"
    assert bulk[("filtered_images", "synthetic-002")] == "materialized"
    assert bulk[("point_maps", "synthetic-002")] == "materialized"
