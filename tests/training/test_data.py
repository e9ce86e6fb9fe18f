"""Task mixture (Table 7, 1:7 general, level-ablation backfill), prompts, split, and batches."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.records import TASK_LEVEL, DrawBox, Level, QAFormat, Task
from training.config import DataConfig
from training.data import (
    GENERAL,
    Collator,
    TaskMixture,
    build_training_data,
    draw_boxes,
    is_validation_scene,
    load_qa_pairs,
)
from training.inputs import model_inputs
from training.prompts import render_question
from training.tokenizer import build_processor

from .blocks import write_block_root

TABLE7 = DataConfig().task_ratios
L2_L3 = [t for t in Task if TASK_LEVEL[t] in (Level.L2, Level.L3)]


def test_default_ratios_are_table7():
    assert TABLE7[Task.RELATIVE_DIRECTION] == pytest.approx(0.2609)
    assert TABLE7[Task.PROBLEM_SOLVING] == pytest.approx(0.0057)
    assert sum(TABLE7.values()) == pytest.approx(1.0, abs=1e-3)


def test_general_is_one_in_eight_and_tasks_follow_table7():
    mixture = TaskMixture(TABLE7, 1 / 8, ())
    freq = mixture.expected_frequencies()
    assert freq[GENERAL] == pytest.approx(0.125)
    total = sum(TABLE7.values())
    assert freq[Task.SIZE.value] == pytest.approx(0.875 * 0.1156 / total)
    draws = mixture.draw(np.random.default_rng(0), 100_000)
    assert draws.count(GENERAL) / 1e5 == pytest.approx(0.125, abs=0.004)
    assert draws.count(Task.RELATIVE_DIRECTION.value) / 1e5 == pytest.approx(
        0.875 * 0.2609 / total, abs=0.004
    )


def test_level_ablation_backfills_with_general_and_keeps_other_tasks_identical():
    full = TaskMixture(TABLE7, 1 / 8, ())
    ablated = TaskMixture(TABLE7, 1 / 8, (Level.L0, Level.L1))
    a = full.draw(np.random.default_rng(7), 50_000)
    b = ablated.draw(np.random.default_rng(7), 50_000)
    # the same draws, except that L0/L1 draws became general samples
    for x, y in zip(a, b, strict=True):
        if x != GENERAL and TASK_LEVEL[Task(x)] in (Level.L0, Level.L1):
            assert y == GENERAL
        else:
            assert y == x
    for task in L2_L3:
        assert b.count(task.value) == a.count(task.value)
        assert ablated.expected_frequencies()[task.value] == pytest.approx(
            full.expected_frequencies()[task.value]
        )
    excluded = sum(r for t, r in TABLE7.items() if TASK_LEVEL[t] in (Level.L0, Level.L1)) / sum(
        TABLE7.values()
    )
    assert excluded == pytest.approx(0.3658, abs=1e-3)
    assert ablated.expected_frequencies()[GENERAL] == pytest.approx(0.125 + 0.875 * excluded)
    assert b.count(GENERAL) / 50_000 == pytest.approx(0.125 + 0.875 * excluded, abs=0.006)
    assert not any(x in b for x in (Task.POINT_QUERY.value, Task.SIZE.value))


def test_mixture_without_data_for_any_task_fails_clearly():
    with pytest.raises(ValueError, match="no task"):
        TaskMixture(TABLE7, 1 / 8, (), available=set())


def render_prompt(question, options, fmt):
    return render_question(question, "hispatial", options, fmt)


def test_render_prompt_lists_options_only_when_missing():
    assert render_prompt("How many?", ["1", "2"], QAFormat.MULTIPLE_CHOICE) == "How many?\nA. 1\nB. 2"
    written = "How many? Choose one.\n(a) 1 (b) 2"
    assert render_prompt(written, ["1", "2"], QAFormat.MULTIPLE_CHOICE) == written
    assert render_prompt("Q?", ["(a) x", "(b) y"], "multiple_choice") == "Q?\n(a) x\n(b) y"
    assert render_prompt("Is it left?", [], QAFormat.TRUE_FALSE) == "Is it left?"


def test_draw_boxes_outlines_in_the_named_colour():
    rgb = np.zeros((20, 20, 3), np.uint8)
    box = DrawBox(instance_id=1, color="red", box2d={"x0": 2, "y0": 3, "x1": 12, "y1": 15})
    out = draw_boxes(rgb, [box], width=1)
    assert tuple(out[3, 5]) == (255, 0, 0)  # top edge
    assert tuple(out[14, 11]) == (255, 0, 0)  # bottom-right corner pixel (x1, y1 exclusive)
    assert tuple(out[8, 7]) == (0, 0, 0)  # inside untouched
    assert rgb.max() == 0  # input not modified


@pytest.fixture(scope="module")
def block_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    write_block_root(root, num_scenes=12)
    return root


def test_training_data_splits_by_scene_and_batches_answer_only_labels(block_root):
    data = build_training_data(block_root, DataConfig(val_fraction=0.25), 56, "xyz", seed=0)
    stats = data.stats
    assert stats["num_pairs"] == 36 and stats["num_bad_rows"] == 0
    val_scenes = {s for s in (f"blocks-000-{i:04d}" for i in range(12)) if is_validation_scene(s, 0.25)}
    assert 0 < len(val_scenes) < 12
    assert stats["num_train_pairs"] == 3 * (12 - len(val_scenes))
    examples = [e for _, e in zip(range(64), data.train, strict=False)]
    tasks = {e.task for e in examples}
    assert GENERAL in tasks and Task.POINT_QUERY.value in tasks  # general captions and online L0 both appear
    assert all(e.image.shape == (56, 56, 3) and e.point_map.shape == (4, 56, 56) for e in examples)

    processor = build_processor(56)
    collator = Collator(processor, "xyz")
    batch = collator(examples[:4])
    assert model_inputs(batch)["pixel_values"].shape == (4, 7, 56, 56)
    tok = processor.tokenizer
    for i, example in enumerate(examples[:4]):
        answer_ids = tok(example.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        labelled = batch["labels"][i][batch["labels"][i] != -100].tolist()
        assert labelled == answer_ids
    assert model_inputs(Collator(processor, "none")(examples[:2]))["pixel_values"].shape == (2, 3, 56, 56)


def test_bad_parquet_rows_are_skipped_and_reported(block_root, tmp_path):
    path = block_root / "qa_shards" / "blocks-000" / "qa.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[0]["level"] = "L9"
    rows[1]["format"] = "multiple_choice"  # no options: invalid multiple choice
    bad_root = tmp_path / "bad"
    (bad_root / "qa_shards" / "s").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), bad_root / "qa_shards" / "s" / "qa.parquet")
    pairs, problems = load_qa_pairs(bad_root)
    assert len(pairs) == len(rows) - 2
    assert len(problems) == 2 and ":0:" in problems[0] and ":1:" in problems[1]


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_a_shard_changed_after_the_release_stops_training(block_root, tmp_path, damage):
    """The release manifest pins each shard's sha256: a shard truncated or edited after the qa_dataset was built
    must stop training with the shard named, not train silently on fewer (or other) pairs."""
    import shutil

    from assets.qa.dataset import build_qa_dataset
    from assets.stage import DataError

    root = tmp_path / "root"
    shutil.copytree(block_root, root)
    build_qa_dataset(root, ["blocks-000"])
    assert (
        build_training_data(root, DataConfig(val_fraction=0.25), 56, "xyz", seed=0).stats["num_pairs"] == 36
    )
    path = root / "qa_shards" / "blocks-000" / "qa.parquet"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        table = pq.read_table(path)
        pq.write_table(table.slice(1), path)  # a valid parquet with one pair fewer
    with pytest.raises(DataError, match="shard blocks-000 changed since the manifest"):
        build_training_data(root, DataConfig(val_fraction=0.25), 56, "xyz", seed=0)


def test_llava_general_items_get_an_all_invalid_point_map(tmp_path):
    from assets.storage import atomic_write_bytes, encode_jpeg
    from training.data import ExampleFactory, SceneStore, load_llava_items

    atomic_write_bytes(tmp_path / "imgs" / "a.jpg", encode_jpeg(np.full((30, 40, 3), 200, np.uint8)))
    (tmp_path / "llava.json").write_text(
        '[{"image": "imgs/a.jpg", "conversations": ['
        '{"from": "human", "value": "<image>\\nWhat colour is it?"}, {"from": "gpt", "value": "Gray."},'
        '{"from": "human", "value": "Is it bright?"}, {"from": "gpt", "value": "Yes."}]}]'
    )
    items = load_llava_items(tmp_path / "llava.json")
    assert [(i.question, i.answer) for i in items] == [
        ("What colour is it?", "Gray."),
        ("Is it bright?", "Yes."),
    ]
    factory = ExampleFactory(SceneStore(tmp_path, 56), 56, "xyz", general=items)
    example = factory.make(GENERAL, np.random.default_rng(0))
    assert example.image.shape == (56, 56, 3) and example.task == GENERAL
    assert example.point_map[3].max() == 0.0 and example.point_map[:3].min() == 250.0


def test_official_prompt_style_reaches_the_training_stream(block_root):
    """With the official style, online L0 point queries are the official question about the model-input point map
    (answer = that pixel's xyz) and stored pairs get the official rewrites."""
    config = DataConfig(val_fraction=0.25, prompt_style="official")
    data = build_training_data(block_root, config, 56, "xyz", seed=0)
    examples = [e for _, e in zip(range(200), data.train, strict=False)]
    point_queries = [e for e in examples if e.task == Task.POINT_QUERY.value]
    assert point_queries
    for example in point_queries:
        match = re.fullmatch(
            r"what is the xyz of the pixel in <loc(\d{4})><loc(\d{4})><loc\1><loc\2>", example.prompt
        )
        assert match, example.prompt
        row, col = (int(g) for g in match.groups())
        candidates = [
            (r, c)
            for r in range(56)
            for c in range(56)
            if round(r / 56 * 1024) == row and round(c / 56 * 1024) == col
        ]
        ((r, c),) = candidates
        xyz = example.point_map[:3, r, c]
        assert example.answer == " ".join(f"{round(float(v), 2):.2f}m" for v in xyz)
    assert not any("True or False" in e.prompt for e in examples)
