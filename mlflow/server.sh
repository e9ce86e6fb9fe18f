#!/usr/bin/env bash
# Local MLflow tracking server for HiSpatial: SQLite backend + artifact directory under this folder, bound to
# 127.0.0.1 only. Everything is overridable:
#   MLFLOW_BACKEND_STORE_URI   default sqlite:///<repo>/mlflow/mlflow.db   (any SQLAlchemy URI, e.g. postgresql://...)
#   MLFLOW_ARTIFACTS_DESTINATION default <repo>/mlflow/artifacts           (or s3://bucket/prefix, gs://...)
#   MLFLOW_HOST / MLFLOW_PORT  default 127.0.0.1 / 5000
# Then point runs at it: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
mlflow_bin="${MLFLOW_BIN:-$repo/.venv/bin/mlflow}"
[ -x "$mlflow_bin" ] || mlflow_bin="$(command -v mlflow)"
backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$here/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$here/artifacts}"
host="${MLFLOW_HOST:-127.0.0.1}"
port="${MLFLOW_PORT:-5000}"
case "$artifacts" in *://*) ;; *) mkdir -p "$artifacts" ;; esac
export MLFLOW_ENABLE_TELEMETRY="${MLFLOW_ENABLE_TELEMETRY:-false}"
echo "MLflow: backend $backend, artifacts $artifacts, http://$host:$port" >&2
exec "$mlflow_bin" server \
  --backend-store-uri "$backend" \
  --artifacts-destination "$artifacts" \
  --serve-artifacts \
  --host "$host" --port "$port" \
  --workers "${MLFLOW_WORKERS:-1}"
