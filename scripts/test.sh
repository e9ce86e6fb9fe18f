#!/usr/bin/env bash
# The test command: set up the virtualenv if needed, lint, then run every test not marked slow or gpu.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh tests/assets -q`, or `-m slow` for the slow checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1
# The slow and gpu checks stay out unless the arguments pick markers of their own (`-m slow`).
marker=(-m "not slow and not gpu")
for arg in "$@"; do
  case "$arg" in -m | -m* | --markexpr*) marker=() ;; esac
done
.venv/bin/python -m pytest -p no:cacheprovider --timeout=600 "${marker[@]}" "$@"
