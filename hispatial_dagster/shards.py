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
from typing import Any, Literal, get_args

import fsspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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
# What `source_images` can write (hispatial_dagster/assets.py `_write_source`): synthetic scenes, or files at `path`.
SourceKind = Literal["synthetic", "images", "coco", "objects365", "omni3d", "ca1m", "hispatial"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)
# Kinds whose writer reads an annotation file named in `options`.
ANNOTATED_KINDS = ("coco", "objects365", "omni3d")
# A shard is one partition, built by one process: at ~0.2 s per synthetic scene, 100,000 scenes are ~6 hours of a
# core. More data is more shards (they run in parallel and re-run alone); 1e12 is a typo, not a plan.
MAX_SCENES = 100_000


class ShardSpec(BaseModel):
    """What a source shard is. `kind` picks the source writer (`synthetic` -> assets.synthetic; any other kind ->
    `assets.sources.<kind>`); `options` reaches that writer's config unchanged.

    Strict types: `"num_scenes": "50"` or `1e12` is an error naming the field, not a silent conversion."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: SourceKind
    seed: int = 0
    num_scenes: int = Field(default=50, ge=1, le=MAX_SCENES)
    path: str | None = Field(
        default=None, min_length=1, description="Source location for file-based kinds (any fsspec URL)."
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_path(self) -> ShardSpec:
        if self.kind != "synthetic" and self.path is None:
            raise ValueError(f"path: a {self.kind!r} shard needs `path` (where its files are)")
        if self.kind in ANNOTATED_KINDS and not isinstance(self.options.get("annotation_file"), str):
            raise ValueError(
                f"options.annotation_file: a {self.kind!r} shard names its annotation file (a string)"
            )
        return self


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


def describe_validation_error(err: ValidationError) -> str:
    """Pydantic's errors as one line, each led by its field: `num_scenes: Input should be ... (got 1e+12)`."""
    parts = []
    for error in err.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        got = "" if error["type"] in ("missing", "value_error") else f" (got {error['input']!r})"
        parts.append(f"{field}: {message}{got}" if field else f"{message}{got}")
    return "; ".join(parts)


def parse_spec(text: str | bytes, origin: str = "<spec>") -> ShardSpec:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ShardSpecError(f"{origin}: not JSON: {err}") from err
    if not isinstance(data, dict):
        raise ShardSpecError(f"{origin}: a shard spec is a JSON object, got {type(data).__name__}")
    try:
        return ShardSpec.model_validate(data)
    except ValidationError as err:
        raise ShardSpecError(f"{origin}: {describe_validation_error(err)}") from err


def check_location(spec: ShardSpec, origin: str = "<spec>") -> None:
    """The files a spec points at exist (its `path`, and the annotation file inside it): checked when the spec
    arrives (sensor, `hispatial register`) so a typo never becomes a partition whose every run fails."""
    if spec.path is None:
        return
    try:
        fs, path = fsspec.core.url_to_fs(spec.path)
        if not fs.isdir(path):
            raise ShardSpecError(f"{origin}: path: {spec.path} is not an existing directory")
        annotation = spec.options.get("annotation_file")
        if isinstance(annotation, str) and not fs.isfile(f"{path.rstrip('/')}/{annotation}"):
            raise ShardSpecError(
                f"{origin}: options.annotation_file: {annotation} is not a file in {spec.path}"
            )
    except (OSError, ValueError, ImportError) as err:
        if isinstance(err, ShardSpecError):
            raise
        raise ShardSpecError(f"{origin}: path: cannot read {spec.path}: {err}") from err


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

    def _spec_names(self) -> list[str]:
        if not self.fs.exists(self.path):
            return []
        names = (name.rstrip("/").rsplit("/", 1)[-1] for name in self.fs.ls(self.path, detail=False))
        return sorted(name for name in names if not name.startswith("."))

    def shard_keys(self) -> list[str]:
        return [name[: -len(SPEC_SUFFIX)] for name in self._spec_names() if name.endswith(SPEC_SUFFIX)]

    def read(self, shard: str) -> ShardSpec:
        path = self._spec_path(shard)
        try:
            data = self.fs.cat_file(path)
        except FileNotFoundError as err:
            raise ShardSpecError(f"no spec for shard {shard!r} at {self.url}/{shard}{SPEC_SUFFIX}") from err
        return parse_spec(data, origin=f"{self.url}/{shard}{SPEC_SUFFIX}")

    def scan(self) -> tuple[list[InboxEntry], dict[str, str]]:
        """All usable shards with their fingerprints, and `{file name: reason}` for the unusable spec files
        (invalid content, a path that does not exist, a bad shard key, a `.JSON`-style suffix)."""
        entries: list[InboxEntry] = []
        errors: dict[str, str] = {}
        for name in self._spec_names():
            if not name.endswith(SPEC_SUFFIX):
                if name.lower().endswith(SPEC_SUFFIX):
                    stem = name[: -len(SPEC_SUFFIX)]
                    errors[name] = (
                        f"{self.url}/{name}: spec files end in lower-case {SPEC_SUFFIX!r}; rename it to "
                        f"{stem.lower()}{SPEC_SUFFIX}"
                    )
                continue
            shard = name[: -len(SPEC_SUFFIX)]
            try:
                validate_shard_key(shard)
                spec = self.read(shard)
                check_location(spec, origin=f"{self.url}/{name}")
                entries.append(InboxEntry(shard=shard, spec=spec, fingerprint=fingerprint(spec)))
            except (ShardSpecError, OSError) as err:
                reason = str(err)
                errors[name] = reason if reason.startswith(self.url) else f"{self.url}/{name}: {reason}"
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
