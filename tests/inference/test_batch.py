"""Batch mode: a benchmark's items exported by `python -m evaluation items` go through `hispatial ask` in batches
and the predictions file it writes is scored by `python -m evaluation score --predictions` unchanged; a folder run
answers every image and records a broken one with its error instead of stopping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.__main__ import main as evaluation_main
from hispatial_dagster.cli import main as hispatial_main

CV_BENCH = Path(__file__).resolve().parents[1] / "evaluation" / "fixtures" / "cv_bench"


def test_a_batch_runs_predictions_file_scores(tiny_checkpoint, tmp_path, capsys):
    items = tmp_path / "items.jsonl"
    assert (
        evaluation_main(["items", "--benchmark", "cv_bench", "--data", str(CV_BENCH), "--out", str(items)])
        == 0
    )
    ids = [json.loads(line)["id"] for line in items.read_text().splitlines()]
    predictions = tmp_path / "predictions.jsonl"
    rc = hispatial_main(
        [
            "ask",
            str(items),
            "--checkpoint",
            str(tiny_checkpoint),
            "--moge",
            "none",
            "--out",
            str(predictions),
            "--batch-size",
            "4",
            "--max-new-tokens",
            "4",
        ]
    )
    assert rc == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert counts == {"predictions": str(predictions), "answered": len(ids), "failed": 0}
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [r["id"] for r in rows] == ids and all(isinstance(r["prediction"], str) for r in rows)
    assert {r["kind"] for r in rows} == {"choice"}  # the items' own answer kind

    rc = evaluation_main(
        [
            "score",
            "--benchmark",
            "cv_bench",
            "--data",
            str(CV_BENCH),
            "--predictions",
            str(predictions),
            "--output-dir",
            str(tmp_path / "scores"),
            "--no-judge",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["status"] == "ok" and report["num_items"] == len(ids)
    assert report["predictor"] == "file:predictions.jsonl"


def test_a_folder_run_records_a_broken_image_and_goes_on(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, seed in (("a.png", 0), ("c.jpg", 1)):
        rgb = (np.random.default_rng(seed).random((48, 64, 3)) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / name)
    (folder / "b.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    out = tmp_path / "out.jsonl"
    rc = hispatial_main(
        [
            "ask",
            str(folder),
            "How far is the chair from the camera?",
            "--checkpoint",
            str(tiny_checkpoint),
            "--moge",
            "none",
            "--out",
            str(out),
            "--max-new-tokens",
            "3",
        ]
    )
    assert rc == 0
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(rows) == ["a.png", "b.jpg", "c.jpg"]
    assert rows["b.jpg"]["prediction"] is None and "unreadable image" in rows["b.jpg"]["error"]
    assert rows["a.png"]["kind"] == rows["c.jpg"]["kind"] == "length" and rows["a.png"]["error"] is None
    capsys.readouterr()


def test_cli_prints_one_json_object_and_errors_cleanly(tiny_checkpoint, room_image, capsys):
    rc = hispatial_main(
        [
            "ask",
            str(room_image),
            "Is {p1} closer to the camera than {p2}?",
            "--point",
            "10,10",
            "--point",
            "100,90",
            "--checkpoint",
            str(tiny_checkpoint),
            "--moge",
            "none",
            "--json",
            "--max-new-tokens",
            "3",
        ]
    )
    answer = json.loads(capsys.readouterr().out)
    assert rc == 0 and answer["kind"] == "yes_no" and answer["point_map"] == "none"
    assert [p["loc"] for p in answer["points"]] == ["<loc0085><loc0064>", "<loc0768><loc0640>"]
    rc = hispatial_main(
        [
            "ask",
            str(room_image),
            "Where is {p1}?",
            "--point",
            "500,10",
            "--checkpoint",
            str(tiny_checkpoint),
            "--moge",
            "none",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(
        "hispatial ask: error: point 1 (500, 10) lies outside the 160x120 image"
    )
