"""``forensight robustness``: a trained model under the DeeperForensics-1.0 perturbations.

For one split of a dataset (the test split by default) and each variant (clean, then every
perturbation type x level of :class:`forensight.config.RobustnessConfig`):

1. **perturb** the raw videos, real and fake alike (:func:`forensight.perturbations.perturb_video`,
   seeded by the config's seed and each video's qualified id), in worker processes;
2. **preprocess** them with the model's own preprocessing (:func:`forensight.preprocess.run_preprocess`)
   into the variant's cache, ``<cache_dir>/<variant>-<hash>``, whose config carries the
   perturbation (``PreprocessConfig.perturbation``), so its hash differs from the clean cache's
   and the caches are never mixed. Resumable: finished and failed videos are skipped on a rerun,
   and ``shard=(i, n)`` splits the perturbation and preprocessing work across machines (every
   shard writes into the same caches; scoring waits for a run without ``shard``);
3. **score** every variant with the one scoring path (:func:`forensight.scoring.score_split`, from
   the crops) and compute the video-level metrics (:mod:`forensight.metrics`): AUC with a bootstrap
   95 % interval, AP, EER, accuracy at the model's validation threshold, ECE and Brier of its P(fake).

Outputs in ``out_dir``: ``robustness.csv`` (one row per model x variant), ``robustness_scores.csv``
(every video's logit per variant: paired comparisons later need them), ``robustness_table.md`` /
``.csv`` (the paper's table: clean, each type averaged over its levels, the average over the
reference types and the drop from clean; then AUC per type and level), ``robustness.png`` (AUC
against level per type, one panel per model) and ``robustness.json`` (config, models, caches, time).

A video whose perturbed version cannot be preprocessed (e.g. no face found after strong blur) is
recorded as failed in that variant's cache with its reason and left out of that row, never
replaced: each row counts its ``failed`` videos, and the clean row is the comparison.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensight.config import PreprocessConfig, RobustnessConfig, merge
from forensight.perturbations import REFERENCE_TYPES, TYPES, Perturbation
from forensight.records import PreprocessError, VideoRecord, safe_name
from forensight.report import scored_all  # the one completeness rule; re-exported here

log = logging.getLogger(__name__)

__all__ = ["RobustnessResult", "Variant", "format_table", "robustness_table", "run_robustness", "scored_all",
           "variants"]

CSV_COLUMNS = ["model", "type", "level", "param", "perturbation", "n", "n_real", "n_fake", "failed",
               "failed_reasons", "not_scored", "auc", "auc_lo", "auc_hi", "ap", "eer", "acc_at_threshold",
               "threshold", "ece", "brier", "note", "cache"]


@dataclass(frozen=True)
class Variant:
    """One condition of the table: the clean videos (``perturbation`` None) or one type x level."""

    perturbation: Perturbation | None = None

    @property
    def name(self) -> str:
        return "clean" if self.perturbation is None else self.perturbation.name

    @property
    def type(self) -> str:
        return "clean" if self.perturbation is None else self.perturbation.type

    @property
    def level(self) -> int:
        return 0 if self.perturbation is None else self.perturbation.level

    def config(self, base: PreprocessConfig) -> PreprocessConfig:
        """The preprocessing config of this variant's cache: ``base`` with the perturbation recorded."""
        clean = base.without_perturbation()
        if self.perturbation is None:
            return clean
        return dataclasses.replace(clean, perturbation=self.perturbation.spec)


def variants(cfg: RobustnessConfig) -> list[Variant]:
    """Clean first, then every type (in ``cfg.types`` order) x level."""
    return [Variant()] + [Variant(Perturbation(t, lvl, cfg.seed)) for t in cfg.types for lvl in cfg.levels]


@dataclass
class RobustnessResult:
    """What :func:`run_robustness` did.

    ``rows``: one dict per model x variant (``robustness.csv``; empty when a shard only prepared
    caches); ``table``: one dict per model (``robustness_table.csv``); ``files``: what was written;
    ``scored``: False when ``shard`` was given (the caches are prepared, scoring is left to a run
    without it); ``seconds``: wall time per stage.
    """

    out_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    scored: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    caches: dict[str, Path] = field(default_factory=dict)


# ---- perturb + preprocess -------------------------------------------------------------------------

def _perturb_job(args: tuple[str, str, str, str, PreprocessConfig | None]) -> tuple[str, str, str, str]:
    """Worker: perturb one video. ``args`` = (src, dst, spec, video_id, config whose sampled frames
    alone are perturbed, or None for all). Returns (video_id, "ok" | "failed", path | reason, message)."""
    from forensight.perturbations import parse_spec, perturb_video
    from forensight.video import sample_indices

    src, dst, spec, vid, pp = args
    frames: Callable[[int], Any] | None = None
    if pp is not None:
        def frames(n: int) -> Any:
            return sample_indices(n, pp)
    try:
        res = perturb_video(src, dst, parse_spec(spec), video_key=vid, frames=frames)
    except PreprocessError as e:
        return vid, "failed", e.reason, e.message
    except MemoryError:
        return vid, "failed", "too_large", "ran out of memory while perturbing"
    except Exception as e:  # noqa: BLE001 - one bad video must not stop the batch, but is recorded loudly
        return vid, "failed", "perturbation_error", f"{type(e).__name__}: {e}"
    return vid, "ok", str(res.path), ""


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


#: Below this many videos per worker, a variant is preprocessed in this process: each
#: ``run_preprocess`` pool starts its workers and loads the face models again (measured 5-7 s here
#: for 2 workers), more than a small batch takes in one process once the models are loaded.
MIN_VIDEOS_PER_WORKER = 12


def _pool_size(n_videos: int, workers: int) -> int:
    """Preprocessing workers for a batch of ``n_videos``: 1 (in this process) for small batches."""
    return workers if workers > 1 and n_videos >= MIN_VIDEOS_PER_WORKER * workers else 1


def _prepare_variant(records: Sequence[VideoRecord], base: PreprocessConfig, variant: Variant, cache_dir: Path,
                     video_dir: Path, cfg: RobustnessConfig, workers: int, pool: Any, progress: bool) -> dict[str, Any]:
    """Perturb (unless clean) and preprocess ``records`` into the variant's cache; resumable."""
    from tqdm.auto import tqdm

    from forensight.cache import Cache
    from forensight.preprocess import run_preprocess

    pp = variant.config(base)
    root = cache_dir / f"{variant.name}-{pp.hash}"
    stats = {"cache": root, "perturb_s": 0.0, "preprocess_s": 0.0, "perturbed": 0, "perturb_failed": 0}
    if variant.perturbation is None:
        t = time.perf_counter()
        run_preprocess(records, root, pp, workers=_pool_size(len(records), workers), progress=progress)
        stats["preprocess_s"] = time.perf_counter() - t
        return stats
    cache = Cache.create(root, pp)
    pending = [r for r in records if not cache.is_done(r.video_id) and not cache.is_failed(r.video_id)]
    spec = variant.perturbation.spec
    vdir = video_dir / variant.name
    for start in range(0, len(pending), cfg.chunk):
        chunk = pending[start:start + cfg.chunk]
        jobs = [(str(r.path), str(vdir / safe_name(r.video_id)), spec, r.video_id,
                 None if cfg.keep_videos else base.without_perturbation()) for r in chunk]
        t = time.perf_counter()
        results = pool.map(_perturb_job, jobs) if pool is not None else map(_perturb_job, jobs)
        by_id = {r.video_id: r for r in chunk}
        ready: list[VideoRecord] = []
        for vid, status, what, msg in tqdm(results, total=len(jobs), desc=f"perturb {variant.name}", unit="video",
                                           disable=not progress, leave=False, dynamic_ncols=True):
            if status == "ok":
                ready.append(dataclasses.replace(by_id[vid], path=Path(what)))
            else:
                cache.write_failure(by_id[vid], what, f"perturbing {spec}: {msg}")
                stats["perturb_failed"] += 1
                log.warning("could not perturb %s (%s): %s: %s", vid, spec, what, msg)
        stats["perturb_s"] += time.perf_counter() - t
        stats["perturbed"] += len(ready)
        t = time.perf_counter()
        if ready:
            run_preprocess(ready, root, pp, workers=_pool_size(len(ready), workers), progress=progress)
        else:
            cache.write_manifest()
        stats["preprocess_s"] += time.perf_counter() - t
        if not cfg.keep_videos:
            for r in ready:
                r.path.unlink(missing_ok=True)
    if not pending:
        cache.write_manifest()
    return stats


# ---- scoring --------------------------------------------------------------------------------------

def _score_variant(lm: Any, name: str, variant: Variant, root: Path, records: Sequence[VideoRecord],
                   cfg: RobustnessConfig) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One ``robustness.csv`` row and the per-video score rows of one model on one variant."""
    from forensight.cache import Cache
    from forensight.metrics import brier_score, compute_all, expected_calibration_error
    from forensight.scoring import score_split

    cache = Cache.open(root)
    if cache.config.without_perturbation().hash != lm.preprocess_hash:
        raise ValueError(f"{root} was preprocessed with config {cache.config.without_perturbation().hash}, but "
                         f"{lm.path} expects {lm.preprocess_hash}")
    wanted = {r.video_id for r in records}
    rows = {r["video_id"]: r for r in cache.rows()}
    missing = sorted(wanted - set(rows))
    if missing:
        raise RuntimeError(f"{root}: {len(missing)} of {len(wanted)} videos are neither processed nor failed "
                           f"(e.g. {missing[0]}); run again (without --shard) to finish them")
    failed = Counter(rows[v]["reason"] for v in wanted if rows[v]["status"] == "failed")
    p = variant.perturbation
    row: dict[str, Any] = {"model": name, "type": variant.type, "level": variant.level,
                           "param": None if p is None else p.param, "perturbation": "" if p is None else p.spec,
                           "failed": int(sum(failed.values())), "failed_reasons": dict(failed),
                           "threshold": float(lm.threshold), "cache": str(root), "note": ""}
    try:
        preds, ds = score_split(lm, cache, cfg.split, batch_size=cfg.batch_size, max_frames=cfg.max_frames,
                                max_clips=cfg.max_clips, device=cfg.device, features=False, methods=cfg.methods)
    except ValueError as e:  # no processed video left in the split (every one failed): say so in the row
        row.update({"n": 0, "n_real": 0, "n_fake": 0, "not_scored": 0, "note": str(e)})
        return row, []
    ids, y, s = preds.video_scores()
    keep = [i for i, v in enumerate(ids) if v in wanted]
    ids, y, s = [ids[i] for i in keep], y[keep], s[keep]
    row.update({"n": len(ids), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
                "not_scored": len([v for v in ds.unscored if v in wanted])})
    scores = [{"model": name, "variant": variant.name, "video_id": v, "label": int(lab), "logit": float(lg),
               "p_fake": lm.p_fake(float(lg))} for v, lab, lg in zip(ids, y, s)]
    if len(set(y.tolist())) < 2:
        row["note"] = f"one class left among the {len(ids)} scored videos: no AUC"
        return row, scores
    m = compute_all(y, s, threshold=lm.threshold, n_boot=cfg.n_bootstrap)
    prob = lm.p_fake(s)
    row.update({"auc": m["auc"], "auc_lo": m["auc_ci"][0], "auc_hi": m["auc_ci"][1], "ap": m["ap"], "eer": m["eer"],
                "acc_at_threshold": m["acc_at_threshold"], "ece": expected_calibration_error(y, prob, cfg.ece_bins),
                "brier": brier_score(y, prob)})
    return row, scores


# ---- the table ------------------------------------------------------------------------------------

def robustness_table(rows: Sequence[dict[str, Any]], metric: str = "auc") -> list[dict[str, Any]]:
    """The paper's table from ``robustness.csv`` rows: per model ``clean``, each type's ``metric``
    averaged over its levels, ``avg`` (over the reference types present; over all types when none
    is), ``drop`` = clean - avg, and ``levels``: per type ``(levels in its mean, levels run)``.

    A level counts in its type's mean only when every video of the split was scored there
    (:func:`scored_all`): when strong noise leaves 2 of 16 videos with a face, their AUC (on
    2 videos) is not the model's robustness at that level, and averaging it in would hide the
    failures. Such a type shows e.g. "0.766 (2/5)" (:func:`format_table`); a type with no complete
    level has no mean.
    """
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        clean = next((r.get(metric) for r in mine if r["type"] == "clean"), None)
        entry: dict[str, Any] = {"model": model, "clean": clean}
        types = list(dict.fromkeys(r["type"] for r in mine if r["type"] != "clean"))
        means: dict[str, float | None] = {}
        levels: dict[str, tuple[int, int]] = {}
        for t in types:
            runs = [r for r in mine if r["type"] == t]
            vals = [float(r[metric]) for r in runs if r.get(metric) is not None and scored_all(r)]
            means[t] = float(np.mean(vals)) if vals else None
            levels[t] = (len(vals), len(runs))
            entry[t] = means[t]
        ref = [t for t in types if t in REFERENCE_TYPES] or types
        vals = [m for t in ref if (m := means[t]) is not None]
        entry["avg"] = float(np.mean(vals)) if vals else None
        entry["drop"] = None if clean is None or entry["avg"] is None else float(clean) - entry["avg"]
        entry["levels"] = levels
        out.append(entry)
    return out


def _level_table(rows: Sequence[dict[str, Any]], metric: str = "auc") -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["type"] == "clean":
            continue
        key = next((e for e in out if e["model"] == r["model"] and e["type"] == r["type"]), None)
        if key is None:
            key = {"model": r["model"], "type": r["type"]}
            out.append(key)
        v = r.get(metric)
        if not scored_all(r):  # say on how many videos a level with failures was measured
            n = int(r.get("n") or 0)
            total = n + int(r.get("failed") or 0) + int(r.get("not_scored") or 0)
            v = f"{'-' if v is None else format(float(v), '.3f')} ({n}/{total} videos)"
        key[f"level {r['level']}"] = v
    return out


def _column_name(t: str) -> str:
    info = TYPES.get(t)
    if info is None:
        return t
    return f"{t} ({info.code})" if not info.extension else f"{t} (extension)"


def format_table(table: Sequence[dict[str, Any]], level_rows: Sequence[dict[str, Any]] | None = None,
                 digits: int = 3) -> str:
    """Markdown of :func:`robustness_table` (and the per-level rows when given)."""
    from forensight.report import write_table

    types = [k for k in (table[0] if table else {}) if k not in ("model", "clean", "avg", "drop", "levels")]

    def cell(e: dict[str, Any], k: str) -> Any:
        used, run = e.get("levels", {}).get(k, (0, 0))
        if e[k] is None or used == run:
            return e[k]
        return f"{e[k]:.{digits}f} ({used}/{run})"

    renamed = [{(_column_name(k) if k in types else k): (cell(e, k) if k in types else v)
                for k, v in e.items() if k != "levels"} for e in table]
    md = write_table(renamed, None, None, columns=["model", "clean", *map(_column_name, types), "avg", "drop"],
                     digits=digits)
    if level_rows:
        lv = [f"level {i}" for i in range(1, 6) if any(f"level {i}" in r for r in level_rows)]
        md += "\n" + write_table(level_rows, None, None, columns=["model", "type", *lv], digits=digits)
    return md


# ---- the run --------------------------------------------------------------------------------------

def _read_records(data_root: str | Path, layout: str, read_opts: dict[str, Any] | None, cfg: RobustnessConfig
                  ) -> list[VideoRecord]:
    from forensight.datasets import read_dataset

    recs = read_dataset(layout, data_root, **(read_opts or {}))
    recs = [r for r in recs if r.split == cfg.split]
    if cfg.methods:
        recs = [r for r in recs if r.label == 0 or r.method in cfg.methods]
    if not recs:
        raise ValueError(f"{data_root} has no videos in split {cfg.split!r}"
                         + (f" for methods {list(cfg.methods)}" if cfg.methods else ""))
    return recs


def _model_names(paths: Sequence[Path]) -> list[str]:
    names = [p.parent.name if p.name in ("model.pt", "config.json") else p.stem for p in paths]
    seen: Counter[str] = Counter()
    out = []
    for n in names:
        seen[n] += 1
        out.append(n if names.count(n) == 1 else f"{n}#{seen[n]}")
    return out


def run_robustness(models: str | Path | Sequence[str | Path], data_root: str | Path | None, out_dir: str | Path,
                   cfg: RobustnessConfig | None = None, *, records: Sequence[VideoRecord] | None = None,
                   layout: str = "auto", read_opts: dict[str, Any] | None = None, workers: int = 1,
                   shard: tuple[int, int] = (0, 1), cache_dir: str | Path | None = None,
                   progress: bool = True, **overrides: Any) -> RobustnessResult:
    """Perturb, preprocess and score ``cfg.split`` of a dataset for one or more trained models.

    Args:
        models: run directories or ``model.pt`` files. Models with the same preprocessing share
            every variant's cache (e.g. the two arms of an augmentation ablation).
        data_root: the dataset (any layout of :func:`forensight.datasets.read_dataset`; ``layout``
            and ``read_opts`` as there), or None with ``records``.
        out_dir: results (see the module docstring).
        cfg: types, levels, seed, scoring options (:class:`RobustnessConfig`), with ``overrides``.
        records: the videos, instead of reading ``data_root`` (only ``cfg.split`` is used).
        workers: processes for perturbing and preprocessing.
        shard: ``(i, n)``: prepare only shard i of n of the videos (job arrays); scoring happens only
            without a shard, once every shard's videos are in the caches.
        cache_dir: where the variants' caches live (default ``out_dir / "caches"``); shared caches
            let several runs or models reuse the perturbed videos' preprocessing.
    """
    from forensight.modelfile import load_model_file, resolve_model_path
    from forensight.preprocess import shard_records
    from forensight.report import plot_robustness, write_json, write_table
    from forensight.scoring import resolve_device

    cfg = merge(RobustnessConfig, cfg, overrides)
    t_all = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    caches = Path(cache_dir) if cache_dir is not None else out / "caches"
    paths = [resolve_model_path(m) for m in ([models] if isinstance(models, (str, Path)) else list(models))]
    if not paths:
        raise ValueError("give at least one model (a run directory or model.pt, a model folder, or a published "
                         "checkpoint file)")
    dev = resolve_device(cfg.device)
    loaded = [load_model_file(p, device=dev) for p in paths]
    names = _model_names(paths)
    if records is None:
        if data_root is None:
            raise ValueError("give data_root or records")
        recs = _read_records(data_root, layout, read_opts, cfg)
    else:
        recs = [r for r in records if r.split == cfg.split and (not cfg.methods or r.label == 0
                                                                 or r.method in cfg.methods)]
        if not recs:
            raise ValueError(f"none of the given records is in split {cfg.split!r}")
    mine = shard_records(recs, shard)
    groups: dict[str, PreprocessConfig] = {}
    for lm in loaded:
        groups.setdefault(lm.preprocess_hash, lm.preprocess.without_perturbation())
    vs = variants(cfg)
    result = RobustnessResult(out_dir=out)
    seconds = Counter[str]()
    pool = None
    if workers > 1:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["forensight.perturbations", "forensight.video", "cv2"])
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    roots: dict[tuple[str, str], Path] = {}
    try:
        for h, base in groups.items():
            for v in vs:
                if progress:
                    print(f"robustness: {v.name} ({len(mine)} videos, preprocessing {h})", flush=True)
                st = _prepare_variant(mine, base, v, caches, out / "videos", cfg, workers, pool, progress)
                roots[(h, v.name)] = st["cache"]
                result.caches[f"{h}/{v.name}"] = st["cache"]
                seconds["perturb"] += st["perturb_s"]
                seconds["preprocess"] += st["preprocess_s"]
    finally:
        if pool is not None:
            pool.shutdown()
    if tuple(shard) != (0, 1):
        result.seconds = {**seconds, "total": time.perf_counter() - t_all}
        if progress:
            print(f"robustness: shard {shard[0]}/{shard[1]} prepared; run again without --shard to score")
        return result
    t = time.perf_counter()
    rows: list[dict[str, Any]] = []
    score_rows: list[dict[str, Any]] = []
    from tqdm.auto import tqdm

    jobs = [(lm, name, v) for lm, name in zip(loaded, names) for v in vs]
    for lm, name, v in tqdm(jobs, desc="score", unit="variant", disable=not progress, dynamic_ncols=True):
        row, sc = _score_variant(lm, name, v, roots[(lm.preprocess_hash, v.name)], recs, cfg)
        rows.append(row)
        score_rows.extend(sc)
    seconds["score"] = time.perf_counter() - t
    result.rows, result.scored = rows, True
    result.table = robustness_table(rows)
    levels = _level_table(rows)
    files = {"csv": out / "robustness.csv", "scores": out / "robustness_scores.csv",
             "table_md": out / "robustness_table.md", "table_csv": out / "robustness_table.csv",
             "plot": out / "robustness.png", "json": out / "robustness.json"}
    write_table(rows, None, files["csv"], columns=CSV_COLUMNS)
    write_table(score_rows, None, files["scores"], columns=["model", "variant", "video_id", "label", "logit", "p_fake"])
    write_table([{**{k: v for k, v in e.items() if k != "levels"},
                  **{f"{t} levels": f"{u}/{n}" for t, (u, n) in e["levels"].items()}} for e in result.table],
                None, files["table_csv"])
    from forensight.io import atomic_write_text

    head = (f"Video AUC under perturbations (split {cfg.split}, {len(recs)} videos, seed {cfg.seed}); "
            "type columns average levels " + ",".join(map(str, cfg.levels)) + "; avg over the DeeperForensics "
            "types run; drop = clean - avg. A level where some videos could not be scored (e.g. no face "
            "found after strong noise; robustness.csv counts them) is left out of its type's mean: "
            "\"0.766 (2/5)\" = mean of the 2 complete levels of 5.\n\n")
    atomic_write_text(files["table_md"], head + format_table(result.table, levels))
    plot_robustness(rows, files["plot"])
    result.seconds = {**seconds, "total": time.perf_counter() - t_all}
    write_json({"config": dataclasses.asdict(cfg), "models": {n: str(lm.path) for n, lm in zip(names, loaded)},
                "calibration": {n: lm.calibration for n, lm in zip(names, loaded)},
                "threshold_source": {n: lm.threshold_source for n, lm in zip(names, loaded)},
                "data_root": None if data_root is None else str(data_root), "videos": len(recs),
                "caches": {k: str(v) for k, v in result.caches.items()}, "seconds": result.seconds,
                "table": result.table, "rows": rows}, files["json"])
    result.files = files
    return result
