"""Our model behind the Predictor protocol: a tiny random checkpoint of the real class, scored on the custom
benchmark with ground-truth point maps; a missing image is a wrong item with its reason."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.config import EvalConfig
from evaluation.predictors import ModelPredictor, PredictionsFile
from evaluation.run import score_benchmark
from tests.evaluation.test_custom import data_root  # noqa: F401 - fixture reuse


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    from training.checkpoints import save_checkpoint
    from training.config import tiny_train_config
    from training.model import build_random_model
    from training.tokenizer import build_processor

    processor = build_processor(56)
    tok = processor.tokenizer
    config = tiny_train_config()
    model = build_random_model(config.model, len(tok), tok.convert_tokens_to_ids("<image>")).eval()
    return save_checkpoint(tmp_path / "ckpt", model, processor, config)


def test_model_predictor_scores_custom_benchmark(data_root, tiny_checkpoint):  # noqa: F811
    (data_root / "source_images" / "heldout-000" / "images" / "heldout-000-s0.jpg").unlink()  # no image
    config = EvalConfig(heldout_shards=["heldout-000"], batch_size=2, max_new_tokens=4, use_judge=False)
    report = score_benchmark(data_root, "custom", tiny_checkpoint, config)
    assert report.status == "ok" and report.num_items == 5
    frame = pd.read_parquet(report.predictions_path).set_index("item_id")
    # every item is still in the denominator, wrong with the reason, and the model was never asked
    assert (frame["reason"] == "missing image").sum() == 5 and report.score == 0.0
    assert report.metrics["point_maps/ground_truth"] == 0.0


def test_model_predictor_uses_ground_truth_point_maps(data_root, tiny_checkpoint):  # noqa: F811
    config = EvalConfig(
        heldout_shards=["heldout-000"], batch_size=5, max_new_tokens=3, use_judge=False, limit=3
    )
    report = score_benchmark(data_root, "custom", tiny_checkpoint, config)
    assert report.status == "ok" and report.num_items == 3
    assert report.metrics["point_maps/ground_truth"] == 3.0 and report.metrics["point_maps/missing"] == 0.0
    frame = pd.read_parquet(report.predictions_path)
    assert frame["prediction"].notna().all()


def test_a_corrupt_image_costs_one_item(data_root, tiny_checkpoint):  # noqa: F811
    from assets.storage import encode_jpeg

    # a second held-out scene whose image file is garbage; its items fail alone, the first scene's are answered
    shard = data_root / "object_references" / "heldout-000"
    scene = json.loads((shard / "scenes.jsonl").read_text().splitlines()[0])
    scene.update(scene_id="broken", image_file="source_images/heldout-000/images/broken.jpg")
    (shard / "scenes.jsonl").write_text((shard / "scenes.jsonl").read_text() + json.dumps(scene) + "\n")
    (data_root / scene["image_file"]).write_bytes(encode_jpeg(np.zeros((4, 4, 3), np.uint8))[:20])
    qa = pd.read_parquet(data_root / "qa_shards" / "heldout-000" / "qa.parquet")
    extra = qa[qa.qa_id == "heldout-000-l1"].assign(qa_id="broken-l1", scene_id="broken")
    pd.concat([qa, extra]).to_parquet(data_root / "qa_shards" / "heldout-000" / "qa.parquet", index=False)

    config = EvalConfig(heldout_shards=["heldout-000"], batch_size=8, max_new_tokens=2, use_judge=False)
    report = score_benchmark(data_root, "custom", tiny_checkpoint, config)
    frame = pd.read_parquet(report.predictions_path).set_index("item_id")
    assert report.num_items == 6
    assert frame.loc["broken-l1", "reason"].startswith("inference failed: unreadable image")
    assert frame.drop("broken-l1")["prediction"].notna().all()


def test_model_predictor_batches_like_single_items(data_root, tiny_checkpoint):  # noqa: F811
    from evaluation.custom import build_custom_benchmark

    items, _ = build_custom_benchmark(data_root, EvalConfig(heldout_shards=["heldout-000"]))
    predictor = ModelPredictor(tiny_checkpoint, batch_size=5, max_new_tokens=3)
    batched = predictor.predict(items)
    single = ModelPredictor(tiny_checkpoint, batch_size=1, max_new_tokens=3).predict(items)
    assert len(batched) == 5 and batched == single  # greedy + left padding: batch size changes nothing


def test_predictions_file_reads_ids(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"id": 7, "prediction": None}) + "\n\n" + json.dumps({"id": "x", "prediction": "B"})
    )
    pf = PredictionsFile(path)
    assert pf.predictions == {"7": "", "x": "B"}


class ConstantDepthEstimator:
    """Stand-in for the external MoGe-2 network (assets.point_maps.PointMapEstimator): a flat wall 2 m away."""

    def __init__(self) -> None:
        self.calls = 0

    def estimate(self, rgb):
        from assets.geometry import depth_to_points
        from assets.point_maps import PointMapEstimate
        from assets.records import Intrinsics

        self.calls += 1
        h, w = rgb.shape[:2]
        intr = Intrinsics(fx=w, fy=w, cx=w / 2, cy=h / 2, width=w, height=h)
        points = depth_to_points(np.full((h, w), 2.0), intr).astype(np.float32)
        return PointMapEstimate(points, np.ones((h, w), bool), intr)


def test_benchmark_without_depth_uses_the_estimator(tiny_checkpoint, tmp_path):
    estimator = ConstantDepthEstimator()
    config = EvalConfig(
        data={"cv_bench": str(Path(__file__).parent / "fixtures" / "cv_bench")},
        max_new_tokens=2,
        output_dir=tmp_path / "scores",
    )
    report = score_benchmark(tmp_path, "cv_bench", tiny_checkpoint, config, estimator=estimator)
    assert report.status == "ok" and report.num_items == 6
    assert estimator.calls == 6 and report.metrics["point_maps/estimated"] == 6.0
    assert (tmp_path / "scores" / "cv_bench" / "predictions.parquet").exists()
