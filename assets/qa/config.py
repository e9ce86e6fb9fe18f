"""`QAConfig`: every knob of QA synthesis in one typed, loggable record.

Lives in its own module so that `context.py` (imported by every level generator) and `engine.py` can both use it
without an import cycle; `assets.qa.engine` re-exports it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assets.records import QAFormat, Task

LENGTH_UNITS = ("m", "cm", "ft", "in")

# Per-scene caps on QA *pairs* (after format expansion) for each task. Table 7 ratios are applied later by the
# training sampler; these caps only keep one crowded scene from dominating a shard.
DEFAULT_CAPS: dict[Task, int] = {
    Task.POINT_QUERY: 6,
    Task.DEPTH_ORDER: 6,
    Task.ORIENTATION: 12,
    Task.SIZE: 18,
    Task.LOCALIZATION: 12,
    Task.RELATIVE_DIRECTION: 36,
    Task.RELATIVE_DISTANCE: 24,
    Task.RELATIONAL_COMPARISON: 24,
    Task.PERSPECTIVE_TAKING: 24,
    Task.SPATIAL_COUNTING: 12,
    Task.PROBLEM_SOLVING: 4,
}


class QAConfig(BaseModel):
    """Configuration of one QA synthesis run (logged whole with the shard's manifest)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    formats: list[QAFormat] = Field(default_factory=lambda: list(QAFormat))
    units: list[str] = Field(default_factory=lambda: list(LENGTH_UNITS))
    unit_mention_prob: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Chance a meters question names its unit explicitly."
    )
    loc_tokens: bool = Field(
        default=True, description="PaliGemma <locYYYY><locXXXX> pixel tokens; else '(x, y)'."
    )
    caps: dict[Task, int] = Field(default_factory=lambda: dict(DEFAULT_CAPS))
    l0_eval_samples: int = Field(
        default=4, ge=0, description="Offline L0 questions per scene (eval); 0 = none."
    )
    depth_order_margin: float = Field(
        default=0.10, ge=0.0, description="Min relative depth gap for L0 ordering."
    )
    mc_min_options: int = Field(default=3, ge=2, le=6)
    mc_max_options: int = Field(default=5, ge=2, le=6)
    distractor_min_rel: float = Field(
        default=0.25,
        gt=0.0,
        description="Numeric distractors lie outside truth x (1 +- this), so MC is unambiguous.",
    )
    yes_no_prob: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Share of TF questions phrased yes/no."
    )
    compare_margin: float = Field(
        default=0.15, ge=0.0, description="Relative gap required between compared quantities (L2 comparison)."
    )
    orientation_tolerance_deg: float = Field(default=20.0, gt=0.0, le=45.0)
    min_object_size_m: float = Field(default=0.02, gt=0.0)
    min_object_depth_m: float = Field(default=0.1, gt=0.0)
    include_l3: bool = True
    balance_answers: bool = Field(
        default=True,
        description="Per shard, drop questions of over-represented free-form answer classes "
        "(assets.qa.quality.balance_pairs).",
    )

    @model_validator(mode="after")
    def _check(self) -> QAConfig:
        if self.mc_min_options > self.mc_max_options:
            raise ValueError("mc_min_options must be <= mc_max_options")
        unknown = set(self.units) - set(LENGTH_UNITS)
        if unknown or not self.units:
            raise ValueError(f"units must be a non-empty subset of {LENGTH_UNITS}, got {self.units}")
        if not self.formats:
            raise ValueError("at least one QA format must be enabled")
        return self

    def cap(self, task: Task) -> int:
        return self.caps.get(task, DEFAULT_CAPS.get(task, 0))
