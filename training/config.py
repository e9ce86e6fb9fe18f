"""Typed configuration: model presets (tiny, PaliGemma-2 3B at 224/448 px) and the training config.

Config is plain data (pydantic, so a typo'd field fails loudly and the whole resolved config serialises to JSON for
MLflow and the checkpoint). The paper's hyper-parameters are the defaults of `TrainConfig`; presets override only
what a tiny CPU model needs (a higher learning rate, few steps, small images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from assets.qa.mixture import load_mixture
from assets.records import Level, Task

MAX_DEPTH = 250.0
"""Point-map values beyond this many meters (and inf/NaN) become it, as in the official release; the one default
of `ModelConfig.max_depth`, which the data loaders and predictors read."""

PointMapInput = Literal["none", "xyz", "rel_depth"]
"""Which 3D input the model gets: RGB only, RGB + metric point map (default), RGB + relative depth (paper 6.3)."""

VARIANTS: dict[str, PointMapInput] = {"rgb": "none", "xyz": "xyz", "rel_depth": "rel_depth"}

RgbResize = Literal["cv2-bilinear", "pil-antialias"]
"""`cv2-bilinear`: cv2.resize INTER_LINEAR without antialiasing, as the official loader and predictor resize;
`pil-antialias`: PIL bilinear with its antialiasing support (this project's first choice)."""
PointMapResize = Literal["cv2-nearest", "pixel-center"]
"""`cv2-nearest`: cv2 INTER_NEAREST, output pixel i takes source pixel floor(i * src / dst) (official);
`pixel-center`: the source pixel under the output pixel's centre, floor((i + 0.5) * src / dst)."""
PromptStyle = Literal["hispatial", "official"]
"""`hispatial`: this project's question/answer formats; `official`: the release's (training/prompts.py)."""
LossReduction = Literal["token-mean", "example-mean"]
"""`token-mean`: one mean over all answer tokens of the batch (official); `example-mean`: the mean per example,
then the mean over examples, so a long answer weighs as much as a short one."""
LrSchedule = Literal["constant", "warmup-constant"]
"""`constant`: the official constant learning rate from step 0; `warmup-constant`: linear warmup over
`warmup_steps`, then constant."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Config):
    """Architecture of the fused model. `backbone` None = random init of this architecture (tests, benchmarks);
    otherwise a hub id or local path of a PaliGemma checkpoint whose weights initialise the RGB pathway."""

    name: str = "tiny"
    backbone: str | None = None
    variant: Literal["rgb", "xyz", "rel_depth"] = "xyz"
    image_size: int = Field(default=56, gt=0)
    patch_size: int = Field(default=14, gt=0)
    # SigLIP vision tower
    vision_hidden: int = 32
    vision_intermediate: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    # Gemma-2 language model
    text_hidden: int = 64
    text_intermediate: int = 128
    text_layers: int = 2
    text_heads: int = 2
    text_kv_heads: int = 1
    head_dim: int = 32
    vocab_size: int | None = Field(
        default=None, description="None = len(tokenizer) (tiny offline tokenizer)."
    )
    # point-map branch (paper 6.1)
    num_frequencies: int = 32
    max_depth: float = Field(
        default=MAX_DEPTH, gt=0, description="Point-map clamp in meters (training.inputs)."
    )
    tokenizer_corpus_size: int = Field(default=1024, description="BPE vocab of the offline tokenizer (tiny).")

    @model_validator(mode="after")
    def _patch_divides(self) -> ModelConfig:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        return self

    @property
    def point_map_input(self) -> PointMapInput:
        return VARIANTS[self.variant]

    @property
    def num_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def _paligemma2_3b(image_size: int) -> ModelConfig:
    # google/paligemma2-3b-*: SigLIP So400m/14 + Gemma-2 2B.
    return ModelConfig(
        name=f"paligemma2-3b-{image_size}",
        backbone=f"google/paligemma2-3b-mix-{image_size}",
        image_size=image_size,
        vision_hidden=1152,
        vision_intermediate=4304,
        vision_layers=27,
        vision_heads=16,
        text_hidden=2304,
        text_intermediate=9216,
        text_layers=26,
        text_heads=8,
        text_kv_heads=4,
        head_dim=256,
        vocab_size=257216,
    )


MODEL_PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(),
    "tiny-112": ModelConfig(name="tiny-112", image_size=112),
    "paligemma2-3b-224": _paligemma2_3b(224),
    "paligemma2-3b-448": _paligemma2_3b(448),
}


class DataConfig(_Config):
    task_ratios: dict[Task, float] = Field(
        default_factory=lambda: dict(load_mixture().tasks),
        description="Paper Table 7 (assets/qa/mixture.yaml).",
    )
    general_fraction: float = Field(default=1 / 8, ge=0, lt=1, description="1:7 general:spatial (paper 4).")
    excluded_levels: list[Level] = Field(
        default_factory=list, description="Level ablation: draws from these levels become general samples."
    )
    online_l0: bool = Field(default=True, description="Generate L0 questions from point maps while training.")
    general_path: str | None = Field(
        default=None, description="LLaVA-format JSON of general VQA; None = captions of the scenes in root."
    )
    val_fraction: float = Field(default=0.1, ge=0, lt=1, description="Held-out scenes (by hash of scene id).")
    max_val_items: int = Field(
        default=256, description="Without val_items_per_level: held-out pairs, randomly."
    )
    val_items_per_level: int | None = Field(
        default=None,
        gt=0,
        description="Validation items per level, split evenly over the level's tasks (held-out scenes only); "
        "1537 gives a 95% interval of +-2.5 points at 50% accuracy (evaluation.intervals.items_for_half_width).",
    )
    val_quantitative_items: int = Field(
        default=0,
        ge=0,
        description="With val_items_per_level: add held-out free-form length questions (L1/L2) "
        "until this many are in the set (paper Table 6's quantitative measure needs them).",
    )
    val_l0_per_scene: int = Field(
        default=1, ge=1, description="Online L0 questions per held-out scene and task."
    )
    val_seed: int = Field(
        default=0, description="Chooses the validation items: the same for every training seed."
    )
    max_answer_tokens: int = 24
    rgb_resize: RgbResize = "cv2-bilinear"
    prompt_style: PromptStyle = Field(
        default="hispatial",
        description="Question/answer formats (training.prompts): ours or the official ones.",
    )
    point_map_resize: PointMapResize = "cv2-nearest"


class MLflowConfig(_Config):
    tracking_uri: str | None = Field(
        default=None, description="Explicit URI; else $MLFLOW_TRACKING_URI; else sqlite under <repo>/mlflow/."
    )
    experiment: str = "hispatial-training"
    run_name: str | None = None
    log_model_artifacts: bool = True


class LoraConfig(_Config):
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class TrainConfig(_Config):
    """Everything one training run needs; logged whole as MLflow params and saved with the checkpoint."""

    model: ModelConfig = Field(default_factory=lambda: MODEL_PRESETS["paligemma2-3b-448"].model_copy())
    data: DataConfig = Field(default_factory=DataConfig)
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig)
    lora: LoraConfig | None = Field(default=None, description="None = full fine-tune of the language model.")
    seed: int = 0
    max_steps: int = 70_000
    batch_size: int = 8
    accumulate_grad_batches: int = 1
    # AdamW, paper 6.2: lr 2e-5, weight decay 0.1; warmup then constant.
    learning_rate: float = 2e-5
    weight_decay: float = 0.1
    warmup_steps: int = 500
    lr_schedule: LrSchedule = "warmup-constant"
    loss_reduction: LossReduction = "example-mean"
    betas: tuple[float, float] = (0.9, 0.999)
    point_encoder_lr_scale: float = Field(
        default=1.0,
        description="LR multiplier of the point-map conv. Adam moves each of its 193*14*14 fan-in weights by about"
        " lr per step, so its output moves by about lr * 37,828 * |input|: fine at the paper's 2e-5, saturating at"
        " the 1e-3 a tiny model needs for its other weights.",
    )
    gradient_clip_val: float | None = 1.0
    precision: Literal["32-true", "bf16-mixed", "bf16-true", "16-mixed"] = "32-true"
    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        default="auto",
        description="fsdp = FSDP2 (fully_shard) via Lightning's ModelParallelStrategy; runs on CPU"
        " (gloo) as on GPUs. Under torchrun, auto becomes ddp when there is more than one process.",
    )
    accelerator: str = "auto"
    devices: int | str = Field(
        default="auto", description="Per node; torchrun's LOCAL_WORLD_SIZE overrides it."
    )
    num_nodes: int = Field(
        default=1, ge=1, description="torchrun's WORLD_SIZE / LOCAL_WORLD_SIZE overrides it."
    )
    checkpoint_every_n_steps: int = Field(
        default=500,
        ge=0,
        description="Resume checkpoint (model, optimizer, scheduler, sampler position) every N"
        " optimizer steps under <root>/checkpoints/.resume/; 0 = none (a killed run then restarts from step 0).",
    )
    resume: bool = Field(
        default=True, description="Continue an interrupted run with the same config and data."
    )
    gradient_checkpointing: bool = False
    log_every_n_steps: int = 10
    eval_max_new_tokens: int = 16
    checkpoint_name: str | None = Field(default=None, description="Directory name under <root>/checkpoints/.")

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        """A named config (`tiny`, `paper-448`, `paper-224`); the Dagster resource calls this."""
        table = train_presets()
        if name not in table:
            raise KeyError(f"unknown training preset {name!r}; known: {sorted(table)}")
        return table[name].model_copy(deep=True)

    @property
    def tags(self) -> dict[str, str]:
        levels = [lv.value for lv in Level if lv not in self.data.excluded_levels]
        return {"variant": self.model.variant, "levels": "+".join(levels), "model": self.model.name}


def tiny_train_config(**overrides: object) -> TrainConfig:
    """The demo/test preset: tiny model at 56 px, a few hundred CPU steps (about a minute on 2 cores)."""
    base = TrainConfig(
        model=MODEL_PRESETS["tiny"].model_copy(),
        max_steps=200,
        batch_size=8,
        learning_rate=1e-3,
        point_encoder_lr_scale=0.01,
        weight_decay=0.1,
        warmup_steps=20,
        accelerator="cpu",
        devices=1,
        log_every_n_steps=10,
        data=DataConfig(max_val_items=64),
    )
    return base.model_copy(update=overrides)


def train_presets() -> dict[str, TrainConfig]:
    """`tiny` (demo, CPU), `paper-448` / `paper-224` (paper hyper-parameters on the 3B model, GPUs)."""
    paper = TrainConfig()
    return {
        "tiny": tiny_train_config(),
        "paper-448": paper,
        "paper-224": paper.model_copy(update={"model": MODEL_PRESETS["paligemma2-3b-224"].model_copy()}),
        "official": official_train_config(),
    }


def official_train_config() -> TrainConfig:
    """The official release's behaviour (microsoft/HiSpatial configs/train_default.json, vqa_dataset.py,
    hispatial_vlm.py): the 3B model at 448 px, a constant learning rate of 2e-5 from step 0, one mean over all
    answer tokens of the batch, cv2 resizes, the depth codec (always official) and the official prompt formats."""
    return TrainConfig(
        lr_schedule="constant",
        warmup_steps=0,
        loss_reduction="token-mean",
        data=DataConfig(rgb_resize="cv2-bilinear", point_map_resize="cv2-nearest", prompt_style="official"),
    )


def flatten_config(config: BaseModel) -> dict[str, str]:
    """Flatten a nested config to dotted keys with string values (MLflow params are strings)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            out[prefix] = str(value)

    walk("", config.model_dump(mode="json"))
    return out


def default_mlflow_dir() -> Path:
    """`<repo>/mlflow`: the local tracking store when no URI is configured."""
    return Path(__file__).resolve().parent.parent / "mlflow"


def local_tracking_uri(mlflow_dir: Path | None = None) -> str:
    """The local SQLite tracking store in `mlflow_dir` (default `<repo>/mlflow`), created if missing."""
    directory = Path(mlflow_dir) if mlflow_dir is not None else default_mlflow_dir()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory.resolve() / 'mlflow.db'}"


def artifact_location_for(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside it (`<dir>/artifacts`); MLflow's own default would be
    `./mlruns` in whatever directory the process happens to run in. None lets a tracking server decide."""
    if tracking_uri.startswith("sqlite:///"):
        artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        return artifacts.resolve().as_uri()
    return None
