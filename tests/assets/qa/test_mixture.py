import pytest

from assets.qa.mixture import TaskMixture, load_mixture, task_ratios
from assets.records import Level, Task


def test_table7_ratios():
    mixture = load_mixture()
    assert set(mixture.tasks) == set(Task)
    assert sum(mixture.tasks.values()) == pytest.approx(1.0, abs=1e-9)
    assert mixture.tasks[Task.RELATIVE_DIRECTION] == pytest.approx(0.2609)
    assert mixture.tasks[Task.PROBLEM_SOLVING] == pytest.approx(0.0057)
    levels = mixture.level_ratios()
    assert levels[Level.L0] == pytest.approx(0.1320)
    assert levels[Level.L2] == pytest.approx(0.5111)


def test_excluding_levels_renormalises():
    ratios = task_ratios(exclude_levels=("L3",))
    assert Task.PERSPECTIVE_TAKING not in ratios
    assert sum(ratios.values()) == pytest.approx(1.0)
    assert ratios[Task.SIZE] / ratios[Task.LOCALIZATION] == pytest.approx(0.1156 / 0.0831)
    assert load_mixture().excluded_share((Level.L3,)) == pytest.approx(0.1231)
    with pytest.raises(ValueError, match="no task"):
        task_ratios(exclude_levels=("L0", "L1", "L2", "L3"))


def test_invalid_mixtures_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        TaskMixture(tasks={Task.SIZE: 0.5})
    with pytest.raises(ValueError):
        TaskMixture(tasks={Task.SIZE: 1.5, Task.ORIENTATION: -0.5})
    bad = tmp_path / "m.yaml"
    bad.write_text("tasks:\n  not_a_task: 1.0\n")
    with pytest.raises(ValueError):
        load_mixture(bad)
    custom = tmp_path / "c.yaml"
    custom.write_text("tasks:\n  size: 0.25\n  orientation: 0.75\n")
    assert load_mixture(custom).ratios() == {Task.SIZE: 0.25, Task.ORIENTATION: 0.75}
