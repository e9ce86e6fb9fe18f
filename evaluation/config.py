"""Evaluation configuration: plain typed data, resolved once and logged whole with each report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BENCHMARKS = (
    "custom",
    "custom_3d",
    "cv_bench",
    "embspatial",
    "robospatial",
    "3dsrbench",
    "spatialrgpt",
    "qspatial",
    "mmbench",
    "pope",
    "seed",
    "realworldqa",
)

ThreeDSRSetting = Literal["vanilla", "flip", "circular", "flip+circular"]


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, str] = Field(
        default_factory=dict,
        description="benchmark name -> local path or Hugging Face dataset id. The custom benchmark reads the "
        "data root itself and needs no entry. A benchmark without an entry reports 'not configured'.",
    )
    predictions: dict[str, Path] = Field(
        default_factory=dict,
        description="benchmark name -> JSONL of {id, prediction}: score another system's outputs, no model run.",
    )
    output_dir: Path | None = Field(default=None, description="Default: <root>/benchmark_scores.")
    limit: int | None = Field(default=None, ge=1, description="Score only the first N items (smoke runs).")
    # inference
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=64, ge=1)
    point_maps: Literal["auto", "ground_truth", "estimated", "none"] = Field(
        default="auto",
        description="auto: the benchmark's ground-truth depth when it has one, else estimated.",
    )
    # custom benchmark (paper sec. 8)
    heldout_shards: list[str] = Field(default_factory=list, description="Shards excluded from training.")
    heldout_scenes: list[str] = Field(default_factory=list, description="Scene ids excluded from training.")
    heldout_val_fraction: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Training's own validation split (training.data.is_validation_scene with the train config's "
        "val_fraction): scenes of every shard that training never saw.",
    )
    angle_threshold_deg: float = Field(default=30.0, gt=0, le=180)
    l3_relative_error: float = Field(default=0.25, gt=0)
    custom_max_per_level: int | None = Field(default=None, ge=1)
    # public benchmarks
    cv_bench_tasks: dict[str, list[str]] = Field(
        default_factory=lambda: {"2D": ["Count", "Relation"], "3D": ["Depth", "Distance"]},
        description="All four by default: the official per-source accuracies and overall include Count.",
    )
    robospatial_subsets: list[str] = Field(default_factory=lambda: ["configuration"])
    threedsr_setting: ThreeDSRSetting = "flip+circular"
    mmbench_circular: bool = True
    qspatial_official_prompt: bool = False
    spatialrgpt_image_root: Path | None = None
    qspatial_image_root: Path | None = Field(
        default=None,
        description="Q-Spatial-Bench-code checkout whose QSpatial_scannet download script rendered the ScanNet frames "
        "(the HF release has no images for that split): an item's `image_path` is read relative to it.",
    )
    spatialrgpt_templates: Path | None = Field(
        default=None,
        description="The authors' qualitative judge examples (scripts/srgpt/eval/prompt_templates of a SpatialRGPT "
        "checkout). Without them qualitative items are scored by the rule fallback, labelled as such.",
    )
    # judge and tracking
    judge_env_prefix: str = "HISPATIAL_JUDGE"
    use_judge: bool = True
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "hispatial-benchmarks"
    run_name: str | None = None
