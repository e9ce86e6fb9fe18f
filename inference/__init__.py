"""Ask a checkpoint about any image: the Python API (`SpatialAsker`), batch mode, the MLflow pyfunc model and the
Gradio page. The CLI is `hispatial ask` (inference/cli.py, registered in hispatial_dagster/cli.py).

Names are imported on first use, so `hispatial --help` does not pay for numpy, torch and transformers."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Answer": "inference.asker",
    "AskRequest": "inference.asker",
    "SpatialAsker": "inference.asker",
    "AskInputError": "inference.inputs",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'inference' has no attribute {name!r}")
