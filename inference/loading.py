"""Find and load a checkpoint from whatever the user names: ours, the MLflow registry's, or the official release.

    data/checkpoints/tiny-xyz-20261130-0826     a directory written by training.checkpoints.save_checkpoint
    latest                                      the newest such directory under <data root>/checkpoints
    models:/hispatial-xyz/best                  an MLflow registry URI (version number or alias); the registered
                                                source is our pyfunc model (inference.pyfunc) or a plain
                                                checkpoint artifact (tracking.register_best_checkpoints)
    /weights/HiSpatial-3B                       the official release layout (weights.pt + config.json), read by
                                                training.checkpoints.import_official

Loading goes through the training package's own readers (safetensors, `torch.load(weights_only=True)`), so what
is served is exactly what was trained; a directory with no weights or an unknown registry name is an
`AskInputError` that says which.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from inference.inputs import AskInputError

MODELS_URI = "models:/"
# The pyfunc model's artifact key for the checkpoint directory (inference.pyfunc).
PYFUNC_ARTIFACT = "checkpoint"


@dataclass
class LoadedCheckpoint:
    """A model ready to generate, and what the asker needs to feed it like training did."""

    model: object  # training.model.HiSpatialForConditionalGeneration, eval mode
    processor: object  # transformers.PaliGemmaProcessor
    image_size: int
    point_map_input: str  # "none" | "xyz" | "rel_depth"
    source: str  # what the user named, resolved (a directory or a models:/ URI)
    kind: str  # "hispatial" | "official"
    prompt_style: str | None = None  # the checkpoint's prompt style (training.prompts); None = "hispatial"
    directory: Path | None = None  # local directory of our format (pyfunc logging reuses it)
    train_config: object | None = None  # training.config.TrainConfig: resizes and max_depth as in training


def default_checkpoints_root(data_root: Path | str | None = None) -> Path:
    root = data_root or os.environ.get("HISPATIAL_DATA_ROOT") or Path(__file__).resolve().parents[1] / "data"
    return Path(root).expanduser() / "checkpoints"


def latest_checkpoint(checkpoints_root: Path) -> Path:
    """The most recently written checkpoint directory (ours: it has config.json and model.safetensors)."""
    from training.checkpoints import CONFIG_FILE, WEIGHTS_FILE

    candidates = [
        d
        for d in Path(checkpoints_root).glob("*")
        if d.is_dir() and (d / CONFIG_FILE).is_file() and (d / WEIGHTS_FILE).is_file()
    ]
    if not candidates:
        raise AskInputError(
            f"no checkpoint under {checkpoints_root} (run `hispatial demo` first, or name a checkpoint directory)"
        )
    return max(candidates, key=lambda d: (d / WEIGHTS_FILE).stat().st_mtime)


def resolve_local(spec: str, data_root: Path | str | None = None) -> Path:
    """`spec` (a path, `latest`, or a name under <data root>/checkpoints) -> an existing directory."""
    if spec == "latest":
        return latest_checkpoint(default_checkpoints_root(data_root))
    path = Path(spec).expanduser()
    if path.exists():
        return path
    under_root = default_checkpoints_root(data_root) / spec
    if under_root.exists():
        return under_root
    raise AskInputError(
        f"checkpoint {spec!r}: no such directory (nor under {default_checkpoints_root(data_root)})"
    )


_STAGES = {"none", "staging", "production", "archived", "latest"}


def registry_uri_with_alias(uri: str) -> str:
    """`models:/<name>/<alias>` -> MLflow's `models:/<name>@<alias>` (MLflow reads the path form as a version
    number or a stage only); versions, stages, `latest` and the `@` form pass unchanged."""
    rest = uri[len(MODELS_URI) :]
    name, sep, last = rest.rpartition("/")
    if sep and name and "@" not in rest and not last.isdigit() and last.lower() not in _STAGES:
        return f"{MODELS_URI}{name}@{last}"
    return uri


def download_registered(uri: str, tracking_uri: str | None = None) -> Path:
    """Download a `models:/<name>/<version or alias>` model version and return the local checkpoint directory."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = registry_uri_with_alias(uri)
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if tracking_uri is None:
        from training.config import local_tracking_uri

        tracking_uri = local_tracking_uri()
    mlflow.set_registry_uri(tracking_uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))
    except MlflowException as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AskInputError(
            f"{uri}: not found in the MLflow registry at {tracking_uri} ({first_line})"
        ) from err
    for candidate in (_pyfunc_checkpoint(local), local):
        if candidate is not None and (candidate / "config.json").is_file():
            return candidate
    raise AskInputError(f"{uri}: the registered model holds no checkpoint (looked in {local})")


def _pyfunc_checkpoint(model_dir: Path) -> Path | None:
    """Where a pyfunc model directory keeps its checkpoint, as its MLmodel file records it."""
    if not (model_dir / "MLmodel").is_file():
        return None
    from mlflow.models import Model

    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    entry = (flavor.get("artifacts") or {}).get(PYFUNC_ARTIFACT)
    return model_dir / entry["path"] if entry else None


def load_any(
    spec: str | Path,
    *,
    device: str = "cpu",
    data_root: Path | str | None = None,
    tracking_uri: str | None = None,
    processor: str | None = None,
) -> LoadedCheckpoint:
    """Load the checkpoint `spec` names (see the module docstring). `processor` (a local path or hub id of a
    PaliGemma processor) is needed only for an official release that ships without tokenizer files."""
    spec = str(spec)
    directory = (
        download_registered(spec, tracking_uri)
        if spec.startswith(MODELS_URI)
        else resolve_local(spec, data_root)
    )
    if (directory / "weights.pt").is_file() or directory.suffix == ".pt":
        return _load_official(directory, spec, device, processor)
    return _load_ours(directory, spec, device)


def _load_ours(directory: Path, spec: str, device: str) -> LoadedCheckpoint:
    from training.checkpoints import WEIGHTS_FILE, load_checkpoint, read_checkpoint_config

    if not directory.is_dir():
        raise AskInputError(f"checkpoint {directory}: not a directory")
    try:
        read_checkpoint_config(directory)
    except (FileNotFoundError, ValueError) as err:
        raise AskInputError(f"checkpoint {directory}: {err}") from err
    if not (directory / WEIGHTS_FILE).is_file():
        raise AskInputError(f"checkpoint {directory}: no weights ({WEIGHTS_FILE} is missing)")
    try:
        model, processor, train_config = load_checkpoint(directory, device=device)
    except (OSError, ValueError, RuntimeError) as err:
        raise AskInputError(
            f"checkpoint {directory}: cannot be loaded ({type(err).__name__}: {err})"
        ) from err
    return LoadedCheckpoint(
        model=model,
        processor=processor,
        image_size=train_config.model.image_size,
        point_map_input=model.point_map_input,
        source=spec if spec.startswith(MODELS_URI) else str(directory),
        kind="hispatial",
        prompt_style=train_config.data.prompt_style,
        directory=directory,
        train_config=train_config,
    )


def _load_official(directory: Path, spec: str, device: str, processor_name: str | None) -> LoadedCheckpoint:
    from transformers import AutoProcessor

    from training.checkpoints import import_official, official_train_config

    try:
        model, processor = import_official(directory)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise AskInputError(
            f"official checkpoint {directory}: cannot be loaded ({type(err).__name__}: {err})"
        ) from err
    if processor is None:
        if not processor_name:
            raise AskInputError(
                f"official checkpoint {directory} has no tokenizer files: pass the PaliGemma-2 processor "
                "(--processor google/paligemma2-3b-pt-448 or a local copy)"
            )
        processor = AutoProcessor.from_pretrained(processor_name)
    # The release is asked in its own formats, with its own preprocessing, as evaluation asks it.
    train_config = official_train_config(model)
    return LoadedCheckpoint(
        model=model.to(device).eval(),
        processor=processor,
        image_size=train_config.model.image_size,
        point_map_input=model.point_map_input,
        source=str(directory),
        kind="official",
        prompt_style=train_config.data.prompt_style,
        directory=None,
        train_config=train_config,
    )
