#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv in .venv and install everything, in the order that works offline:
# the pinned torch/torchvision wheels first, sam2 built without isolation (its isolated build would pull a newer
# torch and CUDA packages), then the project itself. Re-running is cheap: a stamp of the inputs skips the install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${HISPATIAL_VENV:-.venv}
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
SAM2_PIN=sam2==1.1.0

stamp_inputs() { cat pyproject.toml scripts/setup.sh; echo "${TORCH_PINS[*]} $SAM2_PIN"; }
stamp="$VENV/.hispatial-installed"
want=$(stamp_inputs | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip_q() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | grep -v "is ignored: it is neither a file" || true; }
echo "[setup] installing ${TORCH_PINS[*]}"
pip_q "${TORCH_PINS[@]}"
if ! "$VENV/bin/python" -c "import sam2" 2>/dev/null; then
  echo "[setup] building $SAM2_PIN (no CUDA extension)"
  pip_q setuptools wheel
  SAM2_BUILD_CUDA=0 pip_q --no-build-isolation "$SAM2_PIN"
fi
# sam2's wheel also installs its own trainer as a top-level package named `training`, which would shadow ours
# (site-packages comes before an editable install on sys.path). sam2 itself never imports it: remove it.
"$VENV/bin/python" - <<'PY'
import pathlib, shutil, sysconfig
site = pathlib.Path(sysconfig.get_paths()["purelib"])
record = next(site.glob("sam2-*.dist-info/RECORD"), None)
if record and "training/__init__.py" in record.read_text() and (site / "training").is_dir():
    shutil.rmtree(site / "training")
    print("[setup] removed sam2's top-level `training` package (it shadows ours)")
PY
echo "[setup] installing the project"
pip_q -e '.[dev]'
# The `k8s` extra (dagster-k8s; ~20 s and ~90 MB, mostly the kubernetes client), so CI checks the Kubernetes path.
# Its requirements are installed normally, dagster-k8s itself with --no-deps: PyPI's newest release pins the
# previous dagster patch release, and letting pip resolve it would downgrade the dagster installed above.
# tests/hispatial_dagster/test_k8s.py checks that this pair loads the code location and builds step pods.
k8s_reqs=$("$VENV/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["k8s"]))')
pip_q $(grep -v '^dagster-k8s' <<<"$k8s_reqs") 'google-auth!=2.23.1'
pip_q --no-deps $(grep '^dagster-k8s' <<<"$k8s_reqs")
"$VENV/bin/python" -c "import torch, torchvision, dagster, dagster_k8s, mlflow, transformers, assets, training, evaluation, hispatial_dagster" \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] ready: $VENV"
