"""The Dagster UI in a real browser: `dagster-webserver` over a temporary instance holding one materialized
one-scene shard, the global asset graph (`/asset-groups`) rendered by headless Chromium, whose DOM must show our
assets and no error banner, plus the GraphQL view that the code location loaded without a Python error.

The screenshot is kept at `<tmp>/asset-graph.png`; `HISPATIAL_UI_SCREENSHOT=<path>` also copies it there (how
`docs/img/dagster-asset-graph.png` was made). Slow (webserver start, a shard, two browser loads); skipped when no
Chromium is installed (`apt-get install chromium`)."""

import os
import re
import shutil
import subprocess
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import pytest

from hispatial_dagster.instance import prepare_instance
from hispatial_dagster.partitions import SOURCE_SHARDS
from hispatial_dagster.shards import ShardInbox, ShardSpec
from tests.hispatial_dagster.servers import (
    REPO,
    dagster_webserver,
    free_port,
    graphql,
    running,
    wait_for_dagster,
)
from tests.hispatial_dagster.test_assets import STAGES, resources

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((path for name in BROWSERS if (path := shutil.which(name))), None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason=f"no Chromium binary on PATH (looked for {', '.join(BROWSERS)})"
    ),
]
SHARD = "synthetic-000"
ERROR_BANNERS = ("Could not load", "Error loading", "PythonError", "Something went wrong", "Unexpected error")

WORKSPACE_QUERY = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } ... on PythonError { message } } }
"""
ASSETS_QUERY = """
query { assetNodes { assetKey { path } groupName } }
"""
PARTITIONS_QUERY = """
query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
  assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions } } } }
"""


class _VisibleText(HTMLParser):
    """Text a reader would see: everything outside <script>, <style> and <noscript>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        self._hidden += tag in ("script", "style", "noscript")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style", "noscript") and self._hidden > 0

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = _VisibleText()
    parser.feed(html)
    return " ".join(parser.parts)


def chromium(url: str, profile: Path, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess:
    """One headless Chromium load of `url` with no network besides it (no sync, updates, QUIC), `args` appended."""
    argv = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
        "--window-size=1600,1000", *args, url,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_asset_graph_renders_in_a_browser(tmp_path: Path) -> None:
    root = tmp_path / "data"
    home = prepare_instance(root)
    ShardInbox(str(root / "inbox")).write(SHARD, ShardSpec(kind="synthetic", seed=3, num_scenes=1))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(SOURCE_SHARDS, [SHARD])
        result = dg.materialize(STAGES, partition_key=SHARD, instance=instance, resources=resources(root))
        assert result.success

    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HISPATIAL_DATA_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PYTHONPATH": str(REPO),
    }
    with running(dagster_webserver(port, env, tmp_path)) as services:
        wait_for_dagster(port, services)

        workspace = graphql(port, WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        [location] = workspace["locationEntries"]
        assert location["loadStatus"] == "LOADED"
        assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location
        nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
        names = {node["assetKey"]["path"][-1] for node in nodes}
        assert {"source_images", "qa_shards", "qa_dataset", "checkpoint", "benchmark_scores"} <= names
        keys = [{"path": [asset.key.path[-1]]} for asset in STAGES]
        statuses = graphql(port, PARTITIONS_QUERY, {"keys": keys})["assetNodes"]
        materialized = [s["assetPartitionStatuses"]["materializedPartitions"] for s in statuses]
        assert materialized == [[SHARD]] * len(STAGES)

        # The global graph starts with its groups collapsed: open all of them (the UI keeps that in `expanded`), and
        # mark the community sign-up dialog (shown on 127.0.0.1 to new instances) as seen so it hides nothing.
        assert graphql(port, "mutation { setNuxSeen }")["setNuxSeen"]
        groups = sorted({node["groupName"] for node in nodes})
        expanded = ",".join(f"global@global:{group}" for group in groups)
        url = f"http://127.0.0.1:{port}/asset-groups?" + urllib.parse.urlencode({"expanded": expanded})
        dom = chromium(url, tmp_path / "profile-dom", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-3000:]
        text = visible_text(dom.stdout)
        shown = {name for name in names if name in text}
        assert {"source_images", "point_maps", "qa_shards", "qa_dataset", "checkpoint"} <= shown, text[:3000]
        assert not [banner for banner in ERROR_BANNERS if banner in text], text[:3000]
        assert not re.search(r"\bError\b", text), text[:3000]

        screenshot = tmp_path / "asset-graph.png"
        shot = chromium(url, tmp_path / "profile-shot", f"--screenshot={screenshot}")
        assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-3000:]
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
    if target := os.environ.get("HISPATIAL_UI_SCREENSHOT"):
        shutil.copyfile(screenshot, target)
