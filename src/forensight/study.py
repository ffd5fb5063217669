"""The region study: regions {frame, full, eyes, mouth} × heads {control, attention}.

Every cell trains with the same data, splits, budget and seeds, selects its model on the
validation split, and is scored once on the test split. The result table (Markdown + CSV) gives
test video AUC with its bootstrap 95% interval (mean ± std over seeds when there are several),
and a plot compares the cells. Finished cells (a run directory with ``model.pt`` and
``eval/metrics.json``) are reused, so an interrupted study resumes.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from forensight.cache import Cache
from forensight.config import TrainConfig, merge, resolve_model_config, to_dict

HEADS = ("control", "attention")


@dataclass
class StudyResult:
    """Rows per run and per cell (seeds aggregated), and the files written."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    table_md: Path | None = None
    table_csv: Path | None = None
    plot: Path | None = None
    seconds: float = 0.0


def _cell_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["region"], r["head"]), []).append(r)
    rows = []
    for (region, head), rs in cells.items():
        aucs = np.array([r["test_auc"] for r in rs])
        rows.append({
            "region": region, "head": head, "seeds": len(rs),
            "test_auc": round(float(aucs.mean()), 4),
            "test_auc_std": round(float(aucs.std(ddof=1)) if len(rs) > 1 else 0.0, 4),
            "auc_ci_lo": round(float(np.mean([r["auc_ci_lo"] for r in rs])), 4),
            "auc_ci_hi": round(float(np.mean([r["auc_ci_hi"] for r in rs])), 4),
            "test_ap": round(float(np.mean([r["test_ap"] for r in rs])), 4),
            "test_eer": round(float(np.mean([r["test_eer"] for r in rs])), 4),
            "test_acc_val_thr": round(float(np.mean([r["test_acc_at_threshold"] for r in rs])), 4),
            "val_auc": round(float(np.mean([r["val_auc"] for r in rs])), 4),
            "n_test": rs[0]["n_test"],
        })
    return rows


def run_study(cache_root: str | Path, out_dir: str | Path, regions: tuple[str, ...] = ("frame", "full", "eyes", "mouth"),
              heads: tuple[str, ...] = ("control", "attention"), family: str = "region_mobile",
              seeds: tuple[int, ...] = (0,), train: TrainConfig | Mapping[str, Any] | None = None,
              model_overrides: Mapping[str, Any] | None = None, n_bootstrap: int = 1000,
              progress: bool = True) -> StudyResult:
    """Train and evaluate every (region, head, seed) cell; write the comparison table and plot.

    ``family`` picks the presets ``{family}_control`` / ``{family}_attention`` (e.g.
    ``region_b1`` for the published EfficientNet-B1 setup, ``region_mobile`` on CPU);
    ``model_overrides`` (e.g. ``input_size``) apply to both, the region per cell. ``train`` is the
    training config (or field overrides) shared by every cell; the seed is set per cell. Configs
    are layered with :func:`forensight.config.merge`, as the CLI does.
    """
    from forensight.evaluate import evaluate
    from forensight.report import plot_roc_multi, write_json, write_table
    from forensight.train import train as train_run

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache.open(cache_root)
    missing = [r for r in regions if r not in cache.config.regions]
    if missing:
        raise ValueError(f"the cache {cache.root} has no {missing} crops (it has {list(cache.config.regions)})")
    for h in heads:
        if h not in HEADS:
            raise ValueError(f"heads must be among {list(HEADS)}, got {h!r}")
    base_train = merge(TrainConfig, train)
    runs: list[dict[str, Any]] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    cells = [(r, h, s) for r in regions for h in heads for s in seeds]
    for i, (region, head, seed) in enumerate(cells, 1):
        name = f"{region}_{head}_s{seed}"
        run_dir = out / "runs" / name
        eval_dir = run_dir / "eval"
        if progress:
            print(f"[study {i}/{len(cells)}] {name}", flush=True)
        model = resolve_model_config(f"{family}_{head}", None, {**(model_overrides or {}), "region": region})
        cfg = merge(TrainConfig, base_train, {"seed": seed})
        if not (run_dir / "model.pt").is_file():
            if run_dir.exists():  # an interrupted cell: start it again cleanly
                shutil.rmtree(run_dir)
            train_run(cache_root, run_dir, model, cfg, progress=progress)
        if not (eval_dir / "metrics.json").is_file():
            evaluate(run_dir, cache_root, eval_dir, split="test", n_bootstrap=n_bootstrap, progress=False)
        m = json.loads((eval_dir / "metrics.json").read_text())
        v = json.loads((run_dir / "val_metrics.json").read_text())
        runs.append({"region": region, "head": head, "seed": seed, "test_auc": m["auc"],
                     "auc_ci_lo": m["auc_ci"][0], "auc_ci_hi": m["auc_ci"][1], "test_ap": m["ap"],
                     "test_eer": m["eer"], "test_acc_at_threshold": m["acc_at_threshold"],
                     "val_auc": v.get("auc", float("nan")), "best_epoch": v.get("best_epoch"),
                     "n_test": m["n"], "run_dir": str(run_dir)})
        scores = _read_scores(eval_dir / "scores.csv")
        curves[name] = scores
    res = StudyResult(runs=runs, cells=_cell_rows(runs))
    res.table_md, res.table_csv = out / "study.md", out / "study.csv"
    write_table(res.cells, res.table_md, res.table_csv)
    write_table(runs, out / "study_runs.md", out / "study_runs.csv")
    res.plot = plot_study(res.cells, out / "study_auc.png")
    plot_roc_multi(curves, out / "study_roc.png", title="Test ROC per study cell")
    res.seconds = time.perf_counter() - t0
    write_json({"cells": res.cells, "runs": runs, "family": family, "seeds": list(seeds),
                "train": to_dict(base_train), "model_overrides": dict(model_overrides or {}), "cache": str(Path(cache_root).resolve()),
                "preprocess_hash": cache.config.hash, "seconds": res.seconds}, out / "study.json")
    return res


def _read_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    return np.array([int(r["label"]) for r in rows]), np.array([float(r["logit"]) for r in rows])


def plot_study(cells: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: test AUC per region, one bar per head, bootstrap 95% interval as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regions = list(dict.fromkeys(c["region"] for c in cells))
    heads = list(dict.fromkeys(c["head"] for c in cells))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(regions), 3.6))
    width = 0.8 / max(len(heads), 1)
    for j, h in enumerate(heads):
        xs, ys, lo, hi = [], [], [], []
        for i, r in enumerate(regions):
            c = next((c for c in cells if c["region"] == r and c["head"] == h), None)
            if c is None:
                continue
            xs.append(i + (j - (len(heads) - 1) / 2) * width)
            ys.append(c["test_auc"])
            lo.append(c["test_auc"] - c["auc_ci_lo"])
            hi.append(c["auc_ci_hi"] - c["test_auc"])
        ax.bar(xs, ys, width * 0.95, yerr=[lo, hi], capsize=3, label=h)
    ax.set_xticks(range(len(regions)), regions)
    ax.set_ylim(0.0, 1.15)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("test video AUC (95% CI)")
    ax.legend(title="head", loc="upper left", fontsize=8)
    ax.set_title("Region study")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_cells(cells: list[dict[str, Any]]) -> str:
    """A plain-text table of the study cells for the terminal."""
    lines = [f"{'region':8s} {'head':10s} {'test AUC':>9s} {'95% CI':>13s} {'val AUC':>8s} {'EER':>6s}"]
    for c in cells:
        sd = f"±{c['test_auc_std']:.3f}" if c["seeds"] > 1 else ""
        lines.append(f"{c['region']:8s} {c['head']:10s} {c['test_auc']:9.3f}{sd} "
                     f"{c['auc_ci_lo']:6.3f}-{c['auc_ci_hi']:.3f} {c['val_auc']:8.3f} {c['test_eer']:6.3f}")
    return "\n".join(lines)

