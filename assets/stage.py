"""What every stage returns, and the one way a stage survives bad input.

A stage processes one partition (shard) item by item. An item that fails with a *data* error (a corrupt image,
an empty mask, a NaN point map, a malformed record) is recorded as a `Rejection` with its reason and the rest of
the shard goes on; programming errors (TypeError, AttributeError, ...) still raise, so bugs are not hidden as
"rejections". The Dagster layer turns a `StageReport` into asset metadata.

Stages that run a model and log to MLflow (training, a benchmark) return a `RunReport` instead: the same one
shape for every such report, so the Dagster layer reads fields rather than probing for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

T = TypeVar("T")
R = TypeVar("R")


class DataError(ValueError):
    """Raised by stage code for input it cannot use; the item is skipped with this message as the reason."""


# Errors that mean "this input is bad", not "this code is wrong".
DATA_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ValidationError,
    ValueError,
    KeyError,
    OSError,
    json.JSONDecodeError,
)


@dataclass
class Rejection:
    item: str
    stage: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "stage": self.stage, "reason": self.reason}


@dataclass
class StageReport:
    """Outcome of one stage on one shard; `metadata` values must be JSON-serialisable scalars or lists."""

    stage: str
    shard: str
    output_dir: Path
    num_in: int = 0
    num_out: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)
    preview: list[dict] = field(default_factory=list)
    thumbnail: Path | None = None

    def reject(self, item: str, reason: str) -> None:
        self.rejections.append(Rejection(item=item, stage=self.stage, reason=reason))

    def manifest(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "shard": self.shard,
            "num_in": self.num_in,
            "num_out": self.num_out,
            "num_rejected": len(self.rejections),
            "metadata": self.metadata,
        }


@runtime_checkable
class RunReport(Protocol):
    """What a stage with an MLflow run reports (`training.train.TrainReport`, `evaluation.report.BenchmarkReport`).

    `output_dir` is the directory whose content versions the asset; `paths` the outputs worth a link (named as
    the metadata keys); `metadata()` the report's own flat JSON-safe values; `metrics` and `per_category` the
    numbers (shown as tables); `preview` a few example rows."""

    @property
    def run_id(self) -> str | None: ...

    @property
    def experiment_id(self) -> str | None: ...

    @property
    def tracking_uri(self) -> str | None: ...

    @property
    def output_dir(self) -> Path | None: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...

    @property
    def per_category(self) -> Mapping[str, Mapping[str, float]]: ...

    @property
    def preview(self) -> list[dict]: ...

    def paths(self) -> dict[str, Path]: ...

    def metadata(self) -> dict[str, object]: ...


def process_items(
    items: Iterable[T],
    fn: Callable[[T], R | None],
    report: StageReport,
    item_id: Callable[[T], str],
) -> list[R]:
    """Apply `fn` to each item; data errors become rejections, `None` results are dropped silently
    (the function has already recorded why, if it matters)."""
    results: list[R] = []
    for item in items:
        report.num_in += 1
        try:
            result = fn(item)
        except DATA_ERRORS as err:
            report.reject(item_id(item), f"{type(err).__name__}: {err}")
            continue
        if result is not None:
            results.append(result)
    report.num_out = len(results)
    return results
