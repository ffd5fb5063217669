"""``forensight demo``: the whole loop on the built-in synthetic data, on a laptop CPU.

1. synth: real talking-face footage + Face2Face-like mouth reenactment in temporally sparse bursts;
2. preprocess: 32 linear frames; frame / full / eyes / mouth crops from the native resolution;
3. region study: regions × {control, attention} × seeds with frozen ImageNet EfficientNet-Lite0
   features (study.csv with mean ± sd, study_diff.csv with the paired attention − control test);
4. sparsity sweep: one dataset whose fakes are manipulated on 100 / 50 / 25 / 10 % of their frames
   (the same reals), mouth region, both heads, 100 test videos per condition (sweep.csv, sweep.png),
   with the attention's temporal localisation against the known manipulated frames;
5. generalisation (small): Face2Face / FaceSwap / EyeBlink fakes of the same reals plus pseudo-fakes
   of the reals; trained on Face2Face, on pseudo-fakes only, or both, tested on each manipulation
   (generalisation/generalisation.md; the full version is ``forensight study --generalisation``).

Every step resumes: run it again and finished work is reused, with identical numbers (training and
scoring are deterministic on CPU; a fresh run re-encodes the synthetic videos, and H.264 encoding
here is not bit-reproducible).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from forensight.config import DemoConfig


def _say(text: str) -> None:
    print(text, flush=True)


def run_demo(out: str | Path = "forensight_demo", cfg: DemoConfig | None = None, study: bool = True,
             progress: bool = True) -> dict[str, Any]:
    """Run the demo into ``out``; returns paths, tables and timings (also printed)."""
    from forensight.config import PreprocessConfig
    from forensight.datasets import read_dataset
    from forensight.preprocess import run_preprocess
    from forensight.study import format_cells, format_diffs, run_study
    from forensight.sweep import default_conditions, format_sweep, run_sweep
    from forensight.synth import Variant, generate

    cfg = cfg or DemoConfig()
    t0 = time.perf_counter()
    out = Path(out)
    data, cache_dir, study_dir = out / "data", out / "cache", out / "study"
    steps = 3 + bool(cfg.sweep_fractions) + bool(cfg.gen_seeds)
    result: dict[str, Any] = {"out": str(out), "seconds": {}}

    def timed(key: str, t: float) -> None:
        result["seconds"][key] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    if not (data / "dataset.json").is_file():
        _say(f"[demo 1/{steps}] generating the synthetic dataset -> {data}")
        _say(str(generate(data, num_pairs=cfg.pairs, frames=cfg.frames, seed=cfg.seed, workers=cfg.workers,
                          progress=progress)))
    else:
        _say(f"[demo 1/{steps}] synthetic dataset already at {data}")
    timed("synth", t)
    _say(f"[demo 2/{steps}] preprocessing -> {cache_dir}")
    t = time.perf_counter()
    pcfg = PreprocessConfig(size=cfg.size, regions=cfg.regions)
    _say(str(run_preprocess(read_dataset("ffpp", data), cache_dir, pcfg, workers=cfg.workers, progress=progress)))
    timed("preprocess", t)
    if not study:
        return result
    _say(f"[demo 3/{steps}] region study: {len(cfg.regions)} regions x {len(cfg.heads)} heads x "
         f"{len(cfg.seeds)} seeds ({cfg.family}, frozen ImageNet features) -> {study_dir}")
    t = time.perf_counter()
    res = run_study(cache_dir, study_dir, regions=cfg.regions, heads=cfg.heads, family=cfg.family, seeds=cfg.seeds,
                    train=cfg.train(), model_overrides=cfg.model_overrides(), progress=progress)
    timed("study", t)
    result.update(table=format_cells(res.cells), diffs=format_diffs(res.diffs), table_md=str(res.table_md),
                  plot=str(res.plot), seconds_per_run=round(res.seconds_per_run, 1))
    _say(result["table"])
    _say("attention - control (paired over seeds and test videos):")
    _say(result["diffs"])
    if cfg.sweep_fractions:
        conds = default_conditions(cfg.sweep_fractions)
        sdata, scache, sout = out / "sweep_data", out / "sweep_cache", out / "sweep"
        _say(f"[demo 4/{steps}] sparsity sweep: fractions {', '.join(f'{f:g}' for f in cfg.sweep_fractions)} "
             f"x {len(cfg.heads)} heads x {len(cfg.sweep_seeds)} seeds, mouth -> {sout}")
        t = time.perf_counter()
        if not (sdata / "dataset.json").is_file():
            _say(str(generate(sdata, num_pairs=cfg.sweep_pairs, frames=cfg.sweep_frames, seed=cfg.seed + 1,
                              workers=cfg.workers, progress=progress, split_shares=cfg.sweep_shares,
                              variants=[Variant(c.name, "Face2Face", c.sparsity, c.strength) for c in conds])))
        spcfg = PreprocessConfig(size=cfg.size, regions=("mouth",))
        _say(str(run_preprocess(read_dataset("ffpp", sdata), scache, spcfg, workers=cfg.workers, progress=progress)))
        timed("sweep_data", t)
        t = time.perf_counter()
        sw = run_sweep(scache, sout, conds, family=cfg.family, seeds=cfg.sweep_seeds, train=cfg.train(),
                       model_overrides=cfg.model_overrides(), progress=progress)
        timed("sweep", t)
        result.update(sweep=format_sweep(sw.rows), sweep_csv=str(sw.csv), sweep_plot=str(sw.plot))
        _say(result["sweep"])
    if cfg.gen_seeds:
        from forensight.generalisation import prepare_data, run_generalisation

        gout = out / "generalisation"
        _say(f"[demo {steps}/{steps}] generalisation (small): trained on Face2Face / pseudo-fakes / both x "
             f"{', '.join(cfg.gen_regions)} x {len(cfg.heads)} heads x {len(cfg.gen_seeds)} seeds, tested on "
             f"Face2Face, FaceSwap, EyeBlink -> {gout}")
        t = time.perf_counter()
        gcache = prepare_data(gout, pairs=cfg.gen_pairs, frames=cfg.gen_frames, size=cfg.size, regions=cfg.gen_regions,
                              per_video=cfg.gen_per_video, seed=cfg.seed + 2, workers=cfg.workers, progress=progress)
        timed("generalisation_data", t)
        t = time.perf_counter()
        gres = run_generalisation(gcache, gout, regions=cfg.gen_regions, heads=cfg.heads, seeds=cfg.gen_seeds,
                                  family=cfg.family, train=cfg.train(), model_overrides={"input_size": cfg.size},
                                  progress=progress)
        timed("generalisation", t)
        result.update(generalisation_md=str(gres.table_md), generalisation_plot=str(gres.plot))
        _say(gres.table_md.read_text() if gres.table_md else "")
    result["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    _say(f"demo finished in {result['seconds']['total']:.0f} s -> {out}  (stage seconds: "
         + ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items() if k != "total") + ")")
    return result
