"""How a source shard is specified, found and fingerprinted: the one mechanism shared by the inbox sensor, the
`hispatial demo` command and the `source_images` asset.

A shard is declared by a small JSON file in an *inbox* (a local directory by default, or any fsspec URL such as
`s3://bucket/hispatial/inbox`). The file's stem is the partition key::

    <inbox>/synthetic-000.json   {"kind": "synthetic", "seed": 0, "num_scenes": 50}
    <inbox>/office-2024.json     {"kind": "images", "path": "s3://bucket/raw/office-2024/"}

A shard's *fingerprint* is a content hash of its spec plus, for specs that point at a location, the listing
(names, sizes, modification stamps) of that location. The sensor keys runs on (shard, fingerprint), so an
unchanged shard never re-runs and an edited one does.

This module imports nothing from Dagster so the CLI and benchmarks can use it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assets.storage import check_shard_name

# The assets partitioned by source shard, in pipeline order (here, not in assets.py, so the CLI can name them
# without importing Dagster).
SHARD_STAGES = (
    "source_images",
    "filtered_images",
    "point_maps",
    "object_clouds",
    "object_references",
    "qa_shards",
)
SPEC_SUFFIX = ".json"
# Metadata key under which `source_images` records the fingerprint of the spec it was built from (the sensor
# compares it with the inbox, so a shard built by any route is not rebuilt).
SPEC_FINGERPRINT_KEY = "spec_fingerprint"


class ShardSpec(BaseModel):
    """What a source shard is. `kind` picks the source writer (`synthetic` -> assets.synthetic; any other kind ->
    `assets.sources.<kind>`); `options` reaches that writer's config unchanged."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_]*$")
    seed: int = 0
    num_scenes: int = Field(default=50, ge=1)
    path: str | None = Field(
        default=None, description="Source location for file-based kinds (any fsspec URL)."
    )
    options: dict[str, Any] = Field(default_factory=dict)


class ShardSpecError(ValueError):
    """A spec file that cannot be used; the sensor reports it and leaves the shard unregistered."""


@dataclass(frozen=True)
class InboxEntry:
    shard: str
    spec: ShardSpec
    fingerprint: str


def validate_shard_key(shard: str) -> str:
    """`assets.storage.check_shard_name` (the one rule), failing as a ShardSpecError for the sensor and CLI."""
    try:
        return check_shard_name(shard)
    except ValueError as err:
        raise ShardSpecError(str(err)) from err


def parse_spec(text: str | bytes, origin: str = "<spec>") -> ShardSpec:
    try:
        return ShardSpec.model_validate(json.loads(text))
    except (json.JSONDecodeError, ValidationError, TypeError) as err:
        raise ShardSpecError(f"{origin}: invalid shard spec: {err}") from err


def _listing_digest(url: str) -> str:
    """Hash of a source location's file listing: cheap (no file reads) and changes whenever a file is added,
    removed, resized or rewritten."""
    fs, path = fsspec.core.url_to_fs(url)
    digest = hashlib.sha256()
    try:
        found = fs.find(path, detail=True)
    except FileNotFoundError:
        found = {}
    for name in sorted(found):
        info = found[name]
        stamp = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("ETag") or ""
        digest.update(f"{name}\0{info.get('size')}\0{stamp}\n".encode())
    return digest.hexdigest()


def fingerprint(spec: ShardSpec) -> str:
    """Content hash of a shard: its canonical spec plus the listing of the location it points at."""
    digest = hashlib.sha256(json.dumps(spec.model_dump(), sort_keys=True).encode())
    if spec.path:
        digest.update(_listing_digest(spec.path).encode())
    return digest.hexdigest()


class ShardInbox:
    """A directory (any fsspec URL) of `<shard>.json` spec files."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url, **storage_options)

    def _spec_path(self, shard: str) -> str:
        return f"{self.path}/{validate_shard_key(shard)}{SPEC_SUFFIX}"

    def shard_keys(self) -> list[str]:
        if not self.fs.exists(self.path):
            return []
        keys = []
        for name in self.fs.ls(self.path, detail=False):
            base = name.rstrip("/").rsplit("/", 1)[-1]
            if base.endswith(SPEC_SUFFIX) and not base.startswith("."):
                keys.append(base[: -len(SPEC_SUFFIX)])
        return sorted(keys)

    def read(self, shard: str) -> ShardSpec:
        path = self._spec_path(shard)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError as err:
            raise ShardSpecError(f"no spec for shard {shard!r} at {self.url}/{shard}{SPEC_SUFFIX}") from err
        return parse_spec(data, origin=f"{self.url}/{shard}{SPEC_SUFFIX}")

    def scan(self) -> tuple[list[InboxEntry], dict[str, str]]:
        """All usable shards with their fingerprints, and `{shard: reason}` for the unusable ones."""
        entries: list[InboxEntry] = []
        errors: dict[str, str] = {}
        for shard in self.shard_keys():
            try:
                validate_shard_key(shard)
                spec = self.read(shard)
                entries.append(InboxEntry(shard=shard, spec=spec, fingerprint=fingerprint(spec)))
            except (ShardSpecError, OSError) as err:
                errors[shard] = str(err)
        return entries, errors

    def write(self, shard: str, spec: ShardSpec) -> str:
        """Write a spec file (atomically for local inboxes: temp name then move)."""
        path = self._spec_path(shard)
        self.fs.makedirs(self.path, exist_ok=True)
        tmp = f"{self.path}/.{shard}{SPEC_SUFFIX}.tmp"
        with self.fs.open(tmp, "w") as fh:
            fh.write(json.dumps(spec.model_dump(exclude_defaults=False), indent=2, sort_keys=True))
        self.fs.mv(tmp, path)
        return f"{self.url}/{shard}{SPEC_SUFFIX}"


def synthetic_shard_key(index: int) -> str:
    return f"synthetic-{index:03d}"
