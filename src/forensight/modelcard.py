"""What a model was trained on: the model card every model file carries (torch-free).

``train`` writes it into ``model.pt`` (key ``trained_on``) from the videos that actually gave
training / validation clips; ``detect``, its JSON, table and HTML report show it, so a verdict
always says what it rests on. A model trained only on synthetic data (``forensight synth``, whose
videos carry the dataset name ``"synthetic"``) gets a visible warning: it has never seen real
manipulations or real footage's compression, so its verdicts on real videos are not meaningful.

Card fields (all JSON types):
    datasets: ``{dataset name: videos}`` over the train + val splits.
    methods: ``{method: videos}`` (``"original"`` etc. for real videos).
    videos: ``{split: {"real": n, "fake": m}}`` for "train" and "val".
    synthetic_only: True when every one of those videos is synthetic (a pseudo-fake carries its
        source video's dataset: pseudo-fakes of real footage are not synthetic, those of
        ``forensight synth`` reals are).
    fakes: ``{"mode": "real" | "pseudo" | "both", "dataset": n, "pseudo": m}``: which fakes were the
        positives (``TrainConfig.fakes``) and how many videos of each kind (train + val).
    trained_at: UTC date and time of training (ISO 8601, seconds).
    cache, preprocess_hash: where the training data came from.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SYNTHETIC_DATASET", "SYNTHETIC_WARNING", "UNKNOWN_CARD", "card_lines", "card_warning",
           "training_card"]

SYNTHETIC_DATASET = "synthetic"
SYNTHETIC_WARNING = ("trained only on SYNTHETIC data (forensight synth): its verdicts on real footage are not "
                     "meaningful; train on a real dataset (e.g. FaceForensics++) before trusting them")
UNKNOWN_CARD = ("unknown: this model file predates model cards (it does not say what it was trained on); "
                "treat its verdicts with care")


def training_card(splits: Mapping[str, Iterable[Any]], *, cache: str = "", preprocess_hash: str = "",
                  now: _dt.datetime | None = None, fakes: str = "real") -> dict[str, Any]:
    """The model card of a training run.

    Args:
        splits: ``{split: records}``, the :class:`~forensight.records.VideoRecord` of every video
            that gave at least one clip to that split (attributes ``dataset``, ``method``, ``label``).
        cache: the cache the run read.
        preprocess_hash: that cache's preprocessing hash.
        now: the training time (default: now, UTC).
        fakes: the run's ``TrainConfig.fakes``.
    """
    from forensight.records import is_pseudo

    datasets: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    videos: dict[str, dict[str, int]] = {}
    total = synthetic = n_pseudo = n_fake = 0
    for split, records in splits.items():
        counts = {"real": 0, "fake": 0}
        for r in records:
            counts["fake" if int(r.label) else "real"] += 1
            n_fake += int(r.label) == 1
            n_pseudo += int(r.label) == 1 and is_pseudo(r.method)
            datasets[str(r.dataset)] += 1
            methods[str(r.method)] += 1
            total += 1
            synthetic += str(r.dataset) == SYNTHETIC_DATASET
        videos[str(split)] = counts
    when = (now or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC)
    return {"datasets": dict(sorted(datasets.items())), "methods": dict(sorted(methods.items())), "videos": videos,
            "synthetic_only": bool(total) and synthetic == total,
            "fakes": {"mode": str(fakes), "dataset": n_fake - n_pseudo, "pseudo": n_pseudo},
            "trained_at": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "cache": str(cache), "preprocess_hash": str(preprocess_hash)}


def card_warning(card: Mapping[str, Any] | None) -> str | None:
    """The warning a verdict of a model with this card must carry, or None."""
    if not card:
        return UNKNOWN_CARD
    return SYNTHETIC_WARNING if card.get("synthetic_only") else None


def card_lines(card: Mapping[str, Any] | None) -> list[str]:
    """The card as short human-readable lines (table header, HTML report)."""
    if not card:
        return [UNKNOWN_CARD]

    def fmt(d: Mapping[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

    v = card.get("videos") or {}
    parts = [f"{s}: {c.get('real', 0)} real + {c.get('fake', 0)} fake" for s, c in v.items()]
    lines = [f"trained on {fmt(card.get('datasets') or {})} ({'; '.join(parts) or 'no videos'})",
             f"methods: {fmt(card.get('methods') or {})}",
             *([(f"fakes: {fk.get('mode')} ({fk.get('dataset', 0)} dataset fakes, {fk.get('pseudo', 0)} "
                 "pseudo-fakes made from its real videos)")] if (fk := card.get("fakes")) else []),
             f"trained {card.get('trained_at', '?')}"]
    w = card_warning(card)
    if w:
        lines.append(f"WARNING: {w}")
    return lines
