"""Make `training` mean this repository's package, not sam2's.

sam2 1.1.0 installs a top-level package named `training` into site-packages. Python's PathFinder looks there
before the editable-install finder, so in any process whose sys.path does not start with the checkout (the
`hispatial` and `dagster` console scripts, a `dagster dev` code server started elsewhere) `import training.train`
loads sam2's trainer. Imported first by cli.py and assets.py; a no-op for installs without a source checkout.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def prefer_checkout() -> None:
    if not (REPO_ROOT / "training" / "train.py").exists():
        return
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    loaded = sys.modules.get("training")
    if loaded is not None and not str(getattr(loaded, "__file__", "") or "").startswith(str(REPO_ROOT)):
        for name in [m for m in sys.modules if m == "training" or m.startswith("training.")]:
            del sys.modules[name]


prefer_checkout()
