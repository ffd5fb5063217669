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

__all__ = ["PUBLISHED_WARNING", "SYNTHETIC_DATASET", "SYNTHETIC_WARNING", "UNKNOWN_CARD", "card_lines",
           "card_markdown", "card_warning", "is_published", "training_card"]

SYNTHETIC_DATASET = "synthetic"
SYNTHETIC_WARNING = ("trained only on SYNTHETIC data (forensight synth): its verdicts on real footage are not "
                     "meaningful; train on a real dataset (e.g. FaceForensics++) before trusting them")
PUBLISHED_WARNING = ("published weights, not trained by this installation: the paper's numbers were measured by "
                     "its authors on their test sets, not on your videos")
UNKNOWN_CARD = ("unknown: this model file predates model cards (it does not say what it was trained on); "
                "treat its verdicts with care")


def training_card(splits: Mapping[str, Iterable[Any]], *, cache: str = "", preprocess_hash: str = "",
                  now: _dt.datetime | None = None, fakes: str = "real",
                  pseudo_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The model card of a training run.

    Args:
        splits: ``{split: records}``, the :class:`~forensight.records.VideoRecord` of every video
            that gave at least one clip to that split (attributes ``dataset``, ``method``, ``label``).
        cache: the cache the run read.
        preprocess_hash: that cache's preprocessing hash.
        now: the training time (default: now, UTC).
        fakes: the run's ``TrainConfig.fakes``.
        pseudo_settings: how the cache's pseudo-fakes were made (``Cache.pseudo_fakes``); stored as
            ``fakes.settings`` when the run trained on pseudo-fakes (None: not recorded, an older cache).
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
            "fakes": {"mode": str(fakes), "dataset": n_fake - n_pseudo, "pseudo": n_pseudo,
                      **({"settings": dict(pseudo_settings)} if n_pseudo and pseudo_settings is not None else {})},
            "trained_at": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "cache": str(cache), "preprocess_hash": str(preprocess_hash)}


def card_warning(card: Mapping[str, Any] | None) -> str | None:
    """The warning a verdict of a model with this card must carry, or None."""
    if not card:
        return UNKNOWN_CARD
    if is_published(card):
        if card.get("threshold_calibrated"):
            return PUBLISHED_WARNING
        return (f"{PUBLISHED_WARNING}; the decision threshold is UNCALIBRATED ({card.get('threshold_note') or '?'}): "
                "fit one on your own labelled validation videos with `forensight calibrate`")
    return SYNTHETIC_WARNING if card.get("synthetic_only") else None


def is_published(card: Mapping[str, Any] | None) -> bool:
    """True for the card of an imported published checkpoint (``models.published.published_card``)."""
    return bool(card) and card.get("source") == "published"


def _published_lines(card: Mapping[str, Any]) -> list[str]:
    ds = ", ".join(f"{k} ({v})" for k, v in (card.get("datasets") or {}).items()) or "?"
    methods = ", ".join(card.get("methods") or []) or "?"
    rep = ", ".join(f"{k} {v}" for k, v in (card.get("reported") or {}).items())
    sha = card.get("sha256") or "?"
    check = ("matches the published hash" if card.get("sha256_verified") else
             "no published hash to compare with" if not card.get("sha256_published") else
             "DOES NOT match the published hash")
    lines = [f"source: published checkpoint {card.get('published', '?')}: {card.get('title', '')}",
             f"trained by {card.get('trained_by', 'its authors')} on {ds}, methods {methods}"
             + (f", {card['compression']}" if card.get("compression") else ""),
             f"paper: {card.get('paper', '?')}; reported: {rep or 'none'} ({card.get('reported_note', '')})",
             f"file sha256 {sha} ({check}); imported {card.get('imported_at', '?')}"]
    if card.get("calibration"):
        lines.append(f"threshold and temperature fitted on: {card['calibration']}")
    return lines


def card_lines(card: Mapping[str, Any] | None) -> list[str]:
    """The card as short human-readable lines (table header, HTML report)."""
    if not card:
        return [UNKNOWN_CARD]
    if is_published(card):
        lines = _published_lines(card)
        w = card_warning(card)
        return [*lines, f"WARNING: {w}"] if w else lines

    def fmt(d: Mapping[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"

    v = card.get("videos") or {}
    parts = [f"{s}: {c.get('real', 0)} real + {c.get('fake', 0)} fake" for s, c in v.items()]
    lines = [f"trained on {fmt(card.get('datasets') or {})} ({'; '.join(parts) or 'no videos'})",
             f"methods: {fmt(card.get('methods') or {})}",
             *([(f"fakes: {fk.get('mode')} ({fk.get('dataset', 0)} dataset fakes, {fk.get('pseudo', 0)} "
                 "pseudo-fakes made from its real videos)")] if (fk := card.get("fakes")) else []),
             *([_pseudo_line(fk["settings"])] if fk and fk.get("settings") else []),
             f"trained {card.get('trained_at', '?')}"]
    w = card_warning(card)
    if w:
        lines.append(f"WARNING: {w}")
    return lines


def _pseudo_line(st: Mapping[str, Any]) -> str:
    """How the pseudo-fakes were made, in one line."""
    return (f"pseudo-fakes: {','.join(st.get('kinds') or [])}, {st.get('per_video')} per real video, region "
            f"{st.get('region')}, sparsity {st.get('sparsity')}, {'per-frame' if st.get('per_frame') else 'per-video'} "
            f"parameters, seed {st.get('seed')}")


def _num(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def card_markdown(config: Mapping[str, Any]) -> str:
    """The ``README.md`` of a portable model folder: the model card as a readable page.

    ``config``: the folder's ``config.json`` content (``model_config``, ``input_spec``,
    ``preprocess``, ``threshold``, ``threshold_info``, ``temperature``, ``calibration``,
    ``val_metrics``, ``trained_on``). Sections: what it is, data, metrics (with their 95 %
    bootstrap intervals), decision threshold and calibration, intended use, limitations, and the
    card's warning (synthetic-only data, published weights, no card) when it has one.
    """
    mc = config.get("model_config") or {}
    spec = config.get("input_spec") or {}
    pp = config.get("preprocess") or {}
    card = config.get("trained_on")
    vm = config.get("val_metrics") or {}
    name = mc.get("name", "model")
    out = [f"# {name}", "",
           ("A Forensight deepfake video detector (portable model folder: `model.safetensors` weights, "
           "`config.json` settings, this card). Load it with `forensight.load_detector(\"<this folder>\")` or "
           "`forensight detect --model <this folder> VIDEO`; loading reads only JSON and safetensors, never code."), ""]
    w = card_warning(card)
    if w:
        out += [f"> **Warning:** {w}.", ""]
    out += ["## Model", "",
            f"- architecture: `{mc.get('arch', '?')}`, pooling `{mc.get('pooling', '?')}`",
            (f"- input: region `{spec.get('region', '?')}`, {spec.get('size', '?')} px, {spec.get('channels', '?')} "
            f"channel(s), clips of {spec.get('clip_len') or 'all sampled'} frames"),
            (f"- preprocessing: sampling `{pp.get('sampling', '?')}`, face detector `{pp.get('detector', '?')}`, "
            f"regions {', '.join(pp.get('regions') or [])}; hash `{config.get('preprocess_hash', '?')}`"), ""]
    out += ["## Data", ""]
    out += [f"- {ln}" for ln in card_lines(card) if not ln.startswith("WARNING")]
    out += ["", "## Metrics", ""]
    if is_published(card):
        rep = card.get("reported") or {}
        out += [f"Reported by the authors ({card.get('reported_note', '')}):", "",
                "| test set | AUC (%) |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rep.items()]
        out += ["", f"Citation: {card.get('citation', '')}", ""]
    if isinstance(vm.get("auc"), (int, float)):
        ci = vm.get("auc_ci") or [None, None]
        where = vm.get("note") or "the validation split of the data it was trained on"
        out += [f"Measured on {where} (video level; 95 % bootstrap interval of the AUC):", "",
                "| videos (real / fake) | AUC | 95 % interval | AP | EER | accuracy at threshold |",
                "|---|---|---|---|---|---|",
                (f"| {vm.get('n', '–')} ({vm.get('n_real', '–')} / {vm.get('n_fake', '–')}) | {_num(vm.get('auc'))} | "
                f"{_num(ci[0])}–{_num(ci[1])} | {_num(vm.get('ap'))} | {_num(vm.get('eer'))} | "
                f"{_num(vm.get('acc_at_threshold'))} |"), "",
                "These are validation figures (the videos the threshold was chosen on), not a test result."]
    elif not is_published(card):
        out += ["No validation metrics are stored with this model."]
    ti = config.get("threshold_info") or {}
    t = config.get("temperature")
    cal = config.get("calibration") or {}
    out += ["", "## Decision threshold and calibration", "",
            f"- threshold: logit {_num(config.get('threshold'), 4)}: {ti.get('text', 'chosen on the validation split')}",
            "- P(fake): " + (f"sigmoid(logit / {t:.4g}), temperature fitted on {cal.get('fitted_on', '?')} "
                             f"({cal.get('videos', '?')} videos)" if isinstance(t, (int, float)) else
                             "sigmoid(logit), uncalibrated"), ""]
    out += ["## Intended use", "",
            ("Screening face videos for manipulation, as one piece of evidence next to human review. A score is a "
            "statistical estimate from one model; it is not proof either way."), "",
            "## Limitations", "",
            ("- It only knows the manipulations, footage and compression in its training data; new generators, "
            "heavy re-encoding, low resolution or faces it cannot track lower its accuracy."),
            ("- The threshold and P(fake) hold for data like its validation data; calibrate on labelled videos like "
            "yours (`forensight calibrate`) before relying on them."),
            "- Videos without a detectable face (or too short for its clips) are not scored; they are reported as such."]
    if card and card.get("synthetic_only"):
        out.append(f"- {SYNTHETIC_WARNING}.")
    return "\n".join(out) + "\n"
