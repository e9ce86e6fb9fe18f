"""Optional model-driven stages over the QA release, each off by default and each budgeted and cached through
`assets.llm.LLMClient` (any OpenAI-compatible endpoint):

- **Rephrasing** (`rephrase_conversations`): the template questions of one image become a natural multi-turn
  conversation. Only the questions are rewritten (answers stay the generator's, so they stay correct), and a
  rewrite is kept only when every object reference of each question survives verbatim: a reference is what makes
  a question unambiguous ("the second chair from the left"), a paraphrase of it ("a chair on the left") is not.
- **Judging** (`judge_pairs`): a model looks at the image and one question/answer pair and says whether to keep it,
  with its reason; the verdicts are a curation list next to the data (nothing is deleted).
- **Diversity selection** (`diverse_subset`): farthest-point sampling over CLIP image embeddings (cosine distance)
  picks a budgeted subset of images that covers the collection instead of repeating its most common look.

`curate_release` runs the enabled ones over a built `qa_dataset` and writes `qa_dataset/curation/`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from assets.llm import BudgetExceeded, LLMClient, LLMError
from assets.storage import atomic_dir, atomic_write_json, load_rgb, write_jsonl

CURATION_DIR = "curation"
REPHRASE_FORMATS = (
    "free_form",
    "true_false",
)  # multiple-choice turns keep their listed options: not rephrased


class RephrasedTurn(BaseModel):
    question: str = Field(min_length=1)


class Rephrasing(BaseModel):
    turns: list[RephrasedTurn]


class Verdict(BaseModel):
    keep: bool
    reason: str = Field(min_length=1)


@dataclass
class CurationReport:
    """Counts for asset metadata: what each stage did and why items were left out."""

    conversations: int = 0
    rephrase_rejected: dict[str, int] = field(default_factory=dict)
    judged: int = 0
    judged_dropped: int = 0
    judge_failed: int = 0
    budget_exhausted: bool = False
    subset_size: int = 0

    def count(self, reason: str) -> None:
        self.rephrase_rejected[reason] = self.rephrase_rejected.get(reason, 0) + 1

    def as_metadata(self) -> dict[str, object]:
        return {
            "curation_conversations": self.conversations,
            "curation_rephrase_rejected": sum(self.rephrase_rejected.values()),
            "curation_judged": self.judged,
            "curation_judged_dropped": self.judged_dropped,
            "curation_judge_failed": self.judge_failed,
            "curation_budget_exhausted": self.budget_exhausted,
            "curation_subset_size": self.subset_size,
        }


REPHRASE_SYSTEM = (
    "You rewrite template questions about one image into a natural multi-turn conversation between a user and an "
    "assistant. Rewrite only the questions, one rewritten question per input question, in the same order, each "
    "asking exactly the same thing. Every object reference given in quotes must appear in its question exactly as "
    "written (they name objects unambiguously); do not add facts or answers."
)


def missing_references(question: str, references: Sequence[str]) -> list[str]:
    """The references a rewritten question lost (case-insensitive, verbatim)."""
    lowered = question.lower()
    return [r for r in references if r.lower() not in lowered]


def rephrase_image(
    client: LLMClient, rows: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, str]] | None, str]:
    """One image's pairs as a rewritten conversation (LLaVA turns), or None and the reason it was rejected."""
    listing = "\n".join(
        f"{i + 1}. {row['question']}  [references: {', '.join(repr(r) for r in row['references']) or 'none'}]"
        for i, row in enumerate(rows)
    )
    reply = client.complete_json(
        [
            {"role": "system", "content": REPHRASE_SYSTEM},
            {
                "role": "user",
                "content": f'Questions:\n{listing}\n\nReturn {{"turns": [{{"question": ...}}, ...]}} '
                f"with exactly {len(rows)} turns.",
            },
        ],
        Rephrasing,
    )
    if len(reply.turns) != len(rows):
        return None, "turn count changed"
    turns: list[dict[str, str]] = []
    for i, (row, turn) in enumerate(zip(rows, reply.turns, strict=True)):
        if missing_references(turn.question, list(row["references"])):
            return None, "a reference did not survive"
        prefix = "<image>\n" if i == 0 else ""
        turns += [
            {"from": "human", "value": prefix + turn.question.strip()},
            {"from": "gpt", "value": str(row["answer"])},
        ]
    return turns, ""


def rephrase_conversations(
    client: LLMClient,
    rows: Sequence[Mapping[str, Any]],
    max_images: int,
    max_turns: int = 6,
    report: CurationReport | None = None,
) -> list[dict[str, Any]]:
    """Multi-turn LLaVA records for up to `max_images` images (free-form and true/false pairs, `max_turns` per
    image), each checked by `rephrase_image`; rejected rewrites are counted by reason in `report`."""
    report = report if report is not None else CurationReport()
    by_image: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["format"] in REPHRASE_FORMATS and row.get("draw_boxes") in (None, "", "[]"):
            by_image.setdefault(str(row["image_file"]), []).append(row)
    records = []
    for image, members in list(by_image.items())[:max_images]:
        chunk = members[:max_turns]
        try:
            turns, reason = rephrase_image(client, chunk)
        except BudgetExceeded:
            report.budget_exhausted = True
            break
        except LLMError:
            report.count("endpoint failure")
            continue
        if turns is None:
            report.count(reason)
            continue
        records.append(
            {
                "id": f"{chunk[0]['qa_id']}+rephrased",
                "image": image,
                "conversations": turns,
                "qa_ids": [r["qa_id"] for r in chunk],
            }
        )
    report.conversations = len(records)
    return records


JUDGE_SYSTEM = (
    "You curate a spatial visual question answering dataset. Given the image, one question and the answer computed "
    "from 3D ground truth, decide whether the pair should be kept: drop it when the question is ill-formed, cannot "
    "be understood from the image (an object it names is not identifiable), or is ambiguous. Give a short reason."
)


def judge_pairs(
    client: LLMClient,
    rows: Sequence[Mapping[str, Any]],
    root: Path,
    max_items: int,
    report: CurationReport | None = None,
) -> list[dict[str, Any]]:
    """Keep/drop verdicts with reasons for up to `max_items` pairs (`qa_id`, `keep`, `reason`); pairs the endpoint
    failed on are counted, not judged."""
    report = report if report is not None else CurationReport()
    verdicts = []
    for row in list(rows)[:max_items]:
        try:
            verdict = client.complete_json(
                [
                    {"role": "system", "content": JUDGE_SYSTEM},
                    {
                        "role": "user",
                        "content": f"Question: {row['question']}\nAnswer: {row['answer']}\n"
                        'Reply as JSON {"keep": true|false, "reason": "..."}.',
                    },
                ],
                Verdict,
                images=[Path(root) / str(row["image_file"])],
            )
        except BudgetExceeded:
            report.budget_exhausted = True
            break
        except LLMError:
            report.judge_failed += 1
            continue
        verdicts.append({"qa_id": row["qa_id"], "keep": verdict.keep, "reason": verdict.reason})
    report.judged = len(verdicts)
    report.judged_dropped = sum(not v["keep"] for v in verdicts)
    return verdicts


def farthest_point_sampling(embeddings: np.ndarray, k: int, start: int = 0) -> list[int]:
    """Indices of `k` rows chosen greedily, each the farthest (cosine distance) from those already chosen.

    A plain O(n k) loop: n is the number of images of a release (thousands), k the budget; no library offers it
    for cosine distance on a matrix without building the full n x n distance matrix."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array, got shape {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(x))
    chosen = [start]
    nearest = 1.0 - x @ x[start]  # distance of every row to its nearest chosen row
    while len(chosen) < k:
        nearest[chosen] = -np.inf
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, 1.0 - x @ x[pick])
    return chosen


def clip_image_embeddings(scorer: Any, images: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """(n, d) L2-normalised CLIP image embeddings with an `assets.wild.clip.ClipScorer`'s model."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = [np.array(i, copy=True) for i in images[start : start + batch_size]]  # writable for torch
            pixels = scorer.image_processor(images=chunk, return_tensors="pt")["pixel_values"]
            features = scorer.model.get_image_features(pixel_values=pixels.to(scorer.device))
            features = getattr(features, "pooler_output", features)
            out.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def diverse_subset(root: Path, image_files: Sequence[str], scorer: Any, k: int) -> list[str]:
    """`k` of the images (relative paths), chosen by farthest-point sampling over their CLIP embeddings."""
    files = sorted(set(image_files))
    if not files:
        return []
    embeddings = clip_image_embeddings(scorer, [load_rgb(Path(root) / f) for f in files])
    return [files[i] for i in farthest_point_sampling(embeddings, k)]


class CurationSettings(BaseModel):
    """Which stages run and their budgets (all 0 = off, the default). The Dagster layer fills it from
    HISPATIAL_QA_REPHRASE_IMAGES, HISPATIAL_QA_JUDGE_ITEMS, HISPATIAL_QA_DIVERSE_SUBSET and HISPATIAL_QA_CLIP_MODEL
    (`tiny` or a CLIP hub id / path)."""

    rephrase_images: int = Field(default=0, ge=0)
    judge_items: int = Field(default=0, ge=0)
    subset_size: int = Field(default=0, ge=0)
    clip_model: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.rephrase_images or self.judge_items or self.subset_size)

    def scorer(self, device: str = "cpu") -> Any | None:
        """The CLIP scorer for diversity selection, None when no subset is asked for; a subset without a model is
        a configuration error (ValueError), not a silent skip."""
        if not self.subset_size:
            return None
        if not self.clip_model:
            raise ValueError("a diverse subset needs a CLIP model (HISPATIAL_QA_CLIP_MODEL)")
        from assets.wild.clip import ClipScorer

        if self.clip_model == "tiny":
            return ClipScorer.tiny(["a photo"])
        return ClipScorer.from_pretrained(self.clip_model, device=device)


def curate_release(
    root: Path,
    client: LLMClient | None = None,
    *,
    rephrase_images: int = 0,
    judge_items: int = 0,
    scorer: Any | None = None,
    subset_size: int = 0,
) -> CurationReport:
    """Run the enabled stages over the built release and write `qa_dataset/curation/` (swapped in atomically):
    `conversations.json` (rephrased LLaVA records), `judgements.jsonl` (verdicts with reasons),
    `diverse_subset.json` (image paths), `report.json`. A stage needs its model: the LLM `client` for rephrasing and
    judging, a CLIP `scorer` for the subset."""
    from assets.qa.dataset import STAGE, load_qa_dataset

    report = CurationReport()
    rows = load_qa_dataset(root).to_dict("records")
    for row in rows:
        row["references"] = list(row["references"])
    out: dict[str, Any] = {}
    if client is not None and rephrase_images > 0:
        out["conversations.json"] = rephrase_conversations(client, rows, rephrase_images, report=report)
    if client is not None and judge_items > 0 and not report.budget_exhausted:
        out["judgements.jsonl"] = judge_pairs(client, rows, root, judge_items, report=report)
    if scorer is not None and subset_size > 0:
        subset = diverse_subset(root, [str(r["image_file"]) for r in rows], scorer, subset_size)
        out["diverse_subset.json"] = subset
        report.subset_size = len(subset)
    with atomic_dir(Path(root) / STAGE / CURATION_DIR) as tmp:
        for name, value in out.items():
            if name.endswith(".jsonl"):
                write_jsonl(tmp / name, value)
            else:
                atomic_write_json(tmp / name, value)
        atomic_write_json(
            tmp / "report.json", {**report.as_metadata(), "rephrase_rejected": report.rephrase_rejected}
        )
    return report


def read_curation_report(root: Path) -> dict[str, Any]:
    from assets.qa.dataset import STAGE

    return json.loads((Path(root) / STAGE / CURATION_DIR / "report.json").read_text(encoding="utf-8"))
