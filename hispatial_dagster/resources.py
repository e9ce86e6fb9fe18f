"""Everything environmental, as Dagster resources: where data lives, where runs are tracked, which endpoint answers
LLM calls, and the per-stage configuration. Tests swap a resource; nothing is monkeypatched.

Every default works offline on one machine; every value can be overridden by an environment variable (read once,
when the code location loads) or by run config in the UI. Secrets are never resource fields: `LLMEndpoint` names the
environment variable that holds the key and reads it only when a client is built, so the key never reaches run
config, logs or metadata.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
from pydantic import Field

from hispatial_dagster.shards import ShardInbox

if (
    TYPE_CHECKING
):  # the stages' own config types; imported at call time so loading the definitions stays light
    from assets.filtering import FilterConfig
    from assets.llm import LLMClient
    from assets.qa.config import QAConfig
    from assets.synthetic import SyntheticConfig
    from assets.wild.clip import ClipTagFilter
    from assets.wild.extractor import WildObjectExtractor
    from assets.wild.moge import MoGeEstimator
    from assets.wild.vlm_filter import VlmImageFilter
    from evaluation.config import EvalConfig
    from training.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def default_data_root() -> str:
    return os.environ.get("HISPATIAL_DATA_ROOT", str(REPO_ROOT / "data"))


def default_tracking_uri() -> str:
    from training.config import local_tracking_uri

    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()


def build_config(cls: type[T], values: dict[str, Any]) -> T:
    """Construct a stage's config (a dataclass or pydantic model owned by that stage) from resource values.

    An unknown key is an error naming the known ones (a typo in an override must not be silently ignored); the
    stage's own validation applies to the values."""
    if dataclasses.is_dataclass(cls):
        known = {f.name for f in dataclasses.fields(cls)}
    elif hasattr(cls, "model_fields"):
        known = set(cls.model_fields)  # type: ignore[attr-defined]
    else:
        return cls(**values)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


class DataRoot(dg.ConfigurableResource):
    """The one directory all stages read and write (layout in assets/storage.py)."""

    path: str = Field(default_factory=default_data_root, description="Data root; env HISPATIAL_DATA_ROOT.")

    @property
    def root(self) -> Path:
        return Path(self.path).expanduser().resolve()


class SourceInbox(dg.ConfigurableResource):
    """Where shard spec files arrive (see hispatial_dagster/shards.py): a directory or any fsspec URL."""

    url: str = Field(
        default_factory=lambda: os.environ.get("HISPATIAL_INBOX", ""),
        description="Inbox URL; empty means <data root>/inbox. Env HISPATIAL_INBOX.",
    )

    def inbox(self, data_root: Path) -> ShardInbox:
        return ShardInbox(self.url or str(Path(data_root) / "inbox"))


class MLflowTracking(dg.ConfigurableResource):
    """MLflow tracking server or local store; default: SQLite under <repo>/mlflow (no server needed)."""

    tracking_uri: str = Field(default_factory=default_tracking_uri, description="Env MLFLOW_TRACKING_URI.")
    ui_url: str = Field(
        default_factory=lambda: os.environ.get("HISPATIAL_MLFLOW_UI", "http://127.0.0.1:5000"),
        description="Base URL of an MLflow UI showing this store, used for links in asset metadata.",
    )

    def run_url(self, run_id: str, experiment_id: str | None = None) -> str:
        if experiment_id:
            return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"{self.ui_url.rstrip('/')}/#/runs/{run_id}"

    def activate(self) -> None:
        """Point the mlflow client of this process at our store (stage code then uses plain mlflow calls)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)


class LLMEndpoint(dg.ConfigurableResource):
    """An OpenAI-compatible endpoint for LLM-written QA (L3) and VLM filters. Off unless `base_url` is set.

    Holds no secret: `api_key_env` is the *name* of the variable with the key; `assets.llm.LLMClient` reads it
    when it sends a request."""

    base_url: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_LLM_BASE_URL", ""))
    model: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_LLM_MODEL", "gpt-4.1"))
    api_key_env: str = Field(
        default="HISPATIAL_LLM_API_KEY",
        description="Name of the environment variable holding the key (never the key).",
    )
    max_calls: int = Field(
        default_factory=lambda: int(os.environ.get("HISPATIAL_LLM_MAX_CALLS", "1000")),
        description="Per-run budget of HTTP calls.",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    def client(self, cache_dir: Path | None = None) -> LLMClient | None:
        """An `assets.llm.LLMClient` for this endpoint (one per run: the budget belongs to it), or None when no
        endpoint is configured, in which case stages fall back to template-only generation."""
        if not self.enabled:
            return None
        from assets.llm import LLMClient, LLMConfig

        return LLMClient(
            LLMConfig(
                base_url=self.base_url,
                model=self.model,
                api_key_env=self.api_key_env,
                max_calls=self.max_calls,
                cache_dir=cache_dir,
            )
        )


class SyntheticSource(dg.ConfigurableResource):
    """Defaults for synthetic shards; a shard spec's seed/num_scenes/options override them."""

    options: dict[str, Any] = Field(default_factory=dict, description="Extra SyntheticConfig fields.")

    def config(self, seed: int, num_scenes: int, spec_options: dict[str, Any]) -> SyntheticConfig:
        from assets.synthetic import SyntheticConfig

        values = {**self.options, **spec_options, "seed": seed, "num_scenes": num_scenes}
        return build_config(SyntheticConfig, values)


def _optional_int_env(name: str) -> int | None:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class FilterSettings(dg.ConfigurableResource):
    """Image filter thresholds, and whether the VLM filter (paper 7.1 step 3) runs: off unless switched on, since
    it is one endpoint call per image that survived the pixel heuristics."""

    options: dict[str, Any] = Field(default_factory=dict, description="FilterConfig fields.")
    vlm_filter: bool = Field(
        default_factory=lambda: _env_flag("HISPATIAL_VLM_FILTER"),
        description="Ask the LLM endpoint's VLM to reject images without spatial content. Env HISPATIAL_VLM_FILTER.",
    )

    def config(self) -> FilterConfig:
        from assets.filtering import FilterConfig

        return build_config(FilterConfig, dict(self.options))

    def vlm_image_filter(self, llm: LLMEndpoint, cache_dir: Path) -> VlmImageFilter | None:
        """An `assets.wild.vlm_filter.VlmImageFilter` on `llm`'s endpoint when switched on, else None.

        Switched on without an endpoint is a configuration error, not a reason to skip the filter silently."""
        if not self.vlm_filter:
            return None
        if not llm.enabled:
            raise dg.Failure(
                "the VLM image filter is switched on (FilterSettings.vlm_filter / HISPATIAL_VLM_FILTER) but no LLM "
                "endpoint is configured: set HISPATIAL_LLM_BASE_URL (and HISPATIAL_LLM_MODEL, the key in "
                "HISPATIAL_LLM_API_KEY) or switch the filter off"
            )
        from assets.wild.vlm_filter import VlmImageFilter

        return VlmImageFilter(llm.client(cache_dir=cache_dir))


class QASettings(dg.ConfigurableResource):
    options: dict[str, Any] = Field(default_factory=dict, description="QA generation config fields.")

    def config(self) -> QAConfig:
        from assets.qa.config import QAConfig

        return build_config(QAConfig, dict(self.options))


def _json_env(name: str) -> dict[str, Any]:
    """A JSON object from an environment variable (e.g. HISPATIAL_TRAIN_OPTIONS), {} when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"{name} must hold a JSON object, got {raw!r}")
    return value


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` applied onto `base`, recursing into nested dicts (so {"data": {"excluded_levels": ["L3"]}}
    changes one field of a nested config, not the whole sub-config)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class TrainingSettings(dg.ConfigurableResource):
    """Training config: a named preset of training.config.train_presets (`tiny` for the demo and CI, `paper-448`
    for the paper's model and hyper-parameters) plus nested overrides (env HISPATIAL_TRAIN_OPTIONS as JSON)."""

    preset: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_TRAIN_PRESET", "tiny"))
    options: dict[str, Any] = Field(default_factory=lambda: _json_env("HISPATIAL_TRAIN_OPTIONS"))

    def config(self, tracking_uri: str | None = None) -> TrainConfig:
        from training.config import TrainConfig, train_presets

        presets = train_presets()
        if self.preset not in presets:
            raise ValueError(f"unknown training preset {self.preset!r}; choose one of {sorted(presets)}")
        values = deep_merge(presets[self.preset].model_dump(), self.options)
        if tracking_uri and not values["mlflow"].get("tracking_uri"):
            values["mlflow"]["tracking_uri"] = tracking_uri
        return TrainConfig.model_validate(values)


class EvalSettings(dg.ConfigurableResource):
    """Evaluation config (evaluation.config.EvalConfig fields; env HISPATIAL_EVAL_OPTIONS as JSON)."""

    options: dict[str, Any] = Field(default_factory=lambda: _json_env("HISPATIAL_EVAL_OPTIONS"))

    def config(self, tracking_uri: str | None = None, train_val_fraction: float | None = None) -> EvalConfig:
        """EvalConfig from the options; when no held-out set is configured, the custom benchmark scores the
        scenes the checkpoint's own training held out (`train_val_fraction`, its TrainConfig.data.val_fraction)."""
        from evaluation.config import EvalConfig

        values = dict(self.options)
        if tracking_uri and not values.get("mlflow_tracking_uri"):
            values["mlflow_tracking_uri"] = tracking_uri
        heldout_keys = ("heldout_shards", "heldout_scenes", "heldout_val_fraction")
        if train_val_fraction and not any(values.get(k) for k in heldout_keys):
            values["heldout_val_fraction"] = train_val_fraction
        return EvalConfig.model_validate(values)


class WildModels(dg.ConfigurableResource):
    """The estimation models for shards without 3D ground truth (web images, COCO/Objects365 boxes).

    Each field is empty (off: synthetic and Omni3D shards pass ground truth through and need none; other scenes are
    rejected with "no ... configured"), `tiny` (the real model class with random weights: CI and CPU smoke runs),
    or a hub id / local path of real weights. Env: HISPATIAL_POINT_MAP_MODEL, HISPATIAL_SEGMENTER_MODEL,
    HISPATIAL_DETECTOR_MODEL, HISPATIAL_TAGGER_MODEL, HISPATIAL_CLIP_FILTER_MODEL (the paper's CLIP tag-vote image
    filter in `filtered_images`), HISPATIAL_DEVICE (`auto` = cuda when available).
    """

    point_map_model: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_POINT_MAP_MODEL", ""))
    segmenter_model: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_SEGMENTER_MODEL", ""))
    detector_model: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_DETECTOR_MODEL", ""))
    tagger_model: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_TAGGER_MODEL", ""))
    clip_filter_model: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_CLIP_FILTER_MODEL", ""))
    device: str = Field(default_factory=lambda: os.environ.get("HISPATIAL_DEVICE", "auto"))
    # Thresholds. The defaults are the paper's; `WildModels.smoke()` names the ones that let random weights through.
    clip_filter_min_votes: int | None = Field(
        default_factory=lambda: _optional_int_env("HISPATIAL_CLIP_FILTER_MIN_VOTES"),
        description="Include-tag votes (of the top 5) an image needs; empty = more than half (paper 7.1).",
    )
    detection_min_score: float = Field(
        default_factory=lambda: float(os.environ.get("HISPATIAL_DETECTION_MIN_SCORE", "0.3")),
        description="Detector confidence below which a box is not an object.",
    )
    gravity_fallback: str = Field(
        default_factory=lambda: os.environ.get("HISPATIAL_GRAVITY_FALLBACK", ""),
        description="'level': assume a level camera when the point map shows no support plane; empty: reject.",
    )

    @classmethod
    def smoke(cls, device: str = "cpu") -> WildModels:
        """The in-the-wild path with every model `tiny` (random weights) and the thresholds that let such models'
        output through: the CLIP vote keeps every image (still computed), any detector score counts, and a level
        camera stands in for the floor a random point map does not have. For smoke runs and CI only: it proves
        the path runs end to end and contains bad items, not that its output means anything."""
        return cls(
            point_map_model="tiny",
            segmenter_model="tiny",
            detector_model="tiny",
            tagger_model="tiny",
            clip_filter_model="tiny",
            device=device,
            clip_filter_min_votes=0,
            detection_min_score=0.0,
            gravity_fallback="level",
        )

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def point_map_estimator(self) -> MoGeEstimator | None:
        """assets.wild.moge.MoGeEstimator, or None when off."""
        if not self.point_map_model:
            return None
        from assets.wild.moge import MoGeEstimator

        if self.point_map_model == "tiny":
            return MoGeEstimator.tiny(device=self.resolved_device())
        return MoGeEstimator.from_pretrained(self.point_map_model, device=self.resolved_device())

    def clip_filter(self) -> ClipTagFilter | None:
        """assets.wild.clip.ClipTagFilter (paper 7.1 include/exclude tag voting), or None when off."""
        if not self.clip_filter_model:
            return None
        from assets.wild.clip import EXCLUDE_TAGS, INCLUDE_TAGS, ClipScorer, ClipTagFilter

        if self.clip_filter_model == "tiny":
            scorer = ClipScorer.tiny([*INCLUDE_TAGS, *EXCLUDE_TAGS])
        else:
            scorer = ClipScorer.from_pretrained(self.clip_filter_model, device=self.resolved_device())
        return ClipTagFilter(scorer, min_include_votes=self.clip_filter_min_votes)

    def object_extractor(self) -> WildObjectExtractor | None:
        """assets.wild.extractor.WildObjectExtractor (SAM-2 segmenter; GroundingDINO + CLIP tagger for images
        without dataset boxes), or None when no segmenter is configured."""
        if not self.segmenter_model:
            return None
        from assets.wild.clip import OBJECT_VOCABULARY, ClipScorer, ClipTagger
        from assets.wild.detect import GroundingDinoDetector
        from assets.wild.extractor import WildObjectExtractor
        from assets.wild.segment import Sam2Segmenter

        device = self.resolved_device()
        tiny = "tiny"
        segmenter = (
            Sam2Segmenter.tiny(device=device)
            if self.segmenter_model == tiny
            else Sam2Segmenter.from_pretrained(self.segmenter_model, device=device)
        )
        detector = None
        if self.detector_model:
            detector = (
                GroundingDinoDetector.tiny(list(OBJECT_VOCABULARY))
                if self.detector_model == tiny
                else GroundingDinoDetector.from_pretrained(self.detector_model, device=device)
            )
        tagger = None
        if self.tagger_model:
            scorer = (
                ClipScorer.tiny([f"a photo of a {v}" for v in OBJECT_VOCABULARY])
                if self.tagger_model == tiny
                else ClipScorer.from_pretrained(self.tagger_model, device=device)
            )
            tagger = ClipTagger(scorer)
        fallbacks = {"": None, "level": (0.0, 1.0, 0.0)}
        if self.gravity_fallback not in fallbacks:
            raise ValueError(f"gravity_fallback must be '' or 'level', got {self.gravity_fallback!r}")
        return WildObjectExtractor(
            segmenter=segmenter,
            detector=detector,
            tagger=tagger,
            categories=() if tagger else OBJECT_VOCABULARY,
            min_score=self.detection_min_score,
            fallback_gravity_cam=fallbacks[self.gravity_fallback],
        )
