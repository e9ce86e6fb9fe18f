"""A scored benchmark's output carries its comparison with the paper's numbers (README: `benchmark_scores` has
"scores per benchmark, per-item predictions, comparison with the paper's numbers")."""

import json
from pathlib import Path

import pandas as pd
import pytest

from evaluation.__main__ import main
from evaluation.report import COMPARISON_ROW, REFERENCE

FIXTURES = Path(__file__).parent / "fixtures"
CV_PREDS = {
    "2D-0": "(B)",
    "2D-1": "The answer is A.",
    "2D-2": "(A) above",
    "2D-3": "right",
    "3D-4": "B",
    "3D-5": "(B)",
}


def test_scored_output_has_the_paper_comparison(tmp_path, capsys):
    preds = tmp_path / "cv.jsonl"
    preds.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in CV_PREDS.items()))
    code = main(
        [
            "score",
            "--benchmark",
            "cv_bench",
            "--predictions",
            str(preds),
            "--data",
            str(FIXTURES / "cv_bench"),
            "--root",
            str(tmp_path),
        ]
    )
    assert code == 0
    out = tmp_path / "benchmark_scores" / "cv_bench"
    report = json.loads((out / "report.json").read_text())

    table = pd.read_csv(out / "comparison.csv", index_col="model")
    assert table.loc[COMPARISON_ROW, "cv_bench/cv_bench_3d"] == pytest.approx(
        report["metrics"]["cv_bench_3d"]
    )
    for model, value in REFERENCE["cv_bench"]["cv_bench_3d"].items():
        assert table.loc[f"paper: {model}", "cv_bench/cv_bench_3d"] == value
    assert not any(c.startswith("spatialrgpt/") for c in table.columns)  # only this benchmark's metrics

    markdown = (out / "comparison.md").read_text()
    assert markdown.startswith("| model | ")
    assert "| paper: HiSpatial-3B | " in markdown and f"| {COMPARISON_ROW} | " in markdown
    assert f"{REFERENCE['cv_bench']['cv_bench_3d']['HiSpatial-3B']:.2f}" in markdown

    # The one manifest rule: the benchmark's output directory carries `_manifest.json` like every stage's.
    from assets.storage import directory_digest

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["stage"] == "benchmark_scores" and manifest["shard"] == "cv_bench"
    assert manifest["num_in"] == manifest["num_out"] == report["num_items"] and manifest["num_rejected"] == 0
    assert manifest["digest"] == directory_digest(out)
