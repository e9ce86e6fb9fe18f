"""How the whole-dataset assets follow new shards: declarative automation, configurable per asset.

`HISPATIAL_AUTOMATION_<ASSET>` (e.g. `HISPATIAL_AUTOMATION_CHECKPOINT`) or, for all of them, `HISPATIAL_AUTOMATION`:

- `eager`: re-materialize as soon as an upstream partition is re-materialized and nothing upstream is missing or
  in progress (so qa_dataset waits until every registered shard has its QA, then runs once). The default for
  `qa_dataset`: it is cheap and its output is a pure function of the shards, so a touched but unchanged shard
  yields the same data version and stops there.
- `on_new_data`: only when an upstream asset's *data version* changed (new content, not a re-run that wrote the
  same bytes), again waiting for missing or in-progress upstream. Never because the asset itself is missing: a
  freshly opened UI over an instance with no checkpoint does not start training. The default for `checkpoint` and
  `benchmark_scores`, whose runs cost GPU-hours to GPU-days at the paper's scale.
- `cron:<expression>` (e.g. `cron:0 3 * * *`): once per cron tick, after all upstream updated since the last tick
  (opt in to this for training on a busy inbox);
- `off`: only when asked (UI, `dagster job execute`, `hispatial demo`).

The `default_automation_condition_sensor` (declared in definitions.py) evaluates these conditions in the daemon;
docs/OPERATIONS.md has the trigger table.
"""

from __future__ import annotations

import os

import dagster as dg

# Per-asset defaults: cheap, idempotent assets follow eagerly; expensive ones only follow new content.
DEFAULTS = {"qa_dataset": "eager", "checkpoint": "on_new_data", "benchmark_scores": "on_new_data"}
SETTINGS = ("eager", "on_new_data", "off", "cron:<expression>")


def automation_setting(asset_name: str) -> str:
    default = os.environ.get("HISPATIAL_AUTOMATION") or DEFAULTS.get(asset_name, "eager")
    return os.environ.get(f"HISPATIAL_AUTOMATION_{asset_name.upper()}", default).strip()


def on_new_data() -> dg.AutomationCondition:
    """True once after any upstream asset's data version changed, when nothing upstream is missing or running."""
    return (
        dg.AutomationCondition.any_deps_match(
            dg.AutomationCondition.data_version_changed()
        ).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("on_new_data")


def downstream_condition(asset_name: str) -> dg.AutomationCondition | None:
    setting = automation_setting(asset_name)
    if setting == "eager":
        return dg.AutomationCondition.eager()
    if setting == "on_new_data":
        return on_new_data()
    if setting == "off":
        return None
    if setting.startswith("cron:"):
        return dg.AutomationCondition.on_cron(setting.removeprefix("cron:").strip())
    raise ValueError(
        f"automation setting for {asset_name} must be one of {', '.join(SETTINGS)}, got {setting!r}"
    )
