"""Official HiSpatial shards, read and written, against what the official loader itself yields.

Fixtures (tests/fixtures/official_hispatial/, made by make_fixtures_b.py in a scratch environment):
`official_layout.tar` is laid out as the released data is (MoGe-written depth, normalised intrinsics tensor, v3 QA
dict); `exported.tar` is our export of tests/assets/official_shard_data.py; `*_official_yields.json` /
`*_official_arrays.npz` are what microsoft/HiSpatial's `build_vqa_wds_pipeline` yielded for each, and
`exported_official_*` what its `WildSampleTransform` made of our export."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from assets.official import (
    OFFICIAL_QA_TYPE,
    export_official_shard,
    hispatial_shard,
    main,
    read_official_tar,
)
from assets.stage import DataError
from assets.storage import decode_depth_png, load_point_map, load_rgb, read_jsonl, read_scenes
from tests.assets.official_shard_data import SHARD, build_export_root
from training.inputs import prepare_point_map

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official_hispatial"


def _yields(name: str) -> tuple[list[dict], dict[str, np.ndarray]]:
    rows = json.loads((FIXTURES / f"{name}_official_yields.json").read_text())
    with np.load(FIXTURES / f"{name}_official_arrays.npz") as data:
        return rows, dict(data)


def _same_depth(ours: np.ndarray, official: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(official))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(official))
    finite = np.isfinite(official)
    np.testing.assert_allclose(ours[finite], official[finite], rtol=2e-6, atol=0)


def test_official_layout_tar_imports_with_all_its_samples(tmp_path):
    rows, arrays = _yields("official_layout")
    report = hispatial_shard(tmp_path, "hs-000", [FIXTURES / "official_layout.tar"])
    scenes = read_scenes(tmp_path / "source_images/hs-000/scenes.jsonl")
    assert report.num_out == len(scenes) == len(rows) == 3 and not report.rejections
    for i, (scene, row) in enumerate(zip(scenes, rows, strict=True)):
        assert scene.metadata["original_key"] == row["__key__"]
        rgb = load_rgb(tmp_path / scene.image_file)
        assert list(rgb.shape) == row["image_shape"]
        assert (
            hashlib.sha256(rgb.tobytes()).hexdigest() == row["image_sha256"]
        )  # the JPEG is kept byte for byte
        _same_depth(decode_depth_png(tmp_path / scene.depth_file), arrays[f"depth_{i}"])
        k = np.asarray(row["intrinsics"])
        h, w = row["image_shape"][:2]
        assert scene.intrinsics.fx == pytest.approx(k[0, 0] * w) and scene.intrinsics.cy == pytest.approx(
            k[1, 2] * h
        )
        qa = json.loads((tmp_path / str(scene.metadata["qa_file"])).read_text())
        assert qa == row["qa"] and scene.metadata["num_qa"] == 2


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _pt(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_bad_samples_are_rejections_with_reasons_and_the_rest_imports(tmp_path):
    with tarfile.open(FIXTURES / "official_layout.tar") as tar:
        good = {m.name.split("/")[-1]: tar.extractfile(m).read() for m in tar if m.isfile()}
    first = "objects365_v2_00000000"
    members = {f"ok.{ext}": good[f"{first}.{ext}"] for ext in ("jpg", "png", "intrinsics.pt", "pt")}
    members |= {"noqa.jpg": good[f"{first}.jpg"], "noqa.intrinsics.pt": good[f"{first}.intrinsics.pt"]}
    members |= {
        f"corrupt.{e}": b"garbage" if e == "jpg" else good[f"{first}.{e}"]
        for e in ("jpg", "intrinsics.pt", "pt")
    }
    members |= {
        "pixels.jpg": good[f"{first}.jpg"],
        "pixels.intrinsics.pt": _pt(torch.eye(3) * 500),
        "pixels.pt": good[f"{first}.pt"],
    }
    members |= {
        "evil.jpg": good[f"{first}.jpg"],
        "evil.intrinsics.pt": good[f"{first}.intrinsics.pt"],
        "evil.pt": pickle.dumps(_Evil()),
    }
    tar = tmp_path / "mixed.tar"
    tar.write_bytes(_tar(members))
    report = hispatial_shard(tmp_path / "data", "hs-001", [tar])
    assert report.num_out == 1
    reasons = {r.item: r.reason for r in report.rejections}
    assert len(reasons) == 4
    text = " | ".join(reasons.values())
    assert "noqa: missing pt" in text and "corrupt: unreadable image" in text
    assert "intrinsics look like pixels" in text and "evil QA: not loadable with weights_only=True" in text
    rejected = read_jsonl(tmp_path / "data/source_images/hs-001/rejected.jsonl")
    assert len(rejected) == 4


def test_no_tar_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no .tar files"):
        hispatial_shard(tmp_path, "hs-002", [])


def test_our_export_reads_back_as_the_official_loader_read_it(tmp_path):
    """Our exporter today writes what the official loader was run on (pinned by its yields)."""
    root = build_export_root(tmp_path / "data")
    report = export_official_shard(root, SHARD, tmp_path / "out.tar")
    assert (report.samples, report.items, report.pairs) == (2, 4, 5)  # the L0 pair is left to the loader
    rows, arrays = _yields("exported")
    samples = list(read_official_tar(tmp_path / "out.tar"))
    assert [s.key for s in samples] == [r["__key__"] for r in rows]
    for i, (sample, row) in enumerate(zip(samples, rows, strict=True)):
        assert hashlib.sha256(sample.rgb.tobytes()).hexdigest() == row["image_sha256"]
        _same_depth(sample.depth, arrays[f"depth_{i}"])
        np.testing.assert_allclose(sample.intrinsics_normalised, row["intrinsics"], rtol=1e-7)
        assert json.loads(json.dumps(sample.qa)) == row["qa"]
    # and re-exporting gives the same bytes (fixed member order, zeroed times)
    export_official_shard(root, SHARD, tmp_path / "again.tar")
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "out.tar").read_bytes()


def test_official_loader_trains_on_every_exported_task():
    """What the official WildSampleTransform drew from our export: our tasks under qa types it samples, MCQ
    relabelled and true/false turned into Yes/No by it (so we export options unlabelled and True/False)."""
    draws = json.loads((FIXTURES / "exported_official_draws.json").read_text())
    counts = draws["qa_type_counts"]
    assert set(counts) <= set(OFFICIAL_QA_TYPE.values()) | {"pixel_xyz"}
    assert sum(n for t, n in counts.items() if t != "pixel_xyz") > 0.9 * sum(counts.values())
    prompts = {d["prompt"] for d in draws["first_draws"]}
    assert "Yes or No: the chair is left of the table." in prompts


def test_point_map_input_matches_the_official_transform(tmp_path):
    """xyz_values of WildSampleTransform (utils3d unprojection of the decoded depth with the normalised intrinsics,
    INTER_NEAREST to 56 px, clip at 250) against ours from the same stored depth."""
    root = build_export_root(tmp_path / "data")
    scenes = read_scenes(root / "object_references" / SHARD / "scenes.jsonl")
    with np.load(FIXTURES / "exported_official_xyz_values.npz") as data:
        official = [data[f"xyz_values_{i}"] for i in range(len(scenes))]
    for scene, theirs in zip(scenes, official, strict=True):
        points, valid = load_point_map(root / scene.depth_file, scene.intrinsics)
        ours = prepare_point_map(points, valid, 56)
        np.testing.assert_array_equal(ours[3], theirs[3])  # validity
        valid_out = theirs[3] > 0
        np.testing.assert_allclose(ours[:3][:, valid_out], theirs[:3][:, valid_out], rtol=1e-5, atol=1e-6)
        # Where depth is unknown the official *training* transform leaves xyz = 0 (it zeroes the depth first),
        # its inference path (MoGe's inf) gives 250; we give 250 in both. The mask channel says "invalid" alike.
        assert (theirs[:3][:, ~valid_out] == 0).all() and (ours[:3][:, ~valid_out] == 250).all()


def test_export_cli_writes_the_tar(tmp_path, capsys):
    root = build_export_root(tmp_path / "data")
    assert main(["export", "--root", str(root), "--shard", SHARD, "--out", str(tmp_path / "cli.tar")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["samples"] == 2 and (tmp_path / "cli.tar").stat().st_size > 0


def test_export_of_a_missing_shard_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="materialize qa_shards"):
        export_official_shard(tmp_path, "nope", tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()
