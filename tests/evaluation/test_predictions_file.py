"""A predictions file that cannot be the answers to this benchmark is refused with a clear error and a non-zero
exit, never scored as a real 0.0 (issue #19, finding 8): an empty file, a file for other items, a repeated id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.__main__ import main
from evaluation.config import EvalConfig
from evaluation.run import score_benchmark

FIXTURES = Path(__file__).parent / "fixtures"
CV_IDS = ["2D-0", "2D-1", "2D-2", "2D-3", "3D-4", "3D-5"]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _score(tmp_path: Path, preds: Path, **kw: list[str]) -> tuple[int, dict]:
    return main(
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
            *kw.get("extra", []),
        ]
    ), {}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no predictions in the file"),
        (
            [{"id": f"q{i}", "prediction": "A"} for i in range(6)],
            "none of its 6 ids is an item of this benchmark",
        ),
        (
            [{"id": i, "prediction": "(A)"} for i in CV_IDS] + [{"id": "3D-99", "prediction": "(A)"}],
            "1 ids are not items of this benchmark",
        ),
        (
            [
                {"id": "2D-0", "prediction": "(B)"},
                {"id": "2D-1", "prediction": "(A)"},
                {"id": "2D-0", "prediction": "(A)"},
            ],
            "duplicate id '2D-0' (first on line 1)",
        ),
    ],
    ids=["empty", "other-benchmark", "unknown-id", "duplicate-id"],
)
def test_bad_predictions_file_is_refused(tmp_path, capsys, rows, message):
    preds = _write(tmp_path / "p.jsonl", rows)
    report = score_benchmark(
        tmp_path,
        "cv_bench",
        None,
        EvalConfig(data={"cv_bench": str(FIXTURES / "cv_bench")}, predictions={"cv_bench": preds}),
    )
    assert report.status == "failed" and message in report.message and report.metrics == {}
    assert not (tmp_path / "benchmark_scores" / "cv_bench").exists()  # nothing published
    code, _ = _score(tmp_path, preds)
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["status"] == "failed" and message in out["message"]


def test_partial_file_and_limit_still_score(tmp_path):
    """Missing items stay in the denominator as "no prediction"; with --limit a full file is not an error."""
    preds = _write(tmp_path / "p.jsonl", [{"id": i, "prediction": "(A)"} for i in CV_IDS])
    limited = score_benchmark(
        tmp_path,
        "cv_bench",
        None,
        EvalConfig(data={"cv_bench": str(FIXTURES / "cv_bench")}, predictions={"cv_bench": preds}, limit=2),
    )
    assert limited.status == "ok" and limited.num_items == 2
    partial = _write(tmp_path / "q.jsonl", [{"id": "2D-1", "prediction": "(A)"}])
    report = score_benchmark(
        tmp_path,
        "cv_bench",
        None,
        EvalConfig(data={"cv_bench": str(FIXTURES / "cv_bench")}, predictions={"cv_bench": partial}),
    )
    assert report.status == "ok" and report.failure_reasons == {"no prediction": 5}
