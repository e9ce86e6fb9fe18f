#!/usr/bin/env bash
# The test command: set up the virtualenv if needed, lint, then run every test not marked slow or gpu.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow` for the slow checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1
if [ "$#" -eq 0 ]; then set -- -m "not slow and not gpu"; fi
.venv/bin/python -m pytest -p no:cacheprovider --timeout=600 "$@"
