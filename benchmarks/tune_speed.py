"""Wall-clock of `forensight tune` on one region of a cache with frozen-encoder features (benchmark, not a test).

Target (issue 23): 30 trials on one region of the demo cache in <= 5 min on 2 CPU cores. In one
run it measures
  - reference: one training run of the starting recipe (the demo's: 20 epochs, patience 8) on the
    same region, the unit a trial is made of (a trial trains once per tuning seed);
  - tune:      the search itself (`--trials`, `--seeds`, median pruner on), in a fresh folder.
and prints the seconds of each, the search's cost in reference runs, and the ratio to the 300 s
target; with ``--save`` it writes ``benchmarks/results/tune_speed.json`` (the performance tables).
Contention matters: say whether the machine was shared.

    python benchmarks/tune_speed.py --cache forensight_demo/cache --region full [--trials 30] [--save]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

TARGET_S = 300.0
RECIPE = {"max_epochs": 20, "patience": 8, "batch_size": 8, "lr": 1e-3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True, help="a cache with frozen Lite0 features (forensight demo)")
    ap.add_argument("--region", default="full")
    ap.add_argument("--preset", default="region_lite0_control")
    ap.add_argument("--input-size", type=int, default=112)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--workers", type=int, help="processes per trial (default: tune's, one per seed)")
    ap.add_argument("--out", type=Path, help="keep the search here (default: a temporary folder)")
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/tune_speed.json")
    a = ap.parse_args()

    from benchjson import Recorder

    from forensight.config import get_model_config
    from forensight.train import TrainConfig, train
    from forensight.tune import tune

    rec = Recorder("tune_speed", note=f"forensight tune, {a.preset} on region {a.region} of the cache {a.cache} "
                                      f"(frozen Lite0 features), {a.trials} trials, seeds {a.seeds}")
    work = Path(tempfile.mkdtemp(prefix="tune_bench_"))
    try:
        model = get_model_config(a.preset, region=a.region, input_size=a.input_size)
        t = time.perf_counter()
        train(a.cache, work / "ref", model, TrainConfig(**RECIPE), progress=False)
        ref_s = time.perf_counter() - t
        out = a.out or work / "tune"
        t = time.perf_counter()
        res = tune(a.cache, out, model, n_trials=a.trials, seeds=[int(s) for s in a.seeds.split(",")],
                   train=RECIPE, workers=a.workers, progress=True)
        tune_s = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, torch threads {__import__('torch').get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"reference: one training run (20 epochs) {ref_s:.1f} s")
    print(f"tune: {len(res.trials)} trials ({res.n_complete} complete, {res.n_pruned} pruned), "
          f"{res.n_trained_now} runs trained, {tune_s:.1f} s = {tune_s / ref_s:.1f} reference runs")
    print(f"ratio to the {TARGET_S:.0f} s target: {tune_s / TARGET_S:.2f} ({'met' if tune_s <= TARGET_S else 'missed'})")
    start = next((r["value"] for r in res.trials if r["base"]), float("nan"))
    print(f"search: best validation {res.objective} {res.best_value:.4f} (trial {res.best_trial}), "
          f"starting recipe {start:.4f}")
    if a.save:
        rec.add("tune.trials_30", f"`forensight tune`, {a.trials} trials on one region of the demo cache", tune_s, "s",
                target=f"<= {TARGET_S:.0f} s",
                detail=f"{tune_s / TARGET_S:.2f}x the target; {tune_s / ref_s:.1f} reference runs "
                       f"(one 20-epoch run: {ref_s:.1f} s); {res.n_complete} complete, {res.n_pruned} pruned; "
                       f"best validation {res.objective} {res.best_value:.3f} (start {start:.3f})")
        rec.save()


if __name__ == "__main__":
    main()
