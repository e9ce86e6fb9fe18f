"""How the whole-dataset assets follow new shards: declarative automation, configurable per asset.

`HISPATIAL_AUTOMATION_<ASSET>` (e.g. `HISPATIAL_AUTOMATION_CHECKPOINT`) or, for all of them, `HISPATIAL_AUTOMATION`:

- `eager` (default): re-materialize as soon as an upstream partition updates and nothing upstream is missing or
  in progress (so qa_dataset waits until every registered shard has its QA, then runs once);
- `cron:<expression>` (e.g. `cron:0 3 * * *`): once per cron tick, after all upstream updated since the last tick
  (use this for training on a busy inbox);
- `off`: only when asked (UI, `dagster job execute`, `hispatial demo`).

The `default_automation_condition_sensor` (declared in definitions.py) evaluates these conditions in the daemon.
"""

from __future__ import annotations

import os

import dagster as dg


def automation_setting(asset_name: str) -> str:
    return os.environ.get(
        f"HISPATIAL_AUTOMATION_{asset_name.upper()}", os.environ.get("HISPATIAL_AUTOMATION", "eager")
    ).strip()


def downstream_condition(asset_name: str) -> dg.AutomationCondition | None:
    setting = automation_setting(asset_name)
    if setting == "eager":
        return dg.AutomationCondition.eager()
    if setting == "off":
        return None
    if setting.startswith("cron:"):
        return dg.AutomationCondition.on_cron(setting.removeprefix("cron:").strip())
    raise ValueError(
        f"automation setting for {asset_name} must be 'eager', 'off' or 'cron:<expression>', got {setting!r}"
    )
