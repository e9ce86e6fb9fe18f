"""The project's top-level packages must be the ones imported, from any working directory.

sam2's wheel ships an unrelated top-level `training` package; scripts/setup.sh removes it. This pins that an
installed process (the `hispatial` and `dagster` commands run from anywhere) gets ours.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_top_level_packages_resolve_to_this_checkout(tmp_path):
    code = "import assets, training, evaluation, hispatial_dagster; print('\\n'.join(m.__file__ for m in (assets, training, evaluation, hispatial_dagster)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    for line in out.stdout.split():
        assert Path(line).resolve().is_relative_to(REPO), line
