"""Shard specs are validated when they arrive (issue 19, finding 6): by the inbox sensor and by `hispatial
register`. A bad spec is reported once, names its file and field, and creates no partition and no run."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from hispatial_dagster import cli
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.resources import DataRoot, SourceInbox
from hispatial_dagster.sensors import shard_inbox_sensor
from hispatial_dagster.shards import MAX_SCENES, ShardInbox, ShardSpec, ShardSpecError, parse_spec


def _tick(instance: dg.DagsterInstance, root: Path, cursor: str | None, capsys):
    """One sensor evaluation; returns its result, the new cursor and the warnings it logged (Dagster's sensor
    logger writes them to stderr here, to the tick's log under the daemon)."""
    capsys.readouterr()
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"data_root": DataRoot(path=str(root)), "source_inbox": SourceInbox(url="")},
    )
    result = shard_inbox_sensor(context)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "invalid shard spec" in line]
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        return result, result.cursor, warnings
    return result, context.cursor, warnings


BAD_SPECS = {
    "unknown-kind.json": ('{"kind": "nonsense", "path": "%(raw)s"}', "kind"),
    "missing-path.json": ('{"kind": "images", "path": "%(root)s/nowhere"}', "path"),
    "no-path.json": ('{"kind": "images"}', "path"),
    "huge.json": ('{"kind": "synthetic", "num_scenes": 1e12}', "num_scenes"),
    "huge-int.json": ('{"kind": "synthetic", "num_scenes": 1000000000000}', "num_scenes"),
    "string-seed.json": ('{"kind": "synthetic", "seed": "seven"}', "seed"),
    "string-count.json": ('{"kind": "synthetic", "num_scenes": "50"}', "num_scenes"),
    "no-annotations.json": ('{"kind": "coco", "path": "%(raw)s"}', "options.annotation_file"),
    "list.json": ("[1, 2]", "JSON object"),
    "Upper.JSON": ('{"kind": "synthetic"}', "lower-case"),
}


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_sensor_reports_each_bad_spec_once_and_creates_nothing(tmp_path: Path, instance, capsys) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jpg").write_bytes(b"x")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name, (text, _) in BAD_SPECS.items():
        (inbox / name).write_text(text % {"raw": raw, "root": tmp_path})
    (inbox / "good.json").write_text('{"kind": "synthetic", "num_scenes": 3}')

    result, cursor, warnings = _tick(instance, tmp_path, None, capsys)
    assert [r.partition_key for r in result.run_requests] == ["good"]
    assert instance.get_dynamic_partitions(SOURCE_SHARDS) == ["good"]
    for name, (_, field) in BAD_SPECS.items():
        [said] = [w for w in warnings if f"/{name}:" in w]  # once, naming the file
        assert field in said, said

    # The next tick, with the directory an invalid spec points at changing, neither reports nor requests again.
    (raw / "b.jpg").write_bytes(b"y")
    result, cursor, warnings = _tick(instance, tmp_path, cursor, capsys)
    assert isinstance(result, dg.SkipReason) and warnings == []
    assert "10 invalid" in result.skip_message and "unknown-kind.json" in result.skip_message
    assert instance.get_dynamic_partitions(SOURCE_SHARDS) == ["good"]

    # An edited, still invalid spec is reported again; a fixed one runs.
    (inbox / "huge.json").write_text('{"kind": "synthetic", "num_scenes": 0}')
    (inbox / "missing-path.json").write_text(json.dumps({"kind": "images", "path": str(raw)}))
    result, cursor, warnings = _tick(instance, tmp_path, cursor, capsys)
    assert [r.partition_key for r in result.run_requests] == ["missing-path"]
    assert len(warnings) == 1 and "huge.json" in warnings[0] and "num_scenes" in warnings[0]


def test_spec_errors_name_the_field() -> None:
    with pytest.raises(
        ShardSpecError, match=r"^inbox/x.json: num_scenes: Input should be less than or equal"
    ):
        parse_spec(json.dumps({"kind": "synthetic", "num_scenes": MAX_SCENES + 1}), origin="inbox/x.json")
    with pytest.raises(ShardSpecError, match=r"kind: Input should be 'synthetic', 'images'"):
        parse_spec('{"kind": "nonsense"}')
    assert parse_spec('{"kind": "synthetic", "num_scenes": 5}') == ShardSpec(kind="synthetic", num_scenes=5)


@pytest.fixture()
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("HISPATIAL_DATA_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    monkeypatch.delenv("HISPATIAL_INBOX", raising=False)
    return root


def _partitions(root: Path) -> list[str]:
    from hispatial_dagster.instance import open_instance

    return open_instance(root).get_dynamic_partitions(SOURCE_SHARDS)


def test_register_validates_and_needs_replace_to_redefine(data_root: Path, capsys) -> None:
    assert cli.main(["register", "s1", "--kind", "images", "--path", str(data_root / "nowhere")]) == 2
    assert "path:" in capsys.readouterr().out and _partitions(data_root) == []
    assert cli.main(["register", "s1", "--num-scenes", "1000000000000"]) == 2
    assert "num_scenes: Input should be less than or equal to" in capsys.readouterr().out
    assert _partitions(data_root) == [] and not (data_root / "inbox" / "s1.json").exists()

    assert cli.main(["register", "s1", "--num-scenes", "3"]) == 0
    assert cli.main(["register", "s1", "--num-scenes", "3"]) == 0  # the same spec again is fine
    capsys.readouterr()
    assert cli.main(["register", "s1", "--num-scenes", "4"]) == 2
    assert "--replace" in capsys.readouterr().out
    assert ShardInbox(str(data_root / "inbox")).read("s1").num_scenes == 3
    assert cli.main(["register", "s1", "--num-scenes", "4", "--replace"]) == 0
    assert ShardInbox(str(data_root / "inbox")).read("s1").num_scenes == 4
    assert _partitions(data_root) == ["s1"]


def test_stage_adds_no_partition_for_a_shard_without_a_usable_spec(data_root: Path, capsys) -> None:
    assert cli.main(["stage", "source_images", "--shard", "nospec"]) == 2
    assert "no spec for shard 'nospec'" in capsys.readouterr().out
    (data_root / "inbox").mkdir(parents=True)
    (data_root / "inbox" / "bad.json").write_text('{"kind": "synthetic", "num_scenes": 1e12}')
    assert cli.main(["stage", "source_images", "--shard", "bad"]) == 2
    assert "bad.json: num_scenes: Input should be a valid integer" in capsys.readouterr().out
    assert _partitions(data_root) == []
