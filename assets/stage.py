"""What every stage returns, and the one way a stage survives bad input.

A stage processes one partition (shard) item by item. An item that fails with a *data* error (a corrupt image,
an empty mask, a NaN point map, a malformed record) is recorded as a `Rejection` with its reason and the rest of
the shard goes on; programming errors (TypeError, AttributeError, ...) still raise, so bugs are not hidden as
"rejections". A model's RuntimeError on one input is an item's failure too (`model_errors`). When every item of a
shard is rejected the cause is not in the items: the stage fails (`check_not_systemic`) and the previous version
of its shard stays. The Dagster layer turns a `StageReport` into asset metadata.

Stages that run a model and log to MLflow (training, a benchmark) return a `RunReport` instead: the same one
shape for every such report, so the Dagster layer reads fields rather than probing for them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import ValidationError

T = TypeVar("T")
R = TypeVar("R")


class DataError(ValueError):
    """Raised by stage code for input it cannot use; the item is skipped with this message as the reason."""


class ShardFailure(RuntimeError):
    """A stage failed as a whole: not one bad item but something every item ran into (every item rejected, a
    model that fails on all inputs, a missing setting). Raised inside the stage's atomic directory, so the shard's
    previous version stays visible; the message carries the first reasons, the exception all of them."""

    def __init__(self, message: str, rejections: list[Rejection] | None = None) -> None:
        super().__init__(message)
        self.rejections = list(rejections or [])


# Errors that mean "this input is bad", not "this code is wrong".
DATA_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    ValidationError,
    ValueError,
    KeyError,
    OSError,
    json.JSONDecodeError,
)


@contextmanager
def model_errors(model: str) -> Iterator[None]:
    """Run one item through a neural network: a RuntimeError from it (PyTorch's error for a shape it cannot take,
    an out-of-memory image, an interpolation to zero size) fails that item only, as a DataError naming the model.

    A model that fails on *every* item is caught by `check_not_systemic` instead, so a broken model or device is
    still a failed partition, not a shard of rejections. Programming errors (TypeError, AttributeError) pass."""
    try:
        yield
    except RuntimeError as err:  # includes torch.OutOfMemoryError; ShardFailure never comes from a model call
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"{model} failed on this item: {type(err).__name__}: {first[:300]}") from err


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


def check_not_systemic(report: StageReport, max_examples: int = 5) -> None:
    """Raise ShardFailure when every item of a non-empty shard was rejected.

    One bad item is a rejection; all of them is a cause shared by all (a model that fails on every input, no
    estimator configured, a filter threshold that lets nothing through, a wrong source path). Publishing an empty
    shard would hide that and replace a good previous version, so the stage fails instead, with the first
    reasons and a count per reason in its message. Item-level rejections of parts (an object of a scene) do not
    count: only whole items (`report.num_in` of them) that produced nothing."""
    if report.num_in == 0 or report.num_out > 0 or not report.rejections:
        return
    counts = Counter(reason_kind(r.reason) for r in report.rejections)
    by_reason = "; ".join(f"{reason} ({count})" for reason, count in counts.most_common(5))
    examples = "\n".join(f"  {r.item}: {r.reason[:300]}" for r in report.rejections[:max_examples])
    raise ShardFailure(
        f"{report.stage}/{report.shard}: all {report.num_in} items were rejected, so the cause is shared by all "
        f"of them, not one bad item; the previous version of the shard (if any) is kept. By reason: {by_reason}. "
        f"First reasons:\n{examples}",
        report.rejections,
    )


def reason_kind(reason: str) -> str:
    """Group key of a rejection reason: the error type and the text up to the next ': ', so per-item details
    (paths, numbers) do not split a histogram of reasons."""
    head = reason.split(": ", 2)
    return ": ".join(head[:2])[:100] if len(head) > 1 else reason[:100]
