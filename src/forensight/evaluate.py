"""Evaluation: a trained model on a cache's TEST split → video scores → metrics → report files.

This is the only place that reads the test split. Scoring goes through the one scoring path
(:func:`forensight.scoring.score_split`): clips planned by :mod:`forensight.planning`, the
model file's scoring model, the device's precision policy, clip logits averaged per qualified
video id (the LipForensics protocol). The decision threshold comes from the validation split
(stored in the model file), never from the test split; ``split="val"`` reproduces the numbers
it was chosen on. A cache made with a preprocessing config other than the model's is refused.

Outputs in ``out_dir``: ``metrics.json``, ``scores.csv`` (one row per video, with its per-frame
attention shares), ``clip_scores.csv``, ``roc.png``, ``confusion.png``, ``reliability.png``, and,
when the fakes know their manipulated frames (synthetic data), ``localisation.csv`` with the
frame-level AUC of the attention against them and the attention mass inside them (summary in
``metrics.json``). With ``explain=True`` (``evaluate --explain``): ``explain.csv``, one row per fake
whose manipulated AREA is known (:func:`known_areas`: synthetic fakes and pseudo-fakes), scoring
the Grad-CAM maps of its manipulated scored frames against it
(:func:`forensight.explain.video_area_scores`), summary with bootstrap intervals in
``metrics.json["explain"]`` (the fakes that got no row, and why, under ``skipped``).

Calibration: ``metrics.json`` holds ``ece`` (15 equal-width bins of P(fake)) and ``brier`` of the
P(fake) the model reports, and ``calibration`` with the uncalibrated figures, the reliability
bins and the temperature. ``calibrate=True`` first fits a temperature on the VALIDATION split
(:func:`calibrate`, never on the split evaluated unless that is ``val``, which ``calibration``
then says) and stores it in the model file, so ``detect`` reports ``sigmoid(logit / T)`` too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forensight.cache import Cache, CacheEntry
from forensight.config import EvaluateConfig, merge
from forensight.modelfile import LoadedModel, load_model_file
from forensight.scoring import ClipPredictions, resolve_device, score_split, video_attention

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Metrics and the files written."""

    metrics: dict[str, Any]
    out_dir: Path
    predictions: ClipPredictions


def evaluate(model: str | Path | LoadedModel, cache_root: str | Path, out_dir: str | Path,
             cfg: EvaluateConfig | None = None, progress: bool = True, **overrides: Any) -> EvaluationResult:
    """Evaluate ``model`` (run dir, model.pt or loaded) on a split of the cache at ``cache_root``.

    ``cfg`` (default :class:`EvaluateConfig`) with keyword ``overrides`` of its fields, e.g.
    ``split="val"``, ``max_frames=110`` (the FaceForensics++ LipForensics protocol),
    ``device="cuda:1"``.
    """
    from forensight.metrics import compute_all
    from forensight.report import plot_confusion, plot_roc, write_json

    cfg = merge(EvaluateConfig, cfg, overrides)
    t0 = time.perf_counter()
    dev = resolve_device(cfg.device)
    lm = model if isinstance(model, LoadedModel) else load_model_file(model, device=dev)
    cache = Cache.open(cache_root, expect_hash=lm.preprocess_hash)
    fitted = calibrate(lm, cache, cfg, progress=progress) if cfg.calibrate else None
    preds, ds = score_split(lm, cache, cfg.split, batch_size=cfg.batch_size, max_frames=cfg.max_frames,
                            max_clips=cfg.max_clips, device=dev, progress=progress, features=cfg.features,
                            methods=cfg.methods, explain=cfg.explain)
    ids, y, s = preds.video_scores()
    if len(set(y.tolist())) < 2:
        raise ValueError(f"split {cfg.split!r} of {cache.root} has videos of one class only "
                         f"({len(ids)} videos); AUC needs real and fake videos")
    metrics = compute_all(y, s, threshold=lm.threshold, clip_y=np.asarray(preds.labels),
                          clip_s=np.asarray(preds.logits), n_boot=cfg.n_bootstrap)
    mc = lm.model_config
    metrics.update({"split": cfg.split, "cache": str(Path(cache_root).resolve()), "model": str(lm.path),
                    "preset": mc.name, "arch": mc.arch, "region": lm.input_spec.region, "pooling": mc.pooling,
                    "threshold_source": lm.threshold_source, "device": str(dev),
                    "max_frames": cfg.max_frames, "max_clips": cfg.max_clips, "not_scored": ds.unscored,
                    "scored_from": "frozen-encoder features" if ds.features is not None else "crops",
                    "methods": list(cfg.methods),
                    "failed_in_preprocessing": [r["video_id"] for r in cache.rows()
                                                if r["status"] == "failed" and r["split"] == cfg.split],
                    "seconds": round(time.perf_counter() - t0, 2)})
    metrics.update(_calibration_metrics(lm, y, s, cfg, fitted))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loc_rows = _localisation(ds.records, preds)
    if loc_rows:
        from forensight.metrics import summarise_localisation
        from forensight.report import write_table

        summary = summarise_localisation([r["loc"] for r in loc_rows])
        metrics["localisation"] = {"videos": summary["n_videos"], **{
            k: summary.get(f"{k}_mean") for k in ("frame_auc", "mass_inside", "share_inside", "lift")}}
        write_table([{"video_id": r["video_id"], **(r["loc"] or {})} for r in loc_rows], None,
                    out / "localisation.csv")
    if cfg.explain:
        from forensight.explain import EXPLAIN_COLUMNS, summarise_area_scores
        from forensight.report import write_table

        ex_rows, ex_skipped = _explain_rows(cache, ds, preds, lm)
        metrics["explain"] = {
            **summarise_area_scores(ex_rows, n_boot=max(1, cfg.n_bootstrap)),
            "method": "Grad-CAM of the clip logit, last conv block (model.cam_layer())",
            "truth": "per manipulated frame, the box of the blended region: synthetic fakes from their "
                     "dataset.json, pseudo-fakes from the ground truth stored in their cache entry",
            "skipped": ex_skipped,
            "by_method": {m: summarise_area_scores([r for r in ex_rows if r["method"] == m],
                                                   n_boot=max(1, cfg.n_bootstrap))
                          for m in sorted({r["method"] for r in ex_rows})}}
        write_table(ex_rows, None, out / "explain.csv", columns=EXPLAIN_COLUMNS)
    write_json(metrics, out / "metrics.json")
    _write_scores(out / "scores.csv", ids, y, s, preds, lm)
    _write_clip_scores(out / "clip_scores.csv", preds)
    plot_roc(y, s, out / "roc.png", label=f"{mc.name} (AUC {metrics['auc']:.3f})")
    plot_confusion(np.asarray(metrics["confusion"]), out / "confusion.png")
    _plot_reliability(metrics["calibration"], out / "reliability.png", cfg.split)
    return EvaluationResult(metrics=metrics, out_dir=out, predictions=preds)


def _fit_temperature(model: LoadedModel, cache: Cache, cfg: EvaluateConfig, progress: bool
                     ) -> tuple[float, dict[str, Any], np.ndarray, np.ndarray]:
    """Score the VALIDATION split of ``cache`` (the one scoring path, ``cfg``'s options) and fit a
    temperature on its video logits: ``(T, info, y, s)`` with ``y``/``s`` the video labels/logits."""
    from forensight.metrics import calibration_summary, fit_temperature

    preds, _ = score_split(model, cache, "val", batch_size=cfg.batch_size, max_frames=cfg.max_frames,
                           max_clips=cfg.max_clips, device=resolve_device(cfg.device), progress=progress,
                           features=cfg.features, methods=cfg.methods)
    _, y, s = preds.video_scores()
    if len(set(y.tolist())) < 2:
        raise ValueError(f"cannot calibrate on the validation split of {cache.root}: it has videos of one "
                         f"class only ({len(y)} videos)")
    t = fit_temperature(y, s)
    before = calibration_summary(y, s, None, cfg.ece_bins)
    after = calibration_summary(y, s, t, cfg.ece_bins)
    info = {"fitted_on": "the validation split", "cache": str(Path(cache.root).resolve()), "videos": len(y),
            "method": "temperature scaling (NLL of sigmoid(logit / T), Guo et al. 2017)",
            "val_ece_before": before["ece"], "val_ece_after": after["ece"],
            "val_brier_before": before["brier"], "val_brier_after": after["brier"],
            "ece_bins": int(cfg.ece_bins), "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "max_frames": int(cfg.max_frames), "max_clips": int(cfg.max_clips)}
    return t, info, y, s


def calibrate(model: LoadedModel, cache: Cache, cfg: EvaluateConfig | None = None, progress: bool = False,
              **overrides: Any) -> dict[str, Any]:
    """Fit a temperature on the VALIDATION split of ``cache`` and store it in the run's model file.

    The validation videos are scored by the one scoring path with ``cfg``'s options (batch size,
    frames, clips, features, methods); :func:`forensight.metrics.fit_temperature` minimises the NLL
    of ``sigmoid(logit / T)`` over their video logits. The model file gets ``temperature`` and
    ``calibration`` (:meth:`LoadedModel.store_temperature`); every later P(fake) (evaluate, detect,
    robustness) uses it. The threshold (a logit) and so every verdict are unchanged. Returns the
    stored ``calibration`` entry (temperature, videos, validation NLL / ECE / Brier before and after).
    ValueError (nothing stored) when the fit is degenerate (see ``fit_temperature``). Model folders
    and imported checkpoints are never changed in place: :func:`calibrate_model` writes a new folder.
    """
    cfg = merge(EvaluateConfig, cfg, overrides)
    model.check_writable()  # before any scoring
    t, info, _, _ = _fit_temperature(model, cache, cfg, progress)
    model.store_temperature(t, info)
    return {"temperature": t, **info}


@dataclass
class CalibrationResult:
    """What :func:`calibrate_model` wrote: the new model folder, its threshold (logit), temperature
    and the validation metrics at that threshold."""

    folder: Path
    threshold: float
    temperature: float
    metrics: dict[str, Any]

    @property
    def threshold_p(self) -> float:
        """The threshold as the calibrated P(fake) it corresponds to."""
        from forensight.metrics import apply_temperature

        return float(apply_temperature(self.threshold, self.temperature))


def calibrate_model(model: str | Path | LoadedModel, cache_root: str | Path, out: str | Path | None = None,
                    cfg: EvaluateConfig | None = None, rule: str = "eer", progress: bool = True,
                    **overrides: Any) -> CalibrationResult:
    """Fit the temperature AND the decision threshold of ``model`` on the labelled VALIDATION split
    of the cache at ``cache_root`` (the user's own videos, preprocessed with the model's
    preprocessing) and write them into a NEW model folder ``out`` (default: ``<model>_calibrated``
    next to the model); the model itself is never modified.

    The temperature is the one :func:`calibrate` fits; the threshold is
    :func:`forensight.metrics.choose_threshold` with ``rule`` ("eer", the rule ``train`` uses;
    "youden"; "accuracy") on the same video logits. ``cfg`` / ``overrides``: scoring options
    (``max_frames=110`` for the FaceForensics++ LipForensics protocol, ``batch_size``, ``device``...).
    FileExistsError (before any scoring) when ``out`` exists and is not empty.
    """
    from forensight.metrics import choose_threshold, compute_all
    from forensight.modelcard import is_published
    from forensight.modelfile import CONFIG_FILE, save_model_folder

    cfg = merge(EvaluateConfig, cfg, overrides)
    lm = model if isinstance(model, LoadedModel) else load_model_file(model, device=resolve_device(cfg.device))
    if out is None:
        base = lm.path.parent if lm.path.name in ("model.pt", CONFIG_FILE) else lm.path
        out = base.parent / f"{base.stem}_calibrated"
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists; calibration writes a NEW model folder and never overwrites "
                              "one: choose another --out")
    cache = Cache.open(cache_root, expect_hash=lm.preprocess_hash)
    t, info, y, s = _fit_temperature(lm, cache, cfg, progress)
    thr = float(choose_threshold(y, s, rule=rule))
    metrics = compute_all(y, s, threshold=thr, n_boot=cfg.n_bootstrap)
    metrics.update({"note": f"the {len(y)} validation videos of {info['cache']} the threshold and temperature "
                            "were fitted on", "threshold_rule": rule})
    where = f"{len(y)} labelled validation videos ({info['cache']}), {rule} rule"
    changes: dict[str, Any] = {
        "threshold": thr, "temperature": t, "calibration": info, "val_metrics": metrics,
        "threshold_info": {"source": "calibration", "calibrated": True, "rule": rule,
                           "text": f"fitted on {where}", "previous": lm.threshold_info,
                           "previous_threshold": float(lm.threshold)},
        "calibrated_from": str(lm.path)}
    card = lm.trained_on
    if is_published(card):
        changes["trained_on"] = {**card, "threshold_calibrated": True, "calibration": where}
    folder = save_model_folder(lm, out, **changes)
    return CalibrationResult(folder=folder, threshold=thr, temperature=t, metrics=metrics)


def _calibration_metrics(lm: LoadedModel, y: np.ndarray, s: np.ndarray, cfg: EvaluateConfig,
                         fitted: dict[str, Any] | None) -> dict[str, Any]:
    """``ece`` / ``brier`` of the reported P(fake) and the ``calibration`` block of ``metrics.json``."""
    from forensight.metrics import calibration_summary

    raw = calibration_summary(y, s, None, cfg.ece_bins)
    t = lm.temperature
    reported = calibration_summary(y, s, t, cfg.ece_bins) if t is not None else raw
    info = dict(lm.payload.get("calibration") or {}) if t is not None else {}
    block = {"p_fake": lm.calibration, "temperature": t, "n_bins": int(cfg.ece_bins),
             "ece_uncalibrated": raw["ece"], "brier_uncalibrated": raw["brier"],
             "ece_calibrated": reported["ece"] if t is not None else None,
             "brier_calibrated": reported["brier"] if t is not None else None,
             "fitted_now": fitted is not None, "fit": info or None,
             "fitted_on_evaluated_split": t is not None and cfg.split == "val",
             "bins_uncalibrated": raw["bins"], "bins_calibrated": reported["bins"] if t is not None else None}
    return {"ece": reported["ece"], "brier": reported["brier"], "calibration": block}


def _plot_reliability(block: dict[str, Any], path: Path, split: str) -> None:
    from forensight.report import plot_reliability

    curves = {"sigmoid(logit)": {"bins": block["bins_uncalibrated"], "ece": block["ece_uncalibrated"],
                                 "brier": block["brier_uncalibrated"]}}
    if block["temperature"] is not None:
        curves[f"sigmoid(logit / {block['temperature']:.3g})"] = {
            "bins": block["bins_calibrated"], "ece": block["ece_calibrated"], "brier": block["brier_calibrated"]}
    plot_reliability(curves, path, title=f"Reliability of P(fake), {split} split")


def _localisation(records: dict[str, Any], preds: ClipPredictions) -> list[dict[str, Any]]:
    """Per fake test video whose manipulated frames are known (synthetic data): how the attention
    shares fall on them (:func:`forensight.metrics.attention_localisation`)."""
    from forensight.metrics import attention_localisation

    rows = []
    for vid, (idx, w) in video_attention(preds).items():
        rec = records[vid]
        truth = rec.manipulated_frames
        if rec.label == 1 and truth:
            rows.append({"video_id": vid, "loc": attention_localisation(w, idx, truth)})
    return rows


def known_areas(entry: CacheEntry) -> dict[int, list[float]] | None:
    """WHERE a cached fake is manipulated, whichever source knows it: per manipulated source frame
    number, the ``[x0, y0, x1, y1]`` box (native frame pixel edges) of the blended area.

    * pseudo-fakes (method ``pseudo_*``): the ground truth stored in the entry at preprocessing
      time (``meta["pseudo"]``, :func:`forensight.pseudofake.truth_areas`, checked against the
      entry's sampled frame numbers); ``{}`` when it holds no box;
    * other fakes: the synthetic dataset's ``dataset.json`` by the video's path
      (:func:`forensight.synth.manipulated_areas`); None outside a synthetic dataset.

    None for real videos. ValueError when the stored truth is inconsistent.
    """
    from forensight.pseudofake import truth_areas
    from forensight.records import is_pseudo
    from forensight.synth import manipulated_areas

    rec = entry.record
    if rec.label != 1:
        return None
    if is_pseudo(rec.method):
        return truth_areas(entry.meta.get("pseudo") or {}, np.asarray(entry.indices))
    return manipulated_areas(rec.path)


def _explain_rows(cache: Cache, ds: Any, preds: ClipPredictions, lm: LoadedModel
                  ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Per fake video whose manipulated area is known (:func:`known_areas`: synthetic fakes and
    pseudo-fakes): its Grad-CAM maps on the manipulated scored frames against those areas
    (:func:`forensight.explain.video_area_scores`), with the crops' geometry from the cache.

    Returns the rows and ``{video_id: why}`` for the fakes with a known source of truth that got
    no row (no stored area, an inconsistent truth, no manipulated frame among the scored ones)."""
    from forensight.explain import unit_square_affine, video_area_scores
    from forensight.records import FaceTrack
    from forensight.regions import crop_to_frame

    spec = lm.input_spec
    by_vid: dict[str, list[int]] = {}
    for i, vid in enumerate(preds.video_ids):
        by_vid.setdefault(vid, []).append(i)
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for vid, clip_rows in by_vid.items():
        if ds.records[vid].label != 1:
            continue
        entry = cache.load(vid, regions=[spec.region])
        try:
            areas = known_areas(entry)
        except ValueError as e:
            log.warning("explain: %s skipped: %s", vid, e)
            skipped[vid] = str(e)
            continue
        if areas is None:
            continue
        if not areas:
            skipped[vid] = "its stored ground truth holds no manipulated area"
            continue
        track = FaceTrack(boxes=np.asarray(entry.boxes), landmarks=np.asarray(entry.landmarks),
                          observed=np.asarray(entry.observed))
        video = entry.meta.get("video") or {}
        affines = crop_to_frame(spec.region, track, (int(video["height"]), int(video["width"])), cache.config,
                                np.asarray(entry.indices))
        side = int(entry.regions[spec.region].shape[1])
        window = spec.crop_window(side, side)
        pos = {int(f): k for k, f in enumerate(np.asarray(entry.indices))}
        cams, units, boxes = [], [], []
        for r in clip_rows:
            for j, f in enumerate(preds.frame_indices[r]):
                if int(f) in areas:
                    cams.append(preds.cams[r][j])
                    units.append(unit_square_affine(affines[pos[int(f)]], window, side))
                    boxes.append(np.asarray(areas[int(f)], np.float64))
        scores = video_area_scores(cams, units, boxes)
        if scores is None:
            skipped[vid] = "none of its manipulated frames was scored"
            continue
        rows.append({"video_id": vid, "method": entry.record.method, "region": spec.region, **scores})
    return rows, skipped


def _write_scores(path: Path, ids: list[str], y: np.ndarray, s: np.ndarray, preds: ClipPredictions,
                  lm: LoadedModel) -> None:
    from forensight.report import write_table

    threshold = lm.threshold
    att = video_attention(preds)
    n_clips: dict[str, int] = {}
    for v in preds.video_ids:
        n_clips[v] = n_clips.get(v, 0) + 1
    rows = []
    for vid, label, logit in zip(ids, y, s):
        idx, wt = att[vid]
        rows.append({"video_id": vid, "label": int(label), "logit": f"{logit:.6f}", "p_fake": f"{lm.p_fake(float(logit)):.6f}",
                     "predicted": int(logit >= threshold), "n_clips": n_clips[vid], "frame_indices": idx.tolist(),
                     "attention": [round(float(v), 5) for v in wt]})
    write_table(rows, None, path, columns=["video_id", "label", "logit", "p_fake", "predicted", "n_clips",
                                           "frame_indices", "attention"])


def _write_clip_scores(path: Path, preds: ClipPredictions) -> None:
    from forensight.report import write_table

    rows = [{"video_id": vid, "label": int(y), "clip_start": st, "logit": f"{lg:.6f}"}
            for vid, y, st, lg in zip(preds.video_ids, preds.labels, preds.starts, preds.logits)]
    write_table(rows, None, path, columns=["video_id", "label", "clip_start", "logit"])
