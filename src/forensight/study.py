"""The region study: regions × heads {control, attention} × seeds, and the question asked directly.

Every run trains with the same data, splits, budget and recipe, selects its model on the
validation split, and is scored once on the test split through the one scoring path. Outputs in
``out_dir``:

* ``study.csv`` / ``study.md``: one row per (region, head): seeds, test video AUC mean ± sd over
  seeds, the per-seed AUCs, ``learned``: how many seeds learned, i.e. reached validation AUC >=
  ``learned_at`` (0.9 by default; the threshold is the next column), validation
  AUC, EER, and for attention heads the temporal localisation of the attention (when the test
  fakes know their manipulated frames: frame-level AUC of the weights, attention mass inside the
  manipulated frames vs their share of frames);
* ``study_diff.csv`` / ``study_diff.md``: per region, attention − control test AUC (mean over
  seeds), a paired bootstrap 95 % interval over test videos (both heads share the test videos and
  the seeds) and a permutation p-value (:func:`forensight.metrics.paired_auc_difference`);
* ``study_runs.csv``, ``study.json``, ``study_auc.png`` (mean ± sd bars), ``study_roc.png``.

Finished runs (a run directory with ``model.pt`` and ``eval/metrics.json``) are reused, so an
interrupted study resumes; the same cache gives identical numbers (seeded, deterministic on CPU).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensight.cache import Cache
from forensight.config import TrainConfig, merge, resolve_model_config, to_dict

HEADS = ("control", "attention")


@dataclass
class StudyResult:
    """Rows per run, per cell (seeds aggregated) and per region (head differences); files written."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    diffs: list[dict[str, Any]] = field(default_factory=list)
    table_md: Path | None = None
    table_csv: Path | None = None
    diff_csv: Path | None = None
    plot: Path | None = None
    seconds: float = 0.0
    seconds_per_run: float = 0.0


def open_with_regions(cache_root: str | Path, regions: Sequence[str]) -> Cache:
    """The cache at ``cache_root``; ValueError naming the missing ones unless it has crops of every region."""
    cache = Cache.open(cache_root)
    missing = [r for r in regions if r not in cache.config.regions]
    if missing:
        raise ValueError(f"the cache {cache.root} has no {missing} crops (it has {list(cache.config.regions)})")
    return cache


def read_scores(path: Path) -> dict[str, tuple[int, float]]:
    """``video_id -> (label, logit)`` from an ``evaluate`` run's ``scores.csv``."""
    with open(path) as f:
        return {r["video_id"]: (int(r["label"]), float(r["logit"])) for r in csv.DictReader(f)}


def _cell_rows(runs: list[dict[str, Any]], learned_at: float) -> list[dict[str, Any]]:
    from forensight.metrics import mean_sd

    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["region"], r["head"]), []).append(r)
    rows = []
    for (region, head), rs in cells.items():
        m, sd = mean_sd([r["test_auc"] for r in rs])
        vm, _ = mean_sd([r["val_auc"] for r in rs])
        row = {"region": region, "head": head, "seeds": len(rs), "test_auc": round(m, 4),
               "test_auc_sd": round(sd, 4), "test_auc_per_seed": [round(r["test_auc"], 4) for r in rs],
               "learned": f"{sum(r['val_auc'] >= learned_at for r in rs)}/{len(rs)}", "learned_at": learned_at,
               "val_auc": round(vm, 4),
               "test_eer": round(float(np.mean([r["test_eer"] for r in rs])), 4), "n_test": rs[0]["n_test"]}
        loc = [r for r in rs if r.get("loc_frame_auc") is not None]
        if head == "attention" and loc:
            for k in ("loc_frame_auc", "loc_mass_inside", "loc_share_inside"):
                row[k] = round(float(np.mean([r[k] for r in loc])), 4)
        rows.append(row)
    return rows


def _diff_rows(runs: list[dict[str, Any]], scores: dict[str, dict[str, tuple[int, float]]], seeds: Sequence[int],
               n_boot: int) -> list[dict[str, Any]]:
    """Attention − control per region, paired over seeds and test videos."""
    from forensight.metrics import paired_auc_difference

    out = []
    for region in dict.fromkeys(r["region"] for r in runs):
        names = {(r["head"], r["seed"]): r["name"] for r in runs if r["region"] == region}
        if not all((h, s) in names for h in HEADS for s in seeds):
            continue
        ids = sorted(scores[names[("control", seeds[0])]])
        y = np.array([scores[names[("control", seeds[0])]][v][0] for v in ids])
        a = np.array([[scores[names[("control", s)]][v][1] for v in ids] for s in seeds])
        b = np.array([[scores[names[("attention", s)]][v][1] for v in ids] for s in seeds])
        d = paired_auc_difference(y, a, b, n_boot=n_boot, n_perm=n_boot, seed=0)
        out.append({"region": region, "seeds": len(seeds), "n_test": len(ids),
                    "auc_control": round(float(np.mean(d["auc_a"])), 4),
                    "auc_attention": round(float(np.mean(d["auc_b"])), 4),
                    "diff_attention_minus_control": round(d["diff"], 4),
                    "ci_lo": round(d["ci"][0], 4), "ci_hi": round(d["ci"][1], 4), "p_value": round(d["p_value"], 4)})
    return out


def run_study(cache_root: str | Path, out_dir: str | Path, regions: tuple[str, ...] = ("frame", "full", "eyes", "mouth"),
              heads: tuple[str, ...] = HEADS, family: str = "region_lite0", seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
              train: TrainConfig | Mapping[str, Any] | None = None, model_overrides: Mapping[str, Any] | None = None,
              n_bootstrap: int = 1000, learned_at: float = 0.9, methods: Sequence[str] = (),
              progress: bool = True, label: str = "study", tune_trials: int = 0,
              tune_seeds: tuple[int, ...] = (0, 1), tune_objective: str = "log_loss") -> StudyResult:
    """Train and evaluate every (region, head, seed) run; write the tables, differences and plots.

    ``family`` picks the presets ``{family}_control`` / ``{family}_attention`` (``region_lite0``:
    frozen ImageNet EfficientNet-Lite0 on CPU; ``region_b1``: the published EfficientNet-B1 setup,
    fine-tuned on a GPU); ``model_overrides`` (e.g. ``input_size``) apply to both, the region per
    run. ``train`` is the training config (or field overrides) shared by every run; the seed is set
    per run. ``methods`` restricts the fakes (e.g. one sweep variant). Configs are layered with
    :func:`forensight.config.merge`, as the CLI does.

    ``tune_trials`` > 0: before its seeds run, each (region, head) cell searches its recipe with
    :func:`forensight.tune.tune` (that many trials, objective ``tune_objective`` on the VALIDATION
    split averaged over ``tune_seeds``, starting from the shared recipe, in
    ``out_dir/tune/<region>_<head>``); the cell's seeds then train with the recipe it found. The
    chosen recipe per cell is recorded in ``study.json`` (``configs``) and ``study_configs.csv``.
    Every cell gets the same search budget, so the comparison between regions stays fair.

    A finished run is reused only when its stored model and train configs are the ones this call
    would train; otherwise the call stops with an error (choose another ``out_dir``).
    """
    from tqdm.auto import tqdm

    from forensight.evaluate import evaluate
    from forensight.report import plot_roc_multi, write_json, write_table
    from forensight.train import train as train_run

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = open_with_regions(cache_root, regions)
    for h in heads:
        if h not in HEADS:
            raise ValueError(f"heads must be among {list(HEADS)}, got {h!r}")
    base_train = merge(TrainConfig, train, {"methods": tuple(methods)} if methods else None)
    if tune_trials < 0:
        raise ValueError(f"tune_trials must be >= 0, got {tune_trials}")
    runs: list[dict[str, Any]] = []
    scores: dict[str, dict[str, tuple[int, float]]] = {}
    recipes = {(r, h): _cell_recipe(cache_root, out, family, r, h, base_train, model_overrides, tune_trials,
                                    tune_seeds, tune_objective, progress)
               for r in regions for h in heads}
    cells = [(r, h, s) for r in regions for h in heads for s in seeds]
    bar = tqdm(cells, desc=label, unit="run", disable=not progress, dynamic_ncols=True)
    trained = 0
    t_train = 0.0
    for region, head, seed in bar:
        name = f"{region}_{head}_s{seed}"
        bar.set_postfix_str(name, refresh=True)
        run_dir = out / "runs" / name
        eval_dir = run_dir / "eval"
        model, cell_train = recipes[(region, head)]["model"], recipes[(region, head)]["train"]
        cfg = merge(TrainConfig, cell_train, {"seed": seed})
        if (run_dir / "model.pt").is_file():
            _check_reused(run_dir, model, cfg)
        else:
            if run_dir.exists():  # an interrupted run: start it again cleanly
                shutil.rmtree(run_dir)
            t1 = time.perf_counter()
            train_run(cache_root, run_dir, model, cfg, progress=False)
            t_train += time.perf_counter() - t1
            trained += 1
        if not (eval_dir / "metrics.json").is_file():
            evaluate(run_dir, cache_root, eval_dir, split="test", n_bootstrap=n_bootstrap, methods=tuple(methods),
                     progress=False)
        m = json.loads((eval_dir / "metrics.json").read_text())
        v = json.loads((run_dir / "val_metrics.json").read_text())
        loc = m.get("localisation") or {}
        runs.append({"name": name, "region": region, "head": head, "seed": seed, "test_auc": m["auc"],
                     "auc_ci_lo": m["auc_ci"][0], "auc_ci_hi": m["auc_ci"][1], "test_ap": m["ap"],
                     "test_eer": m["eer"], "test_acc_at_threshold": m["acc_at_threshold"],
                     "val_auc": v.get("auc", float("nan")), "best_epoch": v.get("best_epoch"),
                     "n_test": m["n"], "loc_frame_auc": loc.get("frame_auc"),
                     "loc_mass_inside": loc.get("mass_inside"), "loc_share_inside": loc.get("share_inside"),
                     "run_dir": str(run_dir)})
        scores[name] = read_scores(eval_dir / "scores.csv")
    bar.close()
    res = StudyResult(runs=runs, cells=_cell_rows(runs, learned_at),
                      diffs=_diff_rows(runs, scores, list(seeds), max(200, n_bootstrap)))
    res.table_md, res.table_csv, res.diff_csv = out / "study.md", out / "study.csv", out / "study_diff.csv"
    write_table(res.cells, res.table_md, res.table_csv)
    write_table(res.diffs, out / "study_diff.md", res.diff_csv)
    write_table(runs, out / "study_runs.md", out / "study_runs.csv")
    configs = [_recipe_row(r, h, rec) for (r, h), rec in recipes.items()]
    write_table(configs, out / "study_configs.md", out / "study_configs.csv")
    res.plot = plot_study(res.cells, out / "study_auc.png")
    first = {(r["region"], r["head"]): r["name"] for r in reversed(runs)}  # one run per cell: its first seed
    curves = {f"{reg}/{head} s{seeds[0]}": (np.array([lab for lab, _ in scores[n].values()]),
                                            np.array([x for _, x in scores[n].values()]))
              for (reg, head), n in reversed(list(first.items()))}
    plot_roc_multi(curves, out / "study_roc.png", title=f"Test ROC per cell (seed {seeds[0]})")
    res.seconds = time.perf_counter() - t0
    res.seconds_per_run = t_train / trained if trained else 0.0
    write_json({"cells": res.cells, "diffs": res.diffs, "runs": runs, "family": family, "seeds": list(seeds),
                "train": to_dict(base_train), "model_overrides": dict(model_overrides or {}),
                "tune_trials": tune_trials, "tune_seeds": list(tune_seeds) if tune_trials else [],
                "configs": {f"{r}/{h}": {"model": rec["model"].to_dict(), "train": to_dict(rec["train"]),
                                         "tune": rec["tune"]} for (r, h), rec in recipes.items()},
                "cache": str(Path(cache_root).resolve()), "preprocess_hash": cache.config.hash,
                "seconds": res.seconds, "runs_trained": trained, "train_seconds_per_run": res.seconds_per_run},
               out / "study.json")
    return res


def _cell_recipe(cache_root: str | Path, out: Path, family: str, region: str, head: str, base_train: TrainConfig,
                 model_overrides: Mapping[str, Any] | None, tune_trials: int, tune_seeds: tuple[int, ...],
                 objective: str, progress: bool) -> dict[str, Any]:
    """The model + train configs one (region, head) cell trains with: the shared recipe, or the
    best recipe of a validation-split search of ``tune_trials`` trials."""
    model = resolve_model_config(f"{family}_{head}", None, {**(model_overrides or {}), "region": region})
    if tune_trials == 0:
        return {"model": model, "train": base_train, "tune": None}
    from forensight.tune import tune

    res = tune(cache_root, out / "tune" / f"{region}_{head}", model, n_trials=tune_trials, seeds=tune_seeds,
               objective=objective, train=base_train, progress=progress, label=f"tune {region}/{head}")
    return {"model": res.model, "train": res.train,
            "tune": {"trials": len(res.trials), "best_trial": res.best_trial, "objective": objective,
                     "value": res.best_value, "base_value": next((r["value"] for r in res.trials if r["base"]), None),
                     "params": res.best_params, "yaml": str(res.best_yaml)}}


def _recipe_row(region: str, head: str, rec: dict[str, Any]) -> dict[str, Any]:
    """One row of ``study_configs``: the recipe a cell trained with (and its search, if tuned)."""
    m, t, tn = rec["model"], rec["train"], rec["tune"] or {}
    row = {"region": region, "head": head, "tuned": bool(tn), "feature_norm": getattr(m, "feature_norm", ""),
           "feature_dropout": getattr(m, "feature_dropout", ""), "dropout": getattr(m, "dropout", ""),
           "lstm_hidden": getattr(m, "lstm_hidden", ""), "lr": t.lr, "weight_decay": t.weight_decay,
           "batch_size": t.batch_size, "max_epochs": t.max_epochs, "patience": t.patience, "schedule": t.schedule}
    if tn:
        row.update({"tune_trials": tn["trials"], "best_trial": tn["best_trial"],
                    f"val_{tn['objective']}_start": tn["base_value"], f"val_{tn['objective']}_best": tn["value"]})
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}


def _check_reused(run_dir: Path, model: Any, cfg: TrainConfig) -> None:
    """A finished run is reused only if it was trained with this model and train config."""
    from forensight.config import load_yaml, model_config_from_dict

    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    stored = load_yaml(path)
    same_model = model_config_from_dict(stored.get("model", {})) == model
    same_train = merge(TrainConfig, stored.get("train", {})) == cfg
    if not (same_model and same_train):
        what = " and ".join(w for w, ok in (("model", same_model), ("train", same_train)) if not ok)
        raise ValueError(f"{run_dir} was trained with another {what} config than this study asks for; "
                         "use another output folder (finished runs are reused only when they match)")


def compare_studies(before: str | Path, after: str | Path, out_dir: str | Path | None = None,
                    n_bootstrap: int = 1000) -> list[dict[str, Any]]:
    """Per (region, head) cell present in both studies: test AUC after − before, paired.

    The two studies must have scored the same test videos (the same cache); each cell uses the
    seeds both ran, seed ``s`` of one paired with seed ``s`` of the other, and every video's
    scores are paired (:func:`forensight.metrics.paired_auc_difference`: bootstrap 95 % interval
    over test videos, permutation p-value). Written to ``out_dir/compare.csv`` / ``compare.md``
    when ``out_dir`` is given.
    """
    from forensight.metrics import paired_auc_difference
    from forensight.report import write_table

    def load(d: str | Path) -> dict[tuple[str, str, int], dict[str, tuple[int, float]]]:
        path = Path(d) / "study.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: run the study first")
        runs = json.loads(path.read_text())["runs"]
        return {(r["region"], r["head"], int(r["seed"])): read_scores(Path(r["run_dir"]) / "eval" / "scores.csv")
                for r in runs}

    a, b = load(before), load(after)
    rows = []
    for region, head in dict.fromkeys((r, h) for r, h, _ in a):
        seeds = sorted(s for r, h, s in a if (r, h) == (region, head) and (r, h, s) in b)
        if not seeds:
            continue
        ids = sorted(a[(region, head, seeds[0])])
        for s in seeds:
            if sorted(a[(region, head, s)]) != ids or sorted(b[(region, head, s)]) != ids:
                raise ValueError(f"{region}/{head} seed {s}: the two studies scored different test videos "
                                 "(compare studies run on the same cache)")
        y = np.array([a[(region, head, seeds[0])][v][0] for v in ids])
        sa = np.array([[a[(region, head, s)][v][1] for v in ids] for s in seeds])
        sb = np.array([[b[(region, head, s)][v][1] for v in ids] for s in seeds])
        d = paired_auc_difference(y, sa, sb, n_boot=n_bootstrap, n_perm=n_bootstrap, seed=0)
        rows.append({"region": region, "head": head, "seeds": len(seeds), "n_test": len(ids),
                     "auc_before": round(float(np.mean(d["auc_a"])), 4),
                     "auc_before_sd": round(float(np.std(d["auc_a"], ddof=1)) if len(seeds) > 1 else 0.0, 4),
                     "auc_after": round(float(np.mean(d["auc_b"])), 4),
                     "auc_after_sd": round(float(np.std(d["auc_b"], ddof=1)) if len(seeds) > 1 else 0.0, 4),
                     "diff_after_minus_before": round(d["diff"], 4),
                     "ci_lo": None if d["ci"][0] is None else round(d["ci"][0], 4),
                     "ci_hi": None if d["ci"][1] is None else round(d["ci"][1], 4),
                     "p_value": round(d["p_value"], 4)})
    if not rows:
        raise ValueError(f"{before} and {after} share no (region, head, seed) run")
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_table(rows, out / "compare.md", out / "compare.csv")
    return rows


def plot_study(cells: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: test AUC per region (mean over seeds), one bar per head, ± sd as error bars,
    each seed's AUC as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = list(dict.fromkeys(c["region"] for c in cells))
    heads = list(dict.fromkeys(c["head"] for c in cells))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(regions), 3.6))
    width = 0.8 / max(len(heads), 1)
    for j, h in enumerate(heads):
        for i, r in enumerate(regions):
            c = next((c for c in cells if c["region"] == r and c["head"] == h), None)
            if c is None:
                continue
            x = i + (j - (len(heads) - 1) / 2) * width
            ax.bar([x], [c["test_auc"]], width * 0.95, yerr=[[c["test_auc_sd"]], [c["test_auc_sd"]]], capsize=3,
                   color=f"C{j}", label=h if i == 0 else None)
            ax.plot([x] * len(c["test_auc_per_seed"]), c["test_auc_per_seed"], "k.", ms=3, alpha=0.6)
    ax.set_xticks(range(len(regions)), regions)
    ax.set_ylim(0.0, 1.15)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("test video AUC (mean ± sd over seeds)")
    ax.legend(title="head", loc="upper left", fontsize=8)
    ax.set_title("Region study")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_cells(cells: list[dict[str, Any]]) -> str:
    """A plain-text table of the study cells for the terminal. Its ``val>=T`` column is ``learned``:
    the seeds whose validation AUC reached ``learned_at`` (T, 0.9 by default), of all seeds."""
    learned = f"val>={cells[0]['learned_at']:g}" if cells else "learned"
    lines = [f"{'region':10s} {'head':10s} {'test AUC':>14s} {learned:>8s} {'val AUC':>8s} {'EER':>6s}"]
    for c in cells:
        lines.append(f"{c['region']:10s} {c['head']:10s} {c['test_auc']:7.3f} ±{c['test_auc_sd']:.3f} "
                     f"{c['learned']:>8s} {c['val_auc']:8.3f} {c['test_eer']:6.3f}")
    return "\n".join(lines)


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`compare_studies` rows for the terminal."""
    lines = [(f"{'region':10s} {'head':10s} {'before':>14s} {'after':>14s} {'after - before':>15s} "
             f"{'95% CI (paired)':>18s} {'p':>7s}")]
    for r in rows:
        ci = ("n/a" if r["ci_lo"] is None else f"{r['ci_lo']:+.3f} .. {r['ci_hi']:+.3f}")
        lines.append(f"{r['region']:10s} {r['head']:10s} {r['auc_before']:7.3f} ±{r['auc_before_sd']:.3f} "
                     f"{r['auc_after']:7.3f} ±{r['auc_after_sd']:.3f} {r['diff_after_minus_before']:+15.3f} "
                     f"{ci:>18s} {r['p_value']:7.3f}")
    return "\n".join(lines)


def format_diffs(diffs: list[dict[str, Any]]) -> str:
    """A plain-text table of attention − control per region."""
    lines = [f"{'region':10s} {'attention - control':>20s} {'95% CI (paired)':>18s} {'p':>7s}"]
    for d in diffs:
        lines.append(f"{d['region']:10s} {d['diff_attention_minus_control']:+20.3f} "
                     f"{d['ci_lo']:+8.3f} .. {d['ci_hi']:+.3f} {d['p_value']:7.3f}")
    return "\n".join(lines)
