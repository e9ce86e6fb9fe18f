"""score_benchmark end to end: statuses, predictions files, outputs, MLflow, CLI, comparison, and our model."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from evaluation.__main__ import main
from evaluation.config import EvalConfig
from evaluation.report import (
    REFERENCE,
    comparison_from_mlflow,
    comparison_table,
    load_reports,
    plot_comparison,
)
from evaluation.run import score_benchmark

FIXTURES = Path(__file__).parent / "fixtures"
CV_PREDS = {
    "2D-0": "(B)",
    "2D-1": "The answer is A.",
    "2D-2": "(A) above",
    "2D-3": "right",
    "3D-4": "B",
    "3D-5": "(B)",
}


def _preds(path: Path, preds: dict) -> Path:
    path.write_text("".join(json.dumps({"id": k, "prediction": v}) + "\n" for k, v in preds.items()))
    return path


def test_unconfigured_and_broken_inputs_report_cleanly(tmp_path):
    assert score_benchmark(tmp_path, "pope", None, EvalConfig()).status == "not configured"
    no_source = score_benchmark(tmp_path, "pope", None, EvalConfig(data={"pope": str(FIXTURES / "pope")}))
    assert no_source.status == "not configured" and "checkpoint" in no_source.message
    missing = score_benchmark(tmp_path, "pope", None, EvalConfig(data={"pope": str(tmp_path / "nope")}))
    assert missing.status == "failed" and "not found" in missing.message
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "prediction": "yes"}\n{"oops": 1}\n')
    broken = score_benchmark(
        tmp_path, "pope", None, EvalConfig(data={"pope": str(FIXTURES / "pope")}, predictions={"pope": bad})
    )
    assert broken.status == "failed" and "bad.jsonl:2" in broken.message
    offline = score_benchmark(
        tmp_path, "pope", None, EvalConfig(data={"pope": "hispatial-test/no-such-dataset"})
    )
    assert offline.status == "failed" and "neither a local path nor downloadable" in offline.message
    with pytest.raises(ValueError, match="unknown benchmark"):
        score_benchmark(tmp_path, "imagenet", None, EvalConfig())


def test_predictions_file_outputs_and_mlflow(tmp_path):
    preds = _preds(tmp_path / "cv.jsonl", {k: v for k, v in CV_PREDS.items() if k != "3D-5"})  # one missing
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = EvalConfig(
        data={"cv_bench": str(FIXTURES / "cv_bench")},
        predictions={"cv_bench": preds},
        mlflow_tracking_uri=uri,
        run_name="cv-test",
    )
    report = score_benchmark(tmp_path, "cv_bench", None, config)
    assert report.status == "ok" and report.num_items == 6  # the missing item stays in the denominator
    assert report.metrics["accuracy"] == pytest.approx(100 / 3)
    assert report.metrics["lenient/accuracy"] == pytest.approx(50.0)  # "right" read as the option text
    assert report.failure_reasons == {"no prediction": 1}
    frame = pd.read_parquet(tmp_path / "benchmark_scores" / "cv_bench" / "predictions.parquet")
    assert frame.set_index("item_id").loc["3D-5", "reason"] == "no prediction"
    saved = json.loads((tmp_path / "benchmark_scores" / "cv_bench" / "report.json").read_text())
    assert saved["metrics"]["accuracy"] == pytest.approx(100 / 3)
    assert saved["output_dir"] == str(
        tmp_path / "benchmark_scores" / "cv_bench"
    )  # not the temp dir it was built in
    meta = report.metadata()
    assert meta["score"] == pytest.approx(100 / 3, abs=0.01) and meta["status"] == "ok"
    assert meta["per_category"]["3D Distance"] == 0.0 and meta["lenient_score"] == 50.0
    assert frame.set_index("item_id").loc["2D-3", "lenient_correct"]  # both verdicts per item
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(report.mlflow_run_id)
    assert run.data.metrics["cv_bench/accuracy"] == pytest.approx(100 / 3)
    assert run.data.metrics["cv_bench/lenient/accuracy"] == pytest.approx(50.0)  # MLflow carries both sets
    assert run.data.tags["benchmark"] == "cv_bench"
    artifacts = [
        a.path
        for a in mlflow.MlflowClient(tracking_uri=uri).list_artifacts(
            report.mlflow_run_id, "benchmark_scores/cv_bench"
        )
    ]
    assert "benchmark_scores/cv_bench/predictions.parquet" in artifacts
    table = comparison_from_mlflow(uri, config.mlflow_experiment)
    assert table.loc["cv-test", "cv_bench/cv_bench_3d"] == pytest.approx(0.0)  # 3D-4 wrong, 3D-5 missing
    assert table.loc["paper: PaliGemma2-3B", "cv_bench/cv_bench_3d"] == 42.17


def test_cli_and_comparison_with_paper_rows(tmp_path, capsys):
    preds = _preds(tmp_path / "cv.jsonl", CV_PREDS)
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
    assert json.loads(capsys.readouterr().out)["score"] == 50.0
    reports = load_reports(tmp_path / "benchmark_scores")
    table = comparison_table({"my-run": reports})
    assert table.loc["my-run", "cv_bench/cv_bench_3d"] == pytest.approx(50.0)
    assert (
        table.loc["paper: HiSpatial-3B", "cv_bench/cv_bench_3d"]
        == REFERENCE["cv_bench"]["cv_bench_3d"]["HiSpatial-3B"]
    )
    assert "spatialrgpt/quantitative_avg" not in table.columns  # only benchmarks that were run
    png = plot_comparison(table, tmp_path / "cmp.png")
    assert png.stat().st_size > 1000
    assert main(["compare", "--out", str(tmp_path / "c.png"), f"run={tmp_path / 'benchmark_scores'}"]) == 0
    assert (tmp_path / "c.csv").exists()


def test_paper_reference_rows_match_table_text():
    assert REFERENCE["custom"]["L1"]["HiSpatial-3B"] == 92.18
    assert REFERENCE["spatialrgpt"]["quantitative_avg"]["HiSpatial-3B"] == 79.28
    assert REFERENCE["qspatial"]["accuracy"]["HiSpatial-3B-RGB"] == 76.01
    assert REFERENCE["pope"]["f1"]["HiSpatial-3B"] == 87.97


def test_export_items_round_trip(tmp_path):
    out = tmp_path / "items.jsonl"
    assert (
        main(["items", "--benchmark", "3dsrbench", "--data", str(FIXTURES / "3dsrbench"), "--out", str(out)])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and rows[0]["options"] == ["yes", "no"] and rows[0]["image_png_b64"]
    # an external system answers every exported prompt with "A": scored like any predictions file
    preds = _preds(tmp_path / "p.jsonl", {r["id"]: "A" for r in rows})
    report = score_benchmark(
        tmp_path,
        "3dsrbench",
        None,
        EvalConfig(data={"3dsrbench": str(FIXTURES / "3dsrbench")}, predictions={"3dsrbench": preds}),
    )
    assert report.metrics["vanilla/accuracy"] == 50.0 and report.metrics["flip+circular/accuracy"] == 0.0


def test_llm_judge_from_environment_with_response_cache(tmp_path, monkeypatch):
    from tests.openai_server import json_reply, serve

    preds = _preds(tmp_path / "s.jsonl", {f"srgpt-{i}": "Yes" for i in range(7)})
    config = EvalConfig(
        data={"spatialrgpt": str(FIXTURES / "spatialrgpt")}, predictions={"spatialrgpt": preds}
    )
    with serve(lambda request: json_reply({"correct": 1, "extracted_answer": "yes"})) as server:
        monkeypatch.setenv("HISPATIAL_JUDGE_BASE_URL", server.base_url)
        monkeypatch.setenv("HISPATIAL_JUDGE_MODEL", "gpt-4.1")
        monkeypatch.delenv("HISPATIAL_JUDGE_CACHE_DIR", raising=False)
        report = score_benchmark(tmp_path, "spatialrgpt", None, config)
        # the official path sends the quantitative items with the authors' prompts; without the authors'
        # qualitative example files the two qualitative items go to our judge, labelled "rule fallback"
        assert report.judge_mode == "official prompts, llm" and report.judge_model == "gpt-4.1"
        assert len(server.requests) == 7
        assert "You need to convert the distance of the correct answer" in server.requests[0].text
        score_benchmark(tmp_path, "spatialrgpt", None, config)
        assert len(server.requests) == 7  # second run answered from the cache
    frame = pd.read_parquet(report.predictions_path).set_index("item_id")
    assert (
        frame.loc["srgpt-5", "judge_model"] == "gpt-4.1"
        and '"correct":1' in frame.loc["srgpt-5", "judge_raw"]
    )
    assert frame.loc["srgpt-5", "reason"] == "rule fallback"
    # a reply without the official fields is a failed match, as in the authors' script
    assert report.metrics["Match_fail_count"] == 5 and report.metrics["Quan_overall_acc"] == 0.0
    assert report.metrics["qualitative_avg"] == 100.0 == report.metrics["lenient/qualitative_avg"]
