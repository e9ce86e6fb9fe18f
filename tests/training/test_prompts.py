"""Prompt styles (training/prompts.py): ours, and the official one checked against what the official loader made
of the same pairs (tests/fixtures/official_hispatial/exported_official_draws.json)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from assets.qa.shards import table_to_pairs
from assets.records import QAFormat, Task
from evaluation.items import AnswerKind, EvalItem
from tests.assets.official_shard_data import SHARD, build_export_root
from training.prompts import (
    OFFICIAL_ALPHABETS,
    official_loc_tokens,
    official_point_query,
    pick_format,
    render_question,
    render_training_pair,
    style_for_checkpoint,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "official_hispatial"
_OPTION = re.compile(r"^(\()?([^).]+)\)?\. (.*)$")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    import pyarrow.parquet as pq

    root = build_export_root(tmp_path_factory.mktemp("prompts"))
    return {
        (p.task, p.format): p
        for p in table_to_pairs(pq.read_table(root / "qa_shards" / SHARD / "qa.parquet"))
    }


def _official_draws() -> list[dict]:
    return json.loads((FIXTURES / "exported_official_draws.json").read_text())["first_draws"]


def test_official_true_false_and_free_form_match_the_official_loader(pairs):
    official = {d["prompt"]: d["answer"] for d in _official_draws()}
    tf = pairs[(Task.RELATIONAL_COMPARISON, QAFormat.TRUE_FALSE)]
    size = pairs[(Task.SIZE, QAFormat.FREE_FORM)]
    for pair in (tf, size):
        prompt, answer = render_training_pair(
            pair.question,
            pair.answer,
            pair.format,
            "official",
            np.random.default_rng(0),
            pair.options,
            pair.correct_index,
        )
        assert official[prompt] == answer
    # a true/false question without "Yes or No" in it gains the instruction about half the time
    gained = [
        render_training_pair(
            "Is the cup left of the plate?",
            "False",
            QAFormat.TRUE_FALSE,
            "official",
            np.random.default_rng(s),
        )[0].endswith(" Answer with Yes or No.")
        for s in range(400)
    ]
    assert 0.4 < np.mean(gained) < 0.6


def test_official_multiple_choice_is_relabelled_as_the_official_loader_does(pairs):
    pair = pairs[(Task.RELATIVE_DISTANCE, QAFormat.MULTIPLE_CHOICE)]
    theirs = next(d for d in _official_draws() if "\n" in d["prompt"])
    their_lines = theirs["prompt"].split("\n")
    styles = set()
    for seed in range(60):
        prompt, answer = render_training_pair(
            pair.question,
            pair.answer,
            pair.format,
            "official",
            np.random.default_rng(seed),
            pair.options,
            pair.correct_index,
        )
        lines = prompt.split("\n")
        assert lines[0] == their_lines[0]  # the bare question, as the official loader shows it
        parsed = [_OPTION.match(line).groups() for line in lines[1:]]
        assert sorted(text for _, _, text in parsed) == sorted(
            _OPTION.match(x).group(3) for x in their_lines[1:]
        )
        labels = [label for _, label, _ in parsed]
        assert any(tuple(labels) == alphabet[: len(labels)] for alphabet in OFFICIAL_ALPHABETS)
        paren = parsed[0][0] is not None
        correct = next(label for _, label, text in parsed if text == "the table")
        assert answer == (f"({correct})" if paren else correct)
        styles.add((labels[0], paren))
    assert len(styles) >= 6  # alphabets and both label formats are drawn


def test_official_format_mix_is_03_04_03():
    rng = np.random.default_rng(3)
    counts = Counter(pick_format(list(QAFormat), "official", rng) for _ in range(20_000))
    assert counts[QAFormat.FREE_FORM] / 20_000 == pytest.approx(0.3, abs=0.015)
    assert counts[QAFormat.MULTIPLE_CHOICE] / 20_000 == pytest.approx(0.4, abs=0.015)
    assert pick_format([QAFormat.TRUE_FALSE], "official", rng) == QAFormat.TRUE_FALSE


def test_official_point_query_reads_the_model_input_point_map():
    point_map = np.zeros((4, 56, 56), np.float32)
    point_map[:3, 10, 33] = [0.614, -0.2, 1.176]
    point_map[3, 10, 33] = 1
    prompt, answer, pixel = official_point_query(point_map, np.random.default_rng(0))
    assert pixel == (10, 33)
    assert (
        prompt == "what is the xyz of the pixel in <loc0183><loc0603><loc0183><loc0603>"
    )  # round(), not floor()
    assert answer == "0.61m -0.20m 1.18m"
    assert official_loc_tokens(10, 33, 56, 56) in prompt
    assert official_point_query(np.zeros((4, 8, 8), np.float32), np.random.default_rng(0)) is None
    # the fixture's official L0 draw has the same shape of question and answer
    l0 = next(
        d
        for d in json.loads((FIXTURES / "exported_official_draws.json").read_text())["first_draws"]
        if d["qa_type"] == "pixel_xyz"
    )
    assert re.fullmatch(r"what is the xyz of the pixel in (<loc\d{4}>){4}", l0["prompt"])
    assert re.fullmatch(r"-?\d+\.\d\dm -?\d+\.\d\dm -?\d+\.\d\dm", l0["answer"])


def test_eval_prompts_per_style():
    options = ["the chair", "the table"]
    assert render_question("Which is closer?", "official", options, "multiple_choice") == (
        "Which is closer?\nA. the chair\nB. the table"
    )
    listed = "Which is closer?\n(a) the chair\n(b) the table"
    assert render_question(listed, "official", ["(a) the chair", "(b) the table"], "multiple_choice") == (
        "Which is closer?\nA. the chair\nB. the table"
    )
    assert render_question("Which is closer?", "hispatial", options, "multiple_choice") == (
        "Which is closer?\nA. the chair\nB. the table"
    )
    assert render_question("True or False: it fits.", "official") == "Yes or No: it fits."
    with pytest.raises(ValueError, match="unknown prompt style"):
        render_question("x", "llava")  # type: ignore[arg-type]


def test_the_official_release_is_evaluated_in_its_own_style(tmp_path):
    """An official-layout directory (weights.pt + config.json + processor) is recognised, and the predictor asks it
    in the official style with the official preprocessing; our own checkpoints keep theirs."""
    from evaluation.predictors import ModelPredictor
    from training.checkpoints import export_official
    from training.config import tiny_train_config
    from training.model import build_random_model
    from training.tokenizer import build_processor

    processor = build_processor(56)
    tok = processor.tokenizer
    model = build_random_model(
        tiny_train_config().model, len(tok), tok.convert_tokens_to_ids("<image>")
    ).eval()
    release = export_official(model, tmp_path / "release")
    processor.save_pretrained(release)
    predictor = ModelPredictor(release, batch_size=2, max_new_tokens=2)
    assert predictor.prompt_style == "official"
    assert (
        predictor.train_config.data.rgb_resize == "cv2-bilinear"
        and predictor.train_config.model.image_size == 56
    )
    item = EvalItem(
        item_id="q1",
        benchmark="custom",
        prompt="Which is closer? Answer with the letter.",
        kind=AnswerKind.CHOICE,
        answer="A",
        options=["the chair", "the table"],
        labels=["A", "B"],
        correct_index=0,
        question="Which is closer?",
        image_bytes=_jpeg(),
    )
    assert predictor.prompt(item) == "Which is closer?\nA. the chair\nB. the table"
    assert len(predictor.predict([item])) == 1
    assert style_for_checkpoint(tiny_train_config(), official_release=False) == "hispatial"


def _jpeg() -> bytes:
    from assets.storage import encode_jpeg

    return encode_jpeg(np.full((40, 60, 3), 120, np.uint8))
