"""Children that a test kills with SIGKILL mid-way.

`python -m tests.training.victim train ROOT CONFIG_JSON SLOW_AFTER_STEP`: train_checkpoint; after SLOW_AFTER_STEP
optimizer steps every step sleeps 0.3 s, so an outside SIGKILL lands mid-run on a machine of any speed (sleeping
changes no number).
`python -m tests.training.victim asset ROOT TRACKING_URI OPTIONS_JSON`: materializes the `checkpoint` Dagster asset.
"""

import json
import sys
import time
from pathlib import Path

import dagster as dg
import lightning as L

from training.config import TrainConfig
from training.train import train_checkpoint


class SlowDown(L.Callback):
    def __init__(self, after: int):
        self.after = after

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step >= self.after:
            time.sleep(0.3)


def asset_resources(root: str, tracking_uri: str, options: dict) -> dict:
    from hispatial_dagster.resources import DataRoot, MLflowTracking, TrainingSettings

    return {
        "data_root": DataRoot(path=root),
        "training": TrainingSettings(preset="tiny", options=options),
        "mlflow_tracking": MLflowTracking(tracking_uri=tracking_uri),
    }


def materialize_checkpoint(root: str, tracking_uri: str, options: dict) -> dg.ExecuteInProcessResult:
    from hispatial_dagster import assets as hs_assets

    with dg.instance_for_test() as instance:
        return dg.materialize(
            [hs_assets.checkpoint], instance=instance, resources=asset_resources(root, tracking_uri, options)
        )


if __name__ == "__main__":
    if sys.argv[1] == "train":
        root, config_path, after = Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
        train_checkpoint(
            root, TrainConfig.model_validate_json(config_path.read_text()), callbacks=[SlowDown(after)]
        )
    else:
        materialize_checkpoint(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
