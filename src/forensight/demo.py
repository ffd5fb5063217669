"""``forensight demo``: the whole loop on the built-in synthetic data, on a laptop CPU.

synth (real talking-face footage + Face2Face-like mouth reenactment, temporally sparse)
→ preprocess (32 linear frames; frame / full / eyes / mouth crops from native resolution)
→ study (regions × {control, attention} with the CPU preset) → table and plots.
Every step resumes: run it again and finished work is reused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from forensight.config import DemoConfig


def run_demo(out: str | Path = "forensight_demo", cfg: DemoConfig = DemoConfig(), study: bool = True,
             progress: bool = True) -> dict[str, Any]:
    """Run the demo into ``out``; returns paths and figures (also printed by the CLI)."""
    from forensight.config import PreprocessConfig
    from forensight.datasets import read_dataset
    from forensight.preprocess import run_preprocess
    from forensight.synth import generate

    t0 = time.perf_counter()
    out = Path(out)
    data, cache_dir, study_dir = out / "data", out / "cache", out / "study"
    result: dict[str, Any] = {"out": str(out)}
    if not (data / "dataset.json").is_file():
        print(f"[demo 1/3] generating the synthetic dataset -> {data}", flush=True)
        result["synth"] = str(generate(data, num_pairs=cfg.pairs, frames=cfg.frames, seed=cfg.seed,
                                       workers=cfg.workers, progress=progress))
        print(result["synth"], flush=True)
    else:
        print(f"[demo 1/3] synthetic dataset already at {data}", flush=True)
    print(f"[demo 2/3] preprocessing -> {cache_dir}", flush=True)
    pcfg = PreprocessConfig(size=cfg.size, regions=cfg.regions)
    summary = run_preprocess(read_dataset("ffpp", data), cache_dir, pcfg, workers=cfg.workers, progress=progress)
    print(summary, flush=True)
    result["preprocess"] = str(summary)
    if study:
        from forensight.study import format_cells, run_study

        print(f"[demo 3/3] region study ({len(cfg.regions)} regions x {len(cfg.heads)} heads, "
              f"{cfg.family}) -> {study_dir}", flush=True)
        res = run_study(cache_dir, study_dir, regions=cfg.regions, heads=cfg.heads, family=cfg.family,
                        seeds=(cfg.seed,), train={"max_epochs": cfg.epochs, "patience": cfg.patience,
                                                  "batch_size": cfg.batch_size, "lr": cfg.lr},
                        model_overrides={"input_size": cfg.size},
                        progress=progress)
        result["table"] = format_cells(res.cells)
        result["table_md"] = str(res.table_md)
        result["plot"] = str(res.plot)
        print(result["table"], flush=True)
        print(f"wrote {res.table_md}, {res.table_csv}, {res.plot}", flush=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"demo finished in {result['seconds']:.0f} s -> {out}", flush=True)
    return result
