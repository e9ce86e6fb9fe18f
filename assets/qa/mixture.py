"""The task mixture (paper Table 7) as configuration: which share of training samples each task gets.

Variants (a level ablation, a different re-balancing) are new YAML files, not code changes.
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from assets.records import TASK_LEVEL, Level, Task

DEFAULT_MIXTURE = Path(__file__).with_name("mixture.yaml")


class TaskMixture(BaseModel):
    """Task -> sampling ratio; ratios are non-negative and sum to 1 (within rounding of the paper's table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = ""
    tasks: dict[Task, float]

    @field_validator("tasks")
    @classmethod
    def _ratios(cls, v: dict[Task, float]) -> dict[Task, float]:
        if any(r < 0 or not math.isfinite(r) for r in v.values()):
            raise ValueError("task ratios must be finite and non-negative")
        total = sum(v.values())
        if not math.isclose(total, 1.0, abs_tol=1e-3):
            raise ValueError(f"task ratios must sum to 1, got {total:.4f}")
        return v

    def ratios(self, exclude_levels: tuple[Level | str, ...] = ()) -> dict[Task, float]:
        """Ratios of the tasks outside `exclude_levels`, renormalised to sum to 1.

        (The paper's level ablation instead keeps absolute frequencies and fills excluded draws with general VQA;
        the trainer does that with `ratios()` and the excluded share, `excluded_share`.)
        """
        excluded = {Level(level) for level in exclude_levels}
        kept = {t: r for t, r in self.tasks.items() if TASK_LEVEL[t] not in excluded}
        total = sum(kept.values())
        if total <= 0:
            raise ValueError(f"excluding {sorted(excluded)} leaves no task to sample")
        return {t: r / total for t, r in kept.items()}

    def excluded_share(self, exclude_levels: tuple[Level | str, ...]) -> float:
        excluded = {Level(level) for level in exclude_levels}
        return sum(r for t, r in self.tasks.items() if TASK_LEVEL[t] in excluded) / sum(self.tasks.values())

    def level_ratios(self) -> dict[Level, float]:
        out: dict[Level, float] = {}
        for t, r in self.tasks.items():
            out[TASK_LEVEL[t]] = out.get(TASK_LEVEL[t], 0.0) + r
        return out


def load_mixture(path: Path | str | None = None) -> TaskMixture:
    """Read a mixture YAML (default: the paper's Table 7)."""
    path = Path(path) if path is not None else DEFAULT_MIXTURE
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a mixture file is a mapping with a 'tasks' table")
    return TaskMixture.model_validate(data)


def task_ratios(
    exclude_levels: tuple[Level | str, ...] = (), path: Path | str | None = None
) -> dict[Task, float]:
    """Table 7 ratios (renormalised over the kept levels when `exclude_levels` is given)."""
    return load_mixture(path).ratios(exclude_levels)
