"""Every loader reads a fixture in its benchmark's published format, and every aggregate reproduces accuracies
computed by hand on crafted predictions (CircularEval and the four 3DSRBench settings included): the default
(official reading) and the `lenient/` set beside it. Item for item agreement with the official code itself is
tests/evaluation/test_official_parity.py."""

from pathlib import Path

import pytest

from evaluation.benchmarks import REGISTRY
from evaluation.config import EvalConfig
from evaluation.judge import RuleJudge
from evaluation.predictors import item_image
from evaluation.run import score_items

FIXTURES = Path(__file__).parent / "fixtures"


def run(name: str, predictions: dict[str, str | None], config: EvalConfig | None = None):
    config = config or EvalConfig()
    spec = REGISTRY[name]
    items = spec.load(FIXTURES / {"3dsrbench": "3dsrbench"}.get(name, name), config)
    assert {it.item_id for it in items} == set(predictions), "fixture ids changed"
    results, metrics, per_category = score_items(
        items, [predictions[it.item_id] for it in items], spec, config, judge=RuleJudge()
    )
    return items, results, metrics, per_category


def test_cv_bench_official_overall():
    items, results, m, per_cat = run(
        "cv_bench",
        {
            "2D-0": "(B)",
            "2D-1": "The answer is A.",
            "2D-2": "(A) above",
            "2D-3": "right",
            "3D-4": "B",
            "3D-5": "(B)",
        },
    )
    assert all(it.image_bytes for it in items)  # HF image struct decoded
    assert {it.category for it in items} == {
        "2D Count",
        "2D Relation",
        "3D Depth",
        "3D Distance",
    }  # Count is in
    # official (Cambrian): "right" is read as its first letter 'r' -> wrong
    assert m["accuracy"] == pytest.approx(50.0)
    assert m["source/ADE20K"] == 100.0 and m["source/COCO"] == 0.0 and m["source/Omni3D"] == 50.0
    assert m["official_overall"] == pytest.approx(50.0)  # ((100 + 0) / 2 + 50) / 2
    assert m["cv_bench_2d_relation"] == pytest.approx(100 / 3)
    assert m["cv_bench_3d"] == pytest.approx(50.0)
    assert per_cat["3D Depth"] == {"accuracy": 0.0, "count": 1}
    # lenient: the option text "right" counts
    assert m["lenient/source/COCO"] == 50.0 and m["lenient/official_overall"] == pytest.approx(62.5)
    assert [r.lenient_correct for r in results] == [True, True, False, True, False, True]


def test_embspatial():
    items, results, m, _ = run("embspatial", {"q1": "A", "q2": "door", "q3": "The answer is C"})
    assert items[0].options == ["left", "right", "above", "below"] and items[1].correct_index == 2
    assert m["accuracy"] == pytest.approx(100 / 3)  # VLMEvalKit never matches option text
    assert m["data_source/ai2thor"] == 100.0 and m["data_source/mp3d"] == 0.0
    assert m["lenient/accuracy"] == pytest.approx(200 / 3) and m["lenient/data_source/mp3d"] == 50.0


def test_robospatial_configuration_subset():
    items, results, m, _ = run(
        "robospatial",
        {
            "configuration-0": "Yes, the mug is on the left.",
            "configuration-1": "I don't know",
            "configuration-2": "No.",
        },
    )
    assert len(items) == 3  # the context split is not loaded
    assert m["accuracy"] == pytest.approx(200 / 3) and m["category/configuration"] == pytest.approx(200 / 3)
    assert not results[1].correct and results[1].lenient_correct is False


def test_3dsrbench_four_settings_over_groups():
    preds = {
        # Q1 height_higher: the flipped rotation is wrong
        "1": "A",
        "2": "The answer is B",
        "3": "(A) yes",
        "4": "A",
        # Q2 orientation_on_the_left: the original's rotation is wrong
        "5": "A",
        "6": "A",
        "7": "A",
        "8": "B",
        # Q3 multi_object_facing: all right
        "9": "B",
        "10": "A",
        "11": "B.",
        "12": "A",
    }
    items, results, m, per_cat = run("3dsrbench", preds)
    assert items[1].image_bytes == items[0].image_bytes  # VLMEvalKit image-by-index reference resolved
    assert items[0].options == ["yes", "no"]  # empty C/D columns are not options
    assert m["vanilla/accuracy"] == pytest.approx(1000 / 12)  # VLMEvalKit: vanilla is every row
    assert m["flip/accuracy"] == pytest.approx(400 / 6)  # each row with its flipped copy
    assert m["circular/accuracy"] == pytest.approx(400 / 6) and m["circular/rows"] == 6
    assert m["flip+circular/accuracy"] == pytest.approx(100 / 3) and m["flip+circular/rows"] == 3
    assert m["accuracy"] == m["flip+circular/accuracy"]  # the default headline setting
    # per type / subtype over each setting's groups, not rows (rows would give height 75%)
    assert per_cat["type/height"] == {"accuracy": 0.0, "count": 1}
    assert per_cat["type/multi_object"] == {"accuracy": 100.0, "count": 1}
    assert per_cat["subtype/orientation_on_the_left"]["accuracy"] == 0.0
    assert m["flip+circular/3DSR-L2"] == 50.0 and m["flip+circular/3DSR-L3"] == 0.0


def test_spatialrgpt_rules_and_region_prompts():
    preds = {
        "srgpt-0": "about 1.4 m",  # gt 1.2: 1.4 <= 1.5 -> success
        "srgpt-1": "It is 2.5 feet tall.",  # gt 0.75 m; 0.762 m -> success
        "srgpt-2": "2.6 meters",  # gt 2.0; above 1.25 * gt
        "srgpt-3": "hard to say",  # unparseable -> wrong, still counted
        "srgpt-4": "at 4 o'clock",  # gt 3 o'clock, within one hour
        "srgpt-5": "Yes",  # judged (rule fallback): yes == yes
        "srgpt-6": "The chair is shorter.",  # judged: names the other side of taller/shorter
    }
    items, results, m, per_cat = run("spatialrgpt", preds)
    assert "the chair (highlighted by a red box)" in items[2].prompt
    assert "the table (highlighted by a blue box)" in items[2].prompt and "<mask>" not in items[2].prompt
    assert items[2].boxes == [(2.0, 2.0, 10.0, 10.0, "red"), (12.0, 4.0, 30.0, 20.0, "blue")]
    image = item_image(items[2])  # the regions drawn in their colours, as the authors do for such models
    assert image.getpixel((2, 5)) == (255, 0, 0) and image.getpixel((20, 4))[2] > 200
    assert image.getpixel((6, 6)) == (100, 100, 100)  # inside the box untouched
    assert items[3].value == pytest.approx(0.9144)  # "3 feet" ground truth in meters
    assert m["quantitative_avg"] == 50.0  # width, height right; direct, vertical wrong
    assert m["qualitative_avg"] == 50.0
    assert m["category/direction"] == 100.0
    assert m["accuracy"] == pytest.approx(400 / 7)
    assert m["count"] == 7


def test_qspatial_strict_ratio_and_units():
    preds = {
        "QSpatial_plus-0": r"\scalar{3.9} \distance_unit{meters}",  # gt 2 m: ratio 1.95 < 2
        "QSpatial_plus-1": r"\scalar{60} \distance_unit{centimeters}",  # gt 120 cm: ratio exactly 2 -> wrong
        "QSpatial_scannet-0": "about 4 feet",  # gt 5 ft; no \scalar{}: the official notebook cannot score it
    }
    items, results, m, _ = run("qspatial", preds)
    assert items[1].value == pytest.approx(1.2)
    assert m["split/QSpatial_plus"] == 50.0 and m["split/QSpatial_scannet"] == 0.0
    assert m["accuracy"] == pytest.approx(100 / 3)
    assert m["lenient/split/QSpatial_scannet"] == 100.0 and m["lenient/accuracy"] == pytest.approx(200 / 3)


def test_mmbench_circular_eval():
    """The TSV already holds the rotations (index k * 1e6 + g); they are grouped, never rotated again."""
    preds = {"0": "A", "1000000": "C", "2000000": "blue", "1": "B", "1000001": "B"}
    items, results, m, per_cat = run("mmbench", preds)
    assert len(items) == 5 and {it.group for it in items} == {"0", "1"}
    assert [it.options for it in items[:3]] == [
        ["blue", "green", "red"],
        ["green", "red", "blue"],
        ["red", "blue", "green"],
    ]
    assert "Hint: Count carefully." in items[3].prompt
    assert m["accuracy"] == 50.0 and m["row_accuracy"] == 80.0 and m["groups"] == 2
    assert per_cat["counting"]["accuracy"] == 0.0 and m["category/perception"] == 50.0


def test_pope_accuracy_and_f1():
    items, results, m, per_cat = run("pope", {"1": "Yes", "2": "No", "3": "No", "4": "Yes, there is a bird."})
    assert m["accuracy"] == 50.0 and m["f1"] == 50.0
    assert per_cat["random"]["f1"] == 100.0 and per_cat["adversarial"]["accuracy"] == 0.0


@pytest.mark.parametrize("name", ["seed", "realworldqa"])
def test_plain_multiple_choice(name):
    items, results, m, _ = run(name, {"10": "C", "11": None if name == "realworldqa" else "no"})
    assert m["accuracy"] == 50.0
    assert results[1].reason == ("no prediction" if name == "realworldqa" else "")
