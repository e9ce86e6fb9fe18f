#!/usr/bin/env bash
# The main job on embedded defaults: local Dagster instance and MLflow store, two synthetic shards, tiny model.
# Outputs land in ./data (override with HISPATIAL_DATA_ROOT); extra arguments go to `hispatial demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_ENABLE_TELEMETRY=false DO_NOT_TRACK=1 DAGSTER_DISABLE_TELEMETRY=1
exec .venv/bin/hispatial demo "$@"
