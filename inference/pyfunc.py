"""Every checkpoint as an MLflow pyfunc model: logged in its training run, registered, servable over REST.

    mlflow models serve -m models:/hispatial-xyz/latest --env-manager local -h 127.0.0.1 -p 5001
    curl -X POST 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d '{"dataframe_records":
      [{"image": "<base64 PNG/JPEG>", "question": "How far is {b1} from {b2}?", "boxes": "[[10,20,80,90],[90,10,150,60]]"}]}'

The model directory holds the checkpoint under `artifacts/checkpoint` (our format, so `hispatial ask
--checkpoint models:/...` loads the same files) and a `model_config` naming the MoGe-2 model for point maps.
Input columns: `image` (base64), `question`, and optional `points` / `boxes` / `options` (JSON lists, strings
like the CLI's), `kind`. Output columns: `answer`, `kind`, `value` (JSON), `unit`, `reason`, `error` (bad input
answers that row with its error; the other rows are answered).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema

INPUT_SCHEMA = Schema(
    [
        ColSpec("string", "image"),
        ColSpec("string", "question"),
        ColSpec("string", "points", required=False),
        ColSpec("string", "boxes", required=False),
        ColSpec("string", "options", required=False),
        ColSpec("string", "kind", required=False),
    ]
)
OUTPUT_SCHEMA = Schema(
    [
        ColSpec("string", "answer"),
        ColSpec("string", "kind"),
        ColSpec("string", "value"),
        ColSpec("string", "unit"),
        ColSpec("string", "reason"),
        ColSpec("string", "error"),
    ]
)
SIGNATURE = ModelSignature(inputs=INPUT_SCHEMA, outputs=OUTPUT_SCHEMA)
_RUNTIME_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "mlflow",
    "numpy",
    "pandas",
    "pillow",
    "pydantic",
    "dlr-moge",
)


def input_example() -> pd.DataFrame:
    """A 32x24 image and a question with two boxes: small enough to live in the MLmodel directory."""
    import numpy as np

    from inference.inputs import encode_image_b64

    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[4:12, 2:12] = (200, 40, 40)
    rgb[10:20, 18:30] = (40, 60, 200)
    return pd.DataFrame(
        [
            {
                "image": encode_image_b64(rgb),
                "question": "How far is {b1} from {b2}?",
                "boxes": json.dumps([[2, 4, 12, 12], [18, 10, 30, 20]]),
            }
        ]
    )


def _json_list(value: object) -> list:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            from inference.inputs import AskInputError

            raise AskInputError(f"expected a JSON list, got {value[:60]!r}") from None
    return list(value)


class HiSpatialPyfunc(PythonModel):
    """pyfunc wrapper around `SpatialAsker` (one DataFrame row per question; rows are generated in batches)."""

    def load_context(self, context: PythonModelContext) -> None:
        from inference.asker import SpatialAsker

        config = context.model_config or {}
        self.asker = SpatialAsker.from_checkpoint(
            context.artifacts["checkpoint"],
            point_map_model=config.get("point_map_model", "none"),
            device=config.get("device", "cpu"),
            max_new_tokens=int(config.get("max_new_tokens", 64)),
        )
        self.batch_size = int(config.get("batch_size", 8))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        from inference.asker import AskRequest
        from inference.inputs import AskInputError, b64decode_image

        requests: list[AskRequest | AskInputError] = []
        for row in model_input.to_dict(orient="records"):
            try:
                kind = row.get("kind")
                # base64 only: a path in a REST request must not make the server read its own files
                image = b64decode_image(str(row.get("image") or ""), "image")
                requests.append(
                    AskRequest(
                        image=image,
                        question=str(row.get("question") or ""),
                        points=_json_list(row.get("points")),
                        boxes=_json_list(row.get("boxes")),
                        options=_json_list(row.get("options")),
                        kind=kind if isinstance(kind, str) and kind else None,
                    )
                )
            except AskInputError as err:
                requests.append(err)
        valid = [r for r in requests if isinstance(r, AskRequest)]
        answers = iter(self.asker.ask_many(valid, self.batch_size))
        rows = []
        for request in requests:
            result = request if isinstance(request, AskInputError) else next(answers)
            if isinstance(result, AskInputError):
                rows.append(
                    {
                        "answer": "",
                        "kind": "",
                        "value": "null",
                        "unit": "",
                        "reason": "",
                        "error": str(result),
                    }
                )
            else:
                rows.append(
                    {
                        "answer": result.answer,
                        "kind": result.kind,
                        "value": json.dumps(result.value),
                        "unit": result.unit or "",
                        "reason": result.reason,
                        "error": "",
                    }
                )
        return pd.DataFrame(rows, columns=list(OUTPUT_SCHEMA.input_names()))


def _pip_requirements() -> list[str]:
    pins = []
    for name in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def log_pyfunc_model(
    checkpoint_dir: Path | str,
    run_id: str,
    tracking_uri: str,
    registered_model_name: str | None,
    point_map_model: str = "none",
    name: str = "model",
) -> mlflow.models.model.ModelInfo:
    """Log `checkpoint_dir` as a pyfunc model in run `run_id` (signature + input example, validated by MLflow
    by loading and running it once) and register it as a new version of `registered_model_name`."""
    with _tracking_uri(tracking_uri):
        active = mlflow.active_run()
        started = active is None or active.info.run_id != run_id
        if started:
            mlflow.start_run(run_id=run_id, nested=active is not None)
        try:
            return _log(checkpoint_dir, point_map_model, name, registered_model_name)
        finally:
            if started:
                mlflow.end_run()  # the checkpoint asset calls this after training finished the same run


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """The fluent API (start_run, log_model) reads a process-global URI; set it for the call only and restore
    the caller's global and environment afterwards (MLflow's own helper for this is private)."""
    from mlflow.tracking._tracking_service import utils

    old_global, old_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_global)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def _log(
    checkpoint_dir: Path | str, point_map_model: str, name: str, registered_model_name: str | None
) -> mlflow.models.model.ModelInfo:
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=HiSpatialPyfunc(),
        artifacts={"checkpoint": str(Path(checkpoint_dir).resolve())},
        signature=SIGNATURE,
        input_example=input_example(),
        model_config={"point_map_model": point_map_model, "device": "cpu", "max_new_tokens": 64},
        pip_requirements=_pip_requirements(),
        registered_model_name=registered_model_name,
    )


def log_checkpoint_model(
    checkpoint_dir: Path | str, run_id: str, tracking_uri: str, train_config: object
) -> dict[str, str]:
    """The checkpoint asset's hook (after training): log + register the checkpoint as `hispatial-<variant>` (the name
    `hispatial mlflow register` gives the variant's `best` alias, which then points at this servable version).

    Point maps for the served model: MoGe-2 with random weights for a random (tiny) model, the production MoGe-2
    otherwise. A failure here is logged and tagged on the run, never fatal: the checkpoint is already saved.
    Returns {"model_uri", "registered_model"} ({"error"} on failure) for the asset's metadata."""
    import logging

    from assets.wild.moge import PRODUCTION_MODEL_ID

    model_config = train_config.model
    point_map_model = "tiny" if model_config.backbone is None else PRODUCTION_MODEL_ID
    name = f"hispatial-{model_config.variant}"
    try:
        info = log_pyfunc_model(checkpoint_dir, run_id, tracking_uri, name, point_map_model=point_map_model)
    except Exception as err:  # noqa: BLE001 - the registry is an add-on to a saved checkpoint
        logging.getLogger(__name__).warning(
            "checkpoint %s was not logged as an MLflow model: %s", checkpoint_dir, err
        )
        mlflow.MlflowClient(tracking_uri).set_tag(run_id, "pyfunc_error", str(err)[:500])
        return {"error": str(err)[:500]}
    return {
        "model_uri": info.model_uri,
        "registered_model": f"models:/{name}/{info.registered_model_version}",
    }
