"""The generalisation study: does training on pseudo-fakes of real videos carry over to manipulations
never seen in training, better than supervised training on one manipulation?

On a cache holding real videos, several manipulations (e.g. the ``synth`` Face2Face, FaceSwap and
EyeBlink fakes of the same real videos) and pseudo-fakes of the reals (``preprocess
--pseudo-fakes``), every (training, region, head, seed) run is trained, selected on ITS validation
split (the validation fakes of its own kind: Face2Face for the supervised row, pseudo-fakes for the
pseudo row), then scored once on the whole test split through the one scoring path (``evaluate``).
Each test column = the test reals against the test fakes of one manipulation.

Rows (``TRAININGS``): ``supervised_f2f`` (Face2Face fakes), ``pseudo`` (pseudo-fakes only: a model
made from real videos alone) and ``both``. Outputs in ``out_dir``:

* ``generalisation.csv`` / ``.md``: per (region, head, training, test manipulation): test video
  AUC mean ± sd over seeds, the per-seed AUCs, a 95 % bootstrap interval of the seed-mean AUC over
  test videos (:func:`forensight.metrics.seed_mean_auc_ci`), and the videos scored;
* ``generalisation_diff.csv``: each training row minus ``supervised_f2f`` per (region, head,
  test manipulation), paired over seeds and test videos (:func:`forensight.metrics.paired_auc_difference`:
  mean difference, 95 % interval, permutation p);
* ``generalisation_loc.csv``: the attention head's temporal localisation (frame-level AUC of the
  attention weights against the known manipulated frames, mean over videos and seeds) per
  (region, training, test fake method), pseudo-fakes included;
* ``generalisation.png`` (bars per region/head panel), ``generalisation.json``, ``runs/``.

Finished runs (``model.pt`` + ``eval/metrics.json``) are reused, so an interrupted study resumes.
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

from forensight.config import TrainConfig, merge, resolve_model_config, to_dict
from forensight.study import HEADS, StudyResult, open_with_regions, read_scores

#: Training rows: name → the TrainConfig fields that choose its positives.
TRAININGS: dict[str, dict[str, Any]] = {
    "supervised_f2f": {"methods": ("Face2Face",), "fakes": "real"},
    "pseudo": {"methods": (), "fakes": "pseudo"},
    "both": {"methods": ("Face2Face",), "fakes": "both"},
}
#: Test columns: the manipulations scored against the test reals.
TEST_METHODS = ("Face2Face", "FaceSwap", "EyeBlink")
REFERENCE = "supervised_f2f"


@dataclass
class GeneralisationResult(StudyResult):
    """The study's result (runs, cells, paired differences, files written) plus the attention
    head's temporal localisation rows (``localisation``)."""

    localisation: list[dict[str, Any]] = field(default_factory=list)


def _method_of(video_id: str) -> str:
    """The method part of a qualified id ``dataset/method/compression/name``."""
    return video_id.split("/")[1]


def _read_loc(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    with open(path) as f:
        return {r["video_id"]: float(r["frame_auc"]) for r in csv.DictReader(f) if r.get("frame_auc") not in ("", None)}


def _column_ids(scores: Mapping[str, tuple[int, float]], method: str) -> list[str]:
    """Test reals + the test fakes of ``method``, sorted."""
    return sorted(v for v, (lab, _) in scores.items() if lab == 0 or _method_of(v) == method)


def run_generalisation(
    cache_root: str | Path, out_dir: str | Path, regions: tuple[str, ...] = ("full", "mouth"),
    heads: tuple[str, ...] = HEADS, seeds: tuple[int, ...] = (0, 1, 2, 3, 4), family: str = "region_lite0",
    train: TrainConfig | Mapping[str, Any] | None = None, model_overrides: Mapping[str, Any] | None = None,
    trainings: Mapping[str, Mapping[str, Any]] | None = None, test_methods: Sequence[str] = TEST_METHODS,
    n_bootstrap: int = 1000, progress: bool = True,
) -> GeneralisationResult:
    """Train and evaluate every (training, region, head, seed) run; write the tables and the plot.

    ``cache_root`` must hold real videos, the fakes of ``test_methods`` (test split) and the
    training rows' fakes in train / val (``Face2Face`` and pseudo-fakes for the default rows).
    ``family`` / ``train`` / ``model_overrides`` as in :func:`forensight.study.run_study`.
    """
    from tqdm.auto import tqdm

    from forensight.evaluate import evaluate
    from forensight.metrics import mean_sd, paired_auc_difference, seed_mean_auc_ci
    from forensight.report import write_json, write_table
    from forensight.train import train as train_run

    t0 = time.perf_counter()
    rows_cfg = dict(trainings or TRAININGS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = open_with_regions(cache_root, regions)
    test_methods_present = {r["method"] for r in cache.rows() if r["split"] == "test" and r["status"] == "ok"}
    absent = [m for m in test_methods if m not in test_methods_present]
    if absent:
        raise ValueError(f"the cache {cache.root} has no test videos of {absent}: make them with "
                         "`forensight synth --methods Face2Face,FaceSwap,EyeBlink` and preprocess again")
    base = merge(TrainConfig, train)
    runs: list[dict[str, Any]] = []
    scores: dict[str, dict[str, tuple[int, float]]] = {}
    locs: dict[str, dict[str, float]] = {}
    cells_todo = [(t, r, h, s) for t in rows_cfg for r in regions for h in heads for s in seeds]
    bar = tqdm(cells_todo, desc="generalisation", unit="run", disable=not progress, dynamic_ncols=True)
    trained, t_train = 0, 0.0
    for training, region, head, seed in bar:
        name = f"{training}_{region}_{head}_s{seed}"
        bar.set_postfix_str(name, refresh=True)
        run_dir = out / "runs" / name
        eval_dir = run_dir / "eval"
        model = resolve_model_config(f"{family}_{head}", None, {**(model_overrides or {}), "region": region})
        cfg = merge(TrainConfig, base, {**rows_cfg[training], "seed": seed})
        if not (run_dir / "model.pt").is_file():
            if run_dir.exists():
                shutil.rmtree(run_dir)
            t1 = time.perf_counter()
            train_run(cache_root, run_dir, model, cfg, progress=False)
            t_train += time.perf_counter() - t1
            trained += 1
        if not (eval_dir / "metrics.json").is_file():
            evaluate(run_dir, cache_root, eval_dir, split="test", n_bootstrap=200, progress=False)
        v = json.loads((run_dir / "val_metrics.json").read_text())
        scores[name] = read_scores(eval_dir / "scores.csv")
        locs[name] = _read_loc(eval_dir / "localisation.csv")
        runs.append({"name": name, "training": training, "region": region, "head": head, "seed": seed,
                     "val_auc": v.get("auc", float("nan")), "best_epoch": v.get("best_epoch"), "run_dir": str(run_dir)})
    bar.close()

    cells, diffs, loc_rows = [], [], []
    for region in regions:
        for head in heads:
            for method in test_methods:
                mats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
                for training in rows_cfg:
                    names = [f"{training}_{region}_{head}_s{s}" for s in seeds]
                    ids = _column_ids(scores[names[0]], method)
                    y = np.array([scores[names[0]][v][0] for v in ids])
                    mat = np.array([[scores[n][v][1] for v in ids] for n in names])
                    mats[training] = (y, mat)
                    from forensight.metrics import auc

                    per_seed = [auc(y, row) for row in mat]
                    m, sd = mean_sd(per_seed)
                    lo, hi = seed_mean_auc_ci(y, mat, n=n_bootstrap, seed=0)
                    vals = [r["val_auc"] for r in runs if r["name"] in names]
                    cells.append({"region": region, "head": head, "training": training, "test": method,
                                  "seeds": len(seeds), "auc": round(m, 4), "auc_sd": round(sd, 4),
                                  "ci_lo": round(lo, 4), "ci_hi": round(hi, 4),
                                  "auc_per_seed": [round(a, 4) for a in per_seed],
                                  "val_auc": round(float(np.mean(vals)), 4),
                                  "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())})
                if REFERENCE in mats:
                    y_ref, a = mats[REFERENCE]
                    for training, (y_b, b) in mats.items():
                        if training == REFERENCE:
                            continue
                        d = paired_auc_difference(y_ref, a, b, n_boot=max(200, n_bootstrap), n_perm=max(200, n_bootstrap),
                                                  seed=0)
                        diffs.append({"region": region, "head": head, "test": method,
                                      "comparison": f"{training} - {REFERENCE}", "diff": round(d["diff"], 4),
                                      "ci_lo": None if d["ci"][0] is None else round(d["ci"][0], 4),
                                      "ci_hi": None if d["ci"][1] is None else round(d["ci"][1], 4),
                                      "p_value": round(d["p_value"], 4), "seeds": len(seeds), "n_test": d["n_videos"]})
        if "attention" in heads:
            for training in rows_cfg:
                names = [f"{training}_{region}_attention_s{s}" for s in seeds]
                methods = sorted({_method_of(v) for n in names for v in locs[n]})
                for method in methods:
                    vals = [a for n in names for v, a in locs[n].items() if _method_of(v) == method]
                    m, sd = mean_sd(vals) if vals else (float("nan"), float("nan"))
                    loc_rows.append({"region": region, "training": training, "test_fakes": method,
                                     "frame_auc": round(m, 4), "frame_auc_sd": round(sd, 4),
                                     "videos_x_seeds": len(vals)})

    res = GeneralisationResult(runs=runs, cells=cells, diffs=diffs, localisation=loc_rows)
    res.table_md, res.table_csv = out / "generalisation.md", out / "generalisation.csv"
    write_table(cells, None, res.table_csv)
    write_table(diffs, None, out / "generalisation_diff.csv")
    write_table(loc_rows, None, out / "generalisation_loc.csv")
    write_table(runs, None, out / "generalisation_runs.csv")
    res.table_md.write_text(format_markdown(res, seeds), encoding="utf-8")
    res.plot = plot_generalisation(cells, out / "generalisation.png")
    res.seconds = time.perf_counter() - t0
    res.seconds_per_run = t_train / trained if trained else 0.0
    write_json({"cells": cells, "diffs": diffs, "localisation": loc_rows, "runs": runs, "family": family,
                "seeds": list(seeds), "trainings": {k: {kk: list(vv) if isinstance(vv, tuple) else vv
                                                        for kk, vv in v.items()} for k, v in rows_cfg.items()},
                "train": to_dict(base), "model_overrides": dict(model_overrides or {}),
                "cache": str(Path(cache_root).resolve()), "preprocess_hash": cache.config.hash,
                "seconds": res.seconds, "runs_trained": trained, "train_seconds_per_run": res.seconds_per_run},
               out / "generalisation.json")
    return res


def format_markdown(res: GeneralisationResult, seeds: Sequence[int]) -> str:
    """The three tables as Markdown: AUC matrix (rows = training, columns = test manipulation, per
    region/head), paired differences to the supervised row, and the attention's localisation."""
    lines = [(f"Test video AUC, mean ± sd over {len(seeds)} seeds [95 % bootstrap interval of the seed mean over "
              "test videos]; each column = test reals vs the test fakes of one manipulation."), ""]
    tests = list(dict.fromkeys(c["test"] for c in res.cells))
    for region in dict.fromkeys(c["region"] for c in res.cells):
        for head in dict.fromkeys(c["head"] for c in res.cells):
            sub = [c for c in res.cells if c["region"] == region and c["head"] == head]
            if not sub:
                continue
            lines += [f"**{region} / {head}**", "", "| training | " + " | ".join(tests) + " | val AUC |",
                      "|---|" + "---|" * (len(tests) + 1)]
            for training in dict.fromkeys(c["training"] for c in sub):
                row = {c["test"]: c for c in sub if c["training"] == training}
                lines.append(f"| {training} | " + " | ".join(
                    f"{row[t]['auc']:.3f} ± {row[t]['auc_sd']:.3f} [{row[t]['ci_lo']:.2f}, {row[t]['ci_hi']:.2f}]"
                    for t in tests) + f" | {next(iter(row.values()))['val_auc']:.3f} |")
            n = sub[0]
            lines += ["", f"({n['n_real']} test reals, {n['n_fake']} test fakes per column)", ""]
    if res.diffs:
        lines += [("Paired difference to `supervised_f2f` (mean over seeds; 95 % bootstrap interval over test "
                   "videos; permutation p):"), "", "| region | head | test | comparison | diff | 95 % interval | p |",
                  "|---|---|---|---|---|---|---|"]
        for d in res.diffs:
            lines.append(f"| {d['region']} | {d['head']} | {d['test']} | {d['comparison']} | {d['diff']:+.3f} | "
                         f"[{d['ci_lo']:+.3f}, {d['ci_hi']:+.3f}] | {d['p_value']:.3f} |")
        lines.append("")
    if res.localisation:
        lines += [("Temporal localisation of the attention head: frame-level AUC of the attention weights "
                   "against the manipulated frames (0.5 = no better than uniform), mean ± sd over test videos x "
                   "seeds:"), "",
                  "| region | training | test fakes | frame AUC | n |", "|---|---|---|---|---|"]
        for r in res.localisation:
            lines.append(f"| {r['region']} | {r['training']} | {r['test_fakes']} | {r['frame_auc']:.3f} ± "
                         f"{r['frame_auc_sd']:.3f} | {r['videos_x_seeds']} |")
        lines.append("")
    return "\n".join(lines)


def plot_generalisation(cells: list[dict[str, Any]], path: Path) -> Path:
    """One panel per (region, head): bars of test AUC per test manipulation, one colour per training,
    95 % interval as error bars, each seed's AUC as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((c["region"], c["head"]) for c in cells))
    tests = list(dict.fromkeys(c["test"] for c in cells))
    trainings = list(dict.fromkeys(c["training"] for c in cells))
    cols = min(2, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    width = 0.8 / max(1, len(trainings))
    for ax, (region, head) in zip(axes.flat, panels):
        for j, tr in enumerate(trainings):
            for i, t in enumerate(tests):
                c = next((c for c in cells if (c["region"], c["head"], c["training"], c["test"]) == (region, head, tr, t)),
                         None)
                if c is None:
                    continue
                x = i + (j - (len(trainings) - 1) / 2) * width
                err = [[max(0.0, c["auc"] - c["ci_lo"])], [max(0.0, c["ci_hi"] - c["auc"])]]
                ax.bar([x], [c["auc"]], width * 0.95, yerr=err, capsize=2, color=f"C{j}",
                       label=tr if i == 0 else None)
                ax.plot([x] * len(c["auc_per_seed"]), c["auc_per_seed"], "k.", ms=2.5, alpha=0.6)
        ax.set_xticks(range(len(tests)), tests)
        ax.set_ylim(0.0, 1.1)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{region} / {head}", fontsize=10)
        ax.set_ylabel("test video AUC")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(title="trained on", fontsize=7, title_fontsize=8, loc="lower left")
    fig.suptitle("Generalisation to unseen manipulations (mean over seeds, 95 % interval)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def prepare_data(out: str | Path, pairs: int = 30, frames: int = 64, size: int = 112,
                 regions: tuple[str, ...] = ("full", "mouth"), per_video: int = 1, seed: int = 0, workers: int = 2,
                 split_shares: tuple[float, float, float] = (0.5, 0.2, 0.3), progress: bool = True) -> Path:
    """The study's data under ``out``: a ``synth`` dataset (``data/``: Face2Face, FaceSwap and EyeBlink
    fakes of the same real videos) and its cache (``cache/``: ``regions`` at ``size`` px, plus
    ``per_video`` pseudo-fakes (sbi, vb; region any) of every real video). Both resume. Returns the cache."""
    from forensight.config import PreprocessConfig
    from forensight.datasets import read_dataset
    from forensight.preprocess import run_preprocess
    from forensight.pseudofake import PseudoFakeConfig
    from forensight.synth import generate

    out = Path(out)
    data, cache = out / "data", out / "cache"
    if not (data / "dataset.json").is_file():
        generate(data, num_pairs=pairs, frames=frames, methods=TEST_METHODS, seed=seed, workers=workers,
                 progress=progress, split_shares=split_shares)
    run_preprocess(read_dataset("ffpp", data), cache, PreprocessConfig(size=size, regions=regions), workers=workers,
                   progress=progress, pseudo=PseudoFakeConfig(per_video=per_video, seed=seed))
    return cache
