"""The ``forensight`` command line: a thin layer, every subcommand is one library call."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from forensight._version import __version__
from forensight.config import DETECTORS


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


# ---- synth ---------------------------------------------------------------------------------------

def cmd_synth(a: argparse.Namespace) -> int:
    from forensight.synth import generate

    summary = generate(a.out, num_pairs=a.pairs, methods=tuple(a.methods), frames=a.frames, fps=a.fps,
                       size=a.size, strength=a.strength, sparsity=a.sparsity, seed=a.seed, workers=a.workers,
                       progress=not a.quiet, overwrite=a.overwrite)
    print(summary)
    if a.two_person:
        from forensight.synth import generate_two_person

        items = generate_two_person(a.out, a.two_person, frames=a.frames, fps=a.fps, size=a.size,
                                    method=a.methods[0], strength=a.strength, sparsity=a.sparsity, seed=a.seed)
        print(f"two-person videos: {len(items)} in {Path(a.out) / 'two_person'} (one person manipulated in each; "
              "see two_person.json)")
    return 0


# ---- preprocess ----------------------------------------------------------------------------------

def preprocess_config_from_args(a: argparse.Namespace) -> Any:
    from forensight.config import PREPROCESS_PRESETS, PreprocessConfig, merge, yaml_section

    flags = {"sampling": a.sampling, "num_frames": a.frames, "detector": a.detector, "size": a.size,
             "regions": a.regions, "max_frames": a.max_frames}
    return merge(PreprocessConfig, PREPROCESS_PRESETS[a.preset], yaml_section(a.config, "preprocess"), flags)


def pseudo_config_from_args(a: argparse.Namespace) -> Any:
    """The pseudo-fake settings of ``preprocess`` (None without ``--pseudo-fakes``)."""
    from forensight.pseudofake import PseudoFakeConfig

    if not a.pseudo_fakes:
        for flag, value, default in (("--per-video", a.per_video, None), ("--pseudo-region", a.pseudo_region, None),
                                     ("--pseudo-per-frame", a.pseudo_per_frame, False)):
            if value != default:
                raise ValueError(f"{flag} applies with --pseudo-fakes (e.g. --pseudo-fakes sbi,vb)")
        return None
    return PseudoFakeConfig(kinds=tuple(a.pseudo_fakes), per_video=a.per_video or 1, region=a.pseudo_region or "any",
                            sparsity=a.pseudo_sparsity, per_frame=a.pseudo_per_frame, seed=a.pseudo_seed)


def read_records(a: argparse.Namespace) -> list[Any]:
    from forensight.datasets import detect_layout, read_dataset

    kind = a.layout if a.layout != "auto" else detect_layout(a.root)
    opts: dict[str, Any] = {}
    if kind == "ffpp":
        opts["compression"] = a.compression
        if a.methods:
            opts["methods"] = a.methods
    if kind == "dfdc":
        opts["test_list"] = None if a.test_list == "all" else a.test_list
        opts["allow_missing"] = a.allow_missing
    elif a.test_list != "lipforensics" or a.allow_missing:
        raise ValueError(f"--test-list and --allow-missing apply to the DFDC layout, not {kind!r}")
    records = read_dataset(kind, a.root, **opts)
    if a.splits:
        records = [r for r in records if r.split in a.splits]
    if a.limit:
        records = records[: a.limit]
    return records


def cmd_preprocess(a: argparse.Namespace) -> int:
    from forensight.preprocess import run_preprocess

    cfg = preprocess_config_from_args(a)
    records = read_records(a)
    if not records:
        print(f"no videos found under {a.root}", file=sys.stderr)
        return 2
    pseudo = pseudo_config_from_args(a)
    print(f"preprocessing {len(records)} videos with config {cfg.hash} "
          f"(sampling={cfg.sampling}, regions={','.join(cfg.regions)}, detector={cfg.detector})"
          + (f" + {pseudo.per_video} pseudo-fake(s) per real video ({','.join(pseudo.kinds)}, region {pseudo.region})"
             if pseudo else "") + f" -> {a.out}")
    summary = run_preprocess(records, a.out, cfg, workers=a.workers, shard=a.shard,
                             retry_failed=a.retry_failed, progress=not a.quiet, pseudo=pseudo)
    print(summary)
    return 0


# ---- train / evaluate ----------------------------------------------------------------------------

def cmd_train(a: argparse.Namespace) -> int:
    from forensight.config import load_experiment
    from forensight.train import train

    if not a.preset and not a.config:
        print("forensight train: error: give --preset (see `forensight models`) or --config EXPERIMENT.yaml",
              file=sys.stderr)
        return 2
    exp = load_experiment(a.config, model=a.preset,
                          model_overrides={"region": a.region, "input_size": a.input_size, "weights": a.init,
                                           "freeze": "none" if a.unfreeze else None},
                          train={"max_epochs": a.epochs, "patience": a.patience, "batch_size": a.batch_size,
                                 "accumulate": a.accumulate, "lr": a.lr, "balance": a.balance, "seed": a.seed,
                                 "num_workers": a.num_workers, "precision": a.precision,
                                 "accelerator": a.accelerator, "devices": a.devices, "num_nodes": a.num_nodes,
                                 "strategy": a.strategy, "max_clips": a.max_clips, "max_frames": a.max_frames,
                                 "encoder_mode": a.encoder, "warmup_epochs": a.warmup_epochs,
                                 "min_epochs": a.min_epochs, "methods": tuple(a.methods) if a.methods else None,
                                 "augment": a.augment, "fakes": a.fakes})
    res = train(a.cache, a.run_dir, exp.model, exp.train, resume=a.resume, progress=not a.quiet)
    if res.best_epoch >= 0:
        m = res.val_metrics
        auc = m.get("auc")
        print(f"trained {exp.model.name}: best epoch {res.best_epoch} on validation loss"
              + (f", validation AUC {auc:.3f}" if isinstance(auc, float) else "")
              + f", threshold {m.get('threshold', 0.0):.3f}  [{res.seconds:.0f} s] -> {res.model_path}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from forensight.evaluate import evaluate

    res = evaluate(a.model, a.cache, a.out, split=a.split, batch_size=a.batch_size, max_frames=a.max_frames,
                   max_clips=a.max_clips, n_bootstrap=a.bootstrap, device=a.device, progress=not a.quiet,
                   features=False if a.from_crops else None, methods=tuple(a.methods or ()),
                   calibrate=a.calibrate, explain=a.explain)
    m = res.metrics
    lo, hi = m["auc_ci"]
    print(f"{m['split']}: {m['n']} videos ({m['n_real']} real, {m['n_fake']} fake)  "
          f"video AUC {m['auc']:.4f} [95% CI {lo:.3f}-{hi:.3f}]  AP {m['ap']:.4f}  EER {m['eer']:.4f}  "
          f"acc@0.5 {m['acc_at_0.5']:.4f}  acc@val-threshold {m['acc_at_threshold']:.4f}  "
          f"clip AUC {m['clip_auc']:.4f}")
    if m.get("not_scored"):
        print(f"{len(m['not_scored'])} video(s) not scored (listed in metrics.json): "
              + "; ".join(f"{k}: {v}" for k, v in list(m["not_scored"].items())[:3]))
    cal = m["calibration"]
    line = f"P(fake) {cal['p_fake']}; ECE ({cal['n_bins']} bins) {m['ece']:.4f}, Brier {m['brier']:.4f}"
    if cal["temperature"] is not None:
        line += f" (uncalibrated: ECE {cal['ece_uncalibrated']:.4f}, Brier {cal['brier_uncalibrated']:.4f})"
    print(line)
    ex = m.get("explain")
    if ex:
        def _ci(k: str) -> str:
            v, (lo, hi) = ex[k], ex[f"{k}_ci"]
            return "-" if v is None else f"{v:.3f} [{lo:.3f}-{hi:.3f}]"
        print(f"evidence maps on {ex['videos']} fake(s) with known areas ({ex['frames']} frames): energy inside "
              f"{_ci('energy_inside')} vs area share {_ci('area_share')}; pointing game {_ci('pointing_hit')}")
    print(f"wrote {res.out_dir}/metrics.json, scores.csv, roc.png, confusion.png, reliability.png"
          + (", explain.csv" if ex else ""))
    return 0


def _levels(text: str) -> list[int]:
    """``1-5``, ``1,3,5`` or ``2`` → sorted levels."""
    out: set[int] = set()
    try:
        for part in _csv_list(text):
            lo, sep, hi = part.partition("-")
            out.update(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--levels must look like 1-5 or 1,3,5, got {text!r}") from None
    if not out or not out <= {1, 2, 3, 4, 5}:
        raise argparse.ArgumentTypeError(f"--levels must be within 1-5, got {text!r}")
    return sorted(out)


def cmd_robustness(a: argparse.Namespace) -> int:
    from forensight.robustness import format_table, run_robustness

    opts: dict[str, Any] = {}
    if a.layout in ("auto", "ffpp") and a.compression:
        from forensight.datasets import detect_layout

        if (a.layout if a.layout != "auto" else detect_layout(a.data)) == "ffpp":
            opts["compression"] = a.compression
    res = run_robustness(a.model, a.data, a.out, layout=a.layout, read_opts=opts, workers=a.workers, shard=a.shard,
                         cache_dir=a.cache_dir, progress=not a.quiet, types=tuple(a.types) if a.types else None,
                         levels=tuple(a.levels) if a.levels else None, seed=a.seed, split=a.split,
                         batch_size=a.batch_size, n_bootstrap=a.bootstrap, device=a.device,
                         methods=tuple(a.methods) if a.methods else None, keep_videos=a.keep_videos or None)
    if res.scored:
        print(format_table(res.table))
        print(f"wrote {', '.join(str(p) for p in res.files.values())}  [{res.seconds['total']:.0f} s]")
    return 0


def cmd_study(a: argparse.Namespace) -> int:
    from forensight.config import study_recipe
    from forensight.study import format_cells, format_diffs, run_study

    model_yaml, train_yaml = study_recipe(a.config)
    flags = {"max_epochs": a.epochs, "patience": a.patience, "batch_size": a.batch_size, "lr": a.lr,
             "accelerator": a.accelerator, "devices": a.devices}
    train = {**train_yaml, **{k: v for k, v in flags.items() if v is not None}}
    model = {**model_yaml, **({"input_size": a.input_size} if a.input_size else {})}
    if a.generalisation:
        return _generalisation(a, train, model)
    if a.cache is None:
        raise ValueError("forensight study needs --cache (only --generalisation makes its own data)")
    a.regions = a.regions or ["frame", "full", "eyes", "mouth"]
    res = run_study(a.cache, a.out, regions=tuple(a.regions), heads=tuple(a.heads), family=a.family,
                    seeds=tuple(a.seeds), train=train, model_overrides=model,
                    n_bootstrap=a.bootstrap, methods=tuple(a.methods or ()), progress=not a.quiet,
                    tune_trials=a.tune, tune_seeds=tuple(a.tune_seeds))
    print(format_cells(res.cells))
    if res.diffs:
        print("attention - control (paired over seeds and test videos):")
        print(format_diffs(res.diffs))
    print(f"wrote {res.table_md}, {res.table_csv}, {res.diff_csv}, {res.plot}  [{res.seconds:.0f} s]")
    return 0


def cmd_study_compare(a: argparse.Namespace) -> int:
    from forensight.study import compare_studies, format_comparison

    rows = compare_studies(a.before, a.after, a.out, n_bootstrap=a.bootstrap)
    print(format_comparison(rows))
    if a.out:
        print(f"wrote {a.out / 'compare.md'}, {a.out / 'compare.csv'}")
    return 0


def cmd_tune(a: argparse.Namespace) -> int:
    from forensight.config import load_experiment
    from forensight.tune import tune

    preset = a.preset or (None if a.config else "region_lite0_attention")
    exp = load_experiment(a.config, model=preset,
                          model_overrides={"input_size": a.input_size},
                          train={"methods": tuple(a.methods) if a.methods else None})
    res = tune(a.cache, a.out, exp.model, region=a.region, n_trials=a.trials, seeds=tuple(a.seeds),
               sampler_seed=a.sampler_seed, objective=a.objective, train=exp.train, keep_runs=a.keep_runs,
               workers=a.workers, prune=a.prune, progress=not a.quiet,
               **({} if a.prune_warmup is None else {"prune_warmup": a.prune_warmup}))
    start = next((r["value"] for r in res.trials if r["base"]), None)
    print(f"best of {len(res.trials)} trials ({res.n_complete} complete, {res.n_pruned} pruned): trial "
          f"#{res.best_trial}, validation {res.objective} {res.best_value:.4f}"
          + (f" (starting recipe {start:.4f})" if start is not None else ""))
    print("  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in res.best_params.items()))
    print(f"wrote {res.best_yaml}, {res.trials_csv}, {res.plot}  [{res.seconds:.0f} s, "
          f"{res.n_trained_now} runs trained now]")
    return 0


def _generalisation(a: argparse.Namespace, train: dict[str, Any], model: dict[str, Any]) -> int:
    """``study --generalisation``: make the data (unless --cache), run the study, print the table.

    Recipe: the demo's (``DemoConfig.train()`` / ``model_overrides()``) under ``train`` / ``model``
    (``--config``'s sections with the flags over them, from :func:`cmd_study`)."""
    from forensight.config import DemoConfig
    from forensight.generalisation import prepare_data, run_generalisation

    demo = DemoConfig()
    train = {**demo.train(), **train}
    model = {**demo.model_overrides(), **model}
    regions = tuple(a.regions or ("full", "mouth"))
    size = model["input_size"]
    cache = a.cache or prepare_data(a.out, pairs=a.pairs, per_video=a.per_video, size=size, regions=regions,
                                    workers=a.workers, progress=not a.quiet)
    res = run_generalisation(cache, a.out, regions=regions, heads=tuple(a.heads), seeds=tuple(a.seeds),
                             family=a.family, train=train, model_overrides=model,
                             n_bootstrap=a.bootstrap, progress=not a.quiet)
    print(res.table_md.read_text() if res.table_md else "")
    print(f"wrote {res.table_md}, {res.table_csv}, {res.plot}  [{res.seconds:.0f} s]")
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from forensight.config import merge
    from forensight.demo import DemoConfig, run_demo

    cfg = merge(DemoConfig, {"pairs": a.pairs, "epochs": a.epochs, "workers": a.workers,
                             "seeds": tuple(a.seeds) if a.seeds else None,
                             "sweep_fractions": () if a.no_sweep else None,
                             "gen_seeds": () if a.no_generalisation else None})
    run_demo(a.out, cfg, study=not a.no_study, progress=not a.quiet)
    return 0


# ---- detect --------------------------------------------------------------------------------------

def cmd_detect(a: argparse.Namespace) -> int:
    """Score videos; exit 0 if every video was scored, 1 if some failed (listed), 2 on usage/model errors."""
    import json

    from forensight.detect import ModelLoadError, detect_batch, load_detector
    from forensight.report import to_jsonable
    from forensight.result import format_results

    paths: list[Any] = list(a.paths or [])
    if a.list:
        try:
            lines = Path(a.list).read_text().splitlines()
        except OSError as e:
            print(f"forensight detect: error: cannot read --list {a.list}: {e}", file=sys.stderr)
            return 2
        paths += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not paths:
        print("forensight detect: error: give video files or folders (or --list FILE)", file=sys.stderr)
        return 2
    try:
        det = load_detector(a.model, device=a.device, top_k=a.top_k, batch_size=a.batch_size,
                            people=not a.main_face_only, min_frames=a.min_frames, explain=a.explain or "")
    except ModelLoadError as e:
        print(f"forensight detect: error: {e}", file=sys.stderr)
        return 2
    out = detect_batch(paths, det, report=a.report, csv=a.csv, progress=not a.quiet)
    for w in out.warnings:
        print(f"forensight detect: warning: {w}", file=sys.stderr)
    if a.json:
        print(json.dumps(to_jsonable(out.document), indent=2, allow_nan=False))
        for r in out.failed:  # stdout is the JSON; still say which failed
            print(f"forensight detect: failed: {r.path or r.name}: {r.reason}: {r.message}", file=sys.stderr)
    else:
        print(format_results(out.results))
        if out.csv:
            print(f"wrote {out.csv}")
        if out.index:
            print(f"wrote {out.index} ({len(out.pages)} page(s))")
    return 1 if out.failed else 0


def cmd_sheet(a: argparse.Namespace) -> int:
    from forensight.cache import Cache
    from forensight.report import contact_sheet

    cache = Cache.open(a.cache)
    ids = a.video_ids or cache.video_ids()[:1]
    for vid in ids:
        e = cache.load(vid)
        out = a.out / f"{e.meta['video_id'].replace('/', '__')}.png"
        contact_sheet(e.regions, out, frames=a.frames)
        print(f"{vid}: {len(e)} frames, face coverage {e.meta.get('coverage')}, regions {list(e.regions)} -> {out}")
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from forensight.models.registry import get_model_config, list_models

    if a.published:
        from forensight.models.published import format_published

        print(format_published())
        return 0

    for name in list_models():
        c = get_model_config(name)
        spec = c.input_spec()
        extra = f"encoder={getattr(c, 'encoder', '-'):20s}" if hasattr(c, "encoder") else f"{'':28s}"
        print(f"{name:26s} {c.arch:13s} {extra} pooling={c.pooling:9s} {spec.describe()}")
    return 0


# ---- model folders: import / export / calibrate ----------------------------------------------------

def cmd_import(a: argparse.Namespace) -> int:
    from forensight.modelfile import import_published

    lm = import_published(a.checkpoint, name=a.name, out=a.out)
    print(f"imported {a.checkpoint} (sha256 {lm.source['sha256'] if lm.source else '?'}) -> {lm.path}\n"
          f"  threshold: {lm.threshold_source}\n  detect with: forensight detect --model {lm.path} VIDEO")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from forensight.modelfile import export_model

    print(f"wrote {export_model(a.model, a.out)} (model.safetensors, config.json, README.md)")
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    from forensight.evaluate import calibrate_model

    res = calibrate_model(a.model, a.cache, a.out, rule=a.rule, progress=not a.quiet, batch_size=a.batch_size,
                          max_frames=a.max_frames, max_clips=a.max_clips, n_bootstrap=a.bootstrap, device=a.device,
                          methods=tuple(a.methods or ()))
    m = res.metrics
    print(f"wrote {res.folder}: threshold logit {res.threshold:.4f} (P(fake) >= {res.threshold_p:.3f}), temperature "
          f"{res.temperature:.4g}; on the {m['n']} validation videos: AUC {m['auc']:.3f} "
          f"[{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}], accuracy at the threshold {m['acc_at_threshold']:.3f}")
    return 0


# ---- serve ---------------------------------------------------------------------------------------

def cmd_serve(a: argparse.Namespace) -> int:
    """Run the web app and HTTP API until Ctrl-C (errors in the settings or models: exit 2)."""
    import os

    from forensight.serve import ServeConfig, serve

    logging.getLogger("forensight.serve").setLevel(logging.INFO)
    serve(ServeConfig(models=a.model, host=a.host, port=a.port, data_dir=a.data_dir, workers=a.workers,
                      max_upload_mb=a.max_upload_mb, queue_size=a.queue_size, retention_days=a.retention_days,
                      token=a.token or os.environ.get("FORENSIGHT_TOKEN")))
    return 0


# ---- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forensight", description=__doc__)
    p.add_argument("--version", action="version", version=f"forensight {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate the synthetic deepfake dataset (FaceForensics++ layout)")
    s.add_argument("out", type=Path, help="output folder")
    s.add_argument("--pairs", type=int, default=20,
                   help="[target, source] pairs: each gives 2 real videos and 2 fakes per method (>= 3)")
    s.add_argument("--size", type=lambda t: tuple(int(v) for v in t.lower().split("x")), default=(320, 256),
                   help="video size WxH (default 320x256)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing synthetic dataset there")
    s.add_argument("--methods", type=_csv_list, default=["Face2Face"],
                   help="comma-separated: Face2Face, FaceSwap, EyeBlink (default Face2Face)")
    s.add_argument("--frames", type=int, default=64)
    s.add_argument("--fps", type=float, default=25.0)
    s.add_argument("--strength", type=float, default=1.0, help="artefact strength (0..1+)")
    s.add_argument("--sparsity", type=float, default=0.5, help="fraction of frames manipulated")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--two-person", type=int, default=0, metavar="N",
                   help="also write N videos of two people side by side, one of them manipulated "
                        "(two_person/, for detect; not in any split)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("preprocess", help="videos -> face tracks, landmarks and region crops in a cache")
    s.add_argument("root", type=Path, help="dataset root (FaceForensics++, Celeb-DF-v2, DFDC, folder) or a CSV")
    s.add_argument("--out", type=Path, required=True, help="cache folder (resumed if it exists)")
    s.add_argument("--layout", default="auto", choices=["auto", "ffpp", "celebdf", "dfdc", "folder", "csv"])
    s.add_argument("--preset", default="region", choices=["region", "lips", "mouth_crops"],
                   help="region: 32 linear frames, frame/full/eyes/mouth at 224; lips: every frame, 96-px "
                        "aligned mouths; mouth_crops: the videos already are 96x96 aligned mouth crops")
    s.add_argument("--config", type=Path, help="YAML with preprocessing fields (overrides the preset)")
    s.add_argument("--sampling", choices=["linear", "stride", "all", "clips"])
    s.add_argument("--frames", type=int, help="frames for linear sampling")
    s.add_argument("--max-frames", type=int, help="read at most this many frames from each video's start")
    s.add_argument("--regions", type=_csv_list, help="comma-separated subset of frame,full,eyes,mouth,lips,eyes_band,mouth_band")
    s.add_argument("--size", type=int, help="crop side in pixels (default 224)")
    s.add_argument("--detector", choices=list(DETECTORS), help="face detector (default libfd; recall and cost of each: docs/results/face-recall.md)")
    s.add_argument("--compression", default="c23", help="FaceForensics++ compression folder")
    s.add_argument("--methods", type=_csv_list, help="FaceForensics++ methods (default: all present)")
    s.add_argument("--test-list", default="lipforensics",
                   help="DFDC test split: lipforensics (default: the 3,215 videos LipForensics reports on), "
                        "all (the metadata's own splits), or a text file with one video name per line")
    s.add_argument("--allow-missing", action="store_true",
                   help="DFDC: a video named in the metadata but absent on disk is recorded as failed "
                        "(not_found, one manifest row each) instead of stopping")
    s.add_argument("--splits", type=_csv_list, help="only these splits (e.g. train,val)")
    s.add_argument("--limit", type=int, default=0, help="only the first N videos (quick checks)")
    s.add_argument("--workers", type=int, default=2, help="worker processes")
    s.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: process shard i of n (job arrays)")
    s.add_argument("--retry-failed", action="store_true", help="retry videos that failed before")
    s.add_argument("--pseudo-fakes", type=_csv_list, metavar="KINDS",
                   help="also make pseudo-fakes of every REAL video from the same decoded frames: sbi (self-blend), "
                        "vb (video-level part blending / feature drift), e.g. sbi,vb; label 1, method pseudo_<kind>, "
                        "in the source's split (see docs: Train on your own real videos)")
    s.add_argument("--per-video", type=int, metavar="K", help="pseudo-fakes per real video (default 1)")
    s.add_argument("--pseudo-region", choices=["face", "eyes", "mouth", "any"],
                   help="landmark set of the pseudo-fake mask (default any: drawn per pseudo-fake)")
    s.add_argument("--pseudo-sparsity", type=float, default=0.5,
                   help="share of the sampled frames blended, in bursts (default 0.5)")
    s.add_argument("--pseudo-per-frame", action="store_true",
                   help="sbi: redraw the blend parameters every frame (default: once per video)")
    s.add_argument("--pseudo-seed", type=int, default=0, help="seed of the pseudo-fakes (with the video id)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_preprocess)

    s = sub.add_parser("train", help="train a detector (model selection on the validation split only)")
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--run-dir", type=Path, required=True)
    s.add_argument("--preset", help="model preset (see `forensight models`) or a model YAML path")
    s.add_argument("--config", type=Path, help="experiment YAML (`model:` and `train:` sections, e.g. "
                                                "configs/experiments/*.yaml or a run's config.yaml)")
    s.add_argument("--region", help="override the preset's region")
    s.add_argument("--input-size", type=int, help="override the preset's input side (pixels)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--patience", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--accumulate", type=int, help="gradient accumulation steps")
    s.add_argument("--lr", type=float)
    s.add_argument("--balance", choices=["loss", "sampler", "none"])
    s.add_argument("--init", help="initial weights (the model's `weights`): the official LipForensics "
                                  "checkpoint (lipforensics_ff.pth), or encoder weights for region models")
    s.add_argument("--unfreeze", action="store_true", help="LipForensics: train front end + trunk too")
    s.add_argument("--encoder", choices=["auto", "frozen", "finetune"],
                   help="region models: auto (default: frozen cached features when the encoder has pretrained "
                        "weights, else end to end), frozen, or finetune (end to end, e.g. B1 on a GPU)")
    s.add_argument("--finetune", dest="encoder", action="store_const", const="finetune",
                   help="same as --encoder finetune")
    s.add_argument("--augment", choices=["none", "basic", "robust"],
                   help="training augmentation (clip-consistent): basic = flip + brightness (default); robust = "
                        "flip, blur 3-7, JPEG 40-100, colour jitter, isotropic resize (with a frozen encoder it "
                        "trains on crops through the encoder instead of cached features)")
    s.add_argument("--warmup-epochs", type=float)
    s.add_argument("--min-epochs", type=int, help="train at least this many epochs and select only from there")
    s.add_argument("--methods", type=_csv_list, help="only the fakes of these methods (and all reals)")
    s.add_argument("--fakes", choices=["real", "pseudo", "both"],
                   help="positives: real = the dataset's fakes (default), pseudo = only the pseudo-fakes made "
                        "from the real videos by `preprocess --pseudo-fakes`, both")
    s.add_argument("--max-clips", type=int)
    s.add_argument("--max-frames", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--num-workers", type=int)
    s.add_argument("--precision")
    s.add_argument("--accelerator")
    s.add_argument("--devices", type=lambda v: v if v == "auto" else int(v))
    s.add_argument("--num-nodes", type=int)
    s.add_argument("--strategy")
    s.add_argument("--resume", action="store_true", help="continue from checkpoints/last.ckpt")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="metrics of a trained model on a cache's test split")
    s.add_argument("--model", type=Path, required=True, help="run directory or model.pt")
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--split", default="test")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--max-frames", type=int, default=0, help="110 = the FaceForensics++ LipForensics protocol")
    s.add_argument("--max-clips", type=int, default=0)
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the AUC interval")
    s.add_argument("--from-crops", action="store_true",
                   help="run the encoder on the crops even when the model was trained on cached features")
    s.add_argument("--methods", type=_csv_list, help="only the fakes of these methods (and all reals)")
    s.add_argument("--calibrate", action="store_true",
                   help="fit a temperature on the validation split, store it in the model file, then evaluate "
                        "(P(fake) = sigmoid(logit / T) from then on; verdicts do not change)")
    s.add_argument("--explain", action="store_true",
                   help="Grad-CAM maps of every scored frame (from the crops) measured against the fakes' known "
                        "manipulated areas: explain.csv + metrics.json['explain'] (docs/guide/explanations.md)")
    s.add_argument("--device")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("robustness", help="perturb a split (DeeperForensics-1.0 suite), preprocess each variant, "
                                          "score it: robustness table + plot")
    s.add_argument("--model", type=Path, nargs="+", required=True,
                   help="run directory, model.pt, model folder or published checkpoint (several: compared on "
                        "the same perturbed videos)")
    s.add_argument("--data", type=Path, required=True, help="dataset root (any layout preprocess reads)")
    s.add_argument("--out", type=Path, required=True, help="output folder")
    s.add_argument("--types", type=_csv_list,
                   help="comma-separated perturbation types: saturation,contrast,block,noise,blur,pixelation,"
                        "compression (or CS,CC,BW,GNC,GB,JPEG,VC; default all seven), mixed, and the extensions "
                        "ext_jpeg (real JPEG) and ext_rescale")
    s.add_argument("--levels", type=_levels, help="levels: 1-5 (default), 1,3,5 ...")
    s.add_argument("--seed", type=int, help="perturbation seed (default 0)")
    s.add_argument("--split", help="split to perturb and score (default test)")
    s.add_argument("--layout", default="auto", choices=["auto", "ffpp", "celebdf", "dfdc", "folder", "csv"])
    s.add_argument("--compression", default="c23", help="FaceForensics++ compression folder")
    s.add_argument("--methods", type=_csv_list, help="only the fakes of these methods (and all reals)")
    s.add_argument("--cache-dir", type=Path, help="where the variant caches live (default OUT/caches; share "
                                                  "it between runs to reuse them)")
    s.add_argument("--keep-videos", action="store_true",
                   help="keep the perturbed videos (all frames) in OUT/videos; by default only the sampled "
                        "frames are perturbed and the files are deleted once preprocessed")
    s.add_argument("--workers", type=int, default=2, help="processes for perturbing and preprocessing")
    s.add_argument("--shard", type=_shard, default=(0, 1), help="i/n: prepare shard i of n (score with a run "
                                                                "without --shard)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--bootstrap", type=int, help="bootstrap resamples per AUC interval (default 1000)")
    s.add_argument("--device")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_robustness)

    s = sub.add_parser("study", help="regions x {control, attention} on one cache: train, evaluate, compare")
    s.add_argument("--cache", type=Path, help="the cache (required, except with --generalisation)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--regions", type=_csv_list,
                   help="default frame,full,eyes,mouth (full,mouth with --generalisation)")
    s.add_argument("--generalisation", action="store_true",
                   help="the cross-manipulation study instead: trained on Face2Face / pseudo-fakes only / both, "
                        "tested on Face2Face, FaceSwap, EyeBlink (generalisation.csv/.md/.png); without --cache it "
                        "makes its synthetic data and pseudo-fakes under --out")
    s.add_argument("--pairs", type=int, default=30, help="--generalisation data: synthetic identity pairs")
    s.add_argument("--per-video", type=int, default=1, help="--generalisation data: pseudo-fakes per real video")
    s.add_argument("--workers", type=int, default=2, help="--generalisation data: worker processes")
    s.add_argument("--heads", type=_csv_list, default=["control", "attention"])
    s.add_argument("--family", default="region_lite0",
                   help="preset family: region_lite0 (frozen ImageNet Lite0, CPU; default), region_b1 (published, "
                        "GPU fine-tuning), region_mobile (random init), region_tiny (tests)")
    s.add_argument("--seeds", type=lambda t: [int(v) for v in _csv_list(t)], default=[0, 1, 2, 3, 4])
    s.add_argument("--methods", type=_csv_list, help="only the fakes of these methods (and all reals)")
    s.add_argument("--input-size", type=int, help="override the presets' input side (pixels)")
    s.add_argument("--config", type=Path, metavar="RECIPE.yaml",
                   help="the recipe of every run: a `model:` section of knobs applied to each cell's preset "
                        "(e.g. feature_norm, feature_dropout) and a `train:` section (e.g. weight_decay, "
                        "max_epochs); the flags below override it. The study sets name/arch/region/pooling "
                        "and seed/methods/fakes itself (e.g. configs/experiments/recipe_alt.yaml)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--patience", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--accelerator")
    s.add_argument("--devices", type=lambda v: v if v == "auto" else int(v))
    s.add_argument("--bootstrap", type=int, default=1000)
    s.add_argument("--tune", type=int, default=0, metavar="N",
                   help="search each (region, head) cell's recipe with N trials on the validation split before "
                        "its seeds run (forensight tune; default 0 = the shared recipe)")
    s.add_argument("--tune-seeds", type=lambda t: [int(v) for v in _csv_list(t)], default=[0, 1],
                   help="training seeds averaged per tuning trial (default 0,1)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("study-compare", help="test AUC of two studies on the same cache, per cell: after - before, "
                                              "paired over seeds and test videos")
    s.add_argument("before", type=Path, help="study folder (e.g. the shared recipe)")
    s.add_argument("after", type=Path, help="study folder (e.g. study --tune)")
    s.add_argument("--out", type=Path, help="write compare.md / compare.csv here")
    s.add_argument("--bootstrap", type=int, default=1000)
    s.set_defaults(func=cmd_study_compare)

    s = sub.add_parser("tune", help="search a detector's training recipe on the validation split (Optuna)")
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True, help="search folder (tune.db, best.yaml, trials.csv, tune.png); "
                                                            "run again with more --trials to resume")
    s.add_argument("--preset", help="model preset (default: the --config's model, else region_lite0_attention)")
    s.add_argument("--config", type=Path, help="experiment YAML: the starting recipe (model + train sections)")
    s.add_argument("--region", help="face region (frame, full, eyes, mouth, ...)")
    s.add_argument("--input-size", type=int)
    s.add_argument("--trials", type=int, default=30, help="total trials of the search (default 30)")
    s.add_argument("--seeds", type=lambda t: [int(v) for v in _csv_list(t)], default=[0, 1],
                   help="training seeds averaged per trial (default 0,1)")
    s.add_argument("--objective", choices=["log_loss", "auc"], default="log_loss",
                   help="validation figure: clip log loss (default, minimised) or video AUC (maximised)")
    s.add_argument("--sampler-seed", type=int, default=0)
    s.add_argument("--methods", type=_csv_list, help="only the fakes of these methods (and all reals)")
    s.add_argument("--workers", type=int, help="processes training a trial's seeds side by side (default: one per "
                                               "seed, at most one per CPU core; 1 = one after another)")
    s.add_argument("--prune-warmup", type=int, metavar="EPOCHS",
                   help="epochs every trial trains before the median pruner may stop it (default: tune's, 8)")
    s.add_argument("--no-prune", dest="prune", action="store_false", help="train every trial to its end")
    s.add_argument("--keep-runs", action="store_true", help="keep every trial's run directory")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("demo", help="the whole loop on built-in synthetic data: synth, preprocess, study")
    s.add_argument("--out", type=Path, default=Path("forensight_demo"))
    s.add_argument("--pairs", type=int, help="region-study pairs (default 20: 40 real + 40 fake videos)")
    s.add_argument("--epochs", type=int, help="max epochs per run (default 20)")
    s.add_argument("--seeds", type=lambda t: [int(v) for v in _csv_list(t)], help="study seeds (default 0,1,2,3,4)")
    s.add_argument("--workers", type=int, help="processes for synth / preprocessing (default 2)")
    s.add_argument("--no-study", action="store_true", help="stop after preprocessing")
    s.add_argument("--no-sweep", action="store_true", help="skip the sparsity sweep")
    s.add_argument("--no-generalisation", action="store_true",
                   help="skip the small generalisation study (pseudo-fakes vs supervised Face2Face)")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("detect", help="score video files or folders with a trained model (P(fake), verdict, "
                                      "attention timeline, HTML report)")
    s.add_argument("paths", nargs="*", type=Path, help="video files and/or folders (searched recursively)")
    s.add_argument("--model", type=Path, required=True, help="training run directory or its model.pt, a model folder "
                                                              "(export / import), or a published checkpoint file "
                                                              "(e.g. lipforensics_ff.pth, imported in memory)")
    s.add_argument("--list", type=Path, help="text file with one video path per line (added to PATHS)")
    s.add_argument("--json", action="store_true", help="print the results as JSON (machines) instead of a table")
    s.add_argument("--csv", type=Path, help="write one row per video to this CSV file")
    s.add_argument("--report", type=Path, help="folder for self-contained HTML pages (+ index.html) and PNG plots")
    s.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    s.add_argument("--top-k", type=int, default=6, help="most-attended frames listed and shown (default 6)")
    s.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    s.add_argument("--main-face-only", action="store_true",
                   help="score only the main face (default: every person seen in >= 25%% of sampled frames; "
                        "the verdict is the highest-scoring person's)")
    s.add_argument("--min-frames", type=int, default=8,
                   help="score videos shorter than the model's sampling count when at least this many frames "
                        "show the face (default 8)")
    s.add_argument("--explain", nargs="?", const="top", choices=["top", "all"],
                   help="spatial evidence maps (Grad-CAM): where in the face the evidence is, for the "
                        "most-attended frames (--explain) or every scored frame (--explain all); in the JSON "
                        "and as overlays in the report. Costs a backward pass (see docs/guide/explanations.md)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("sheet", help="contact sheet PNG of a cached video's region crops (to check them by eye)")
    s.add_argument("cache", type=Path)
    s.add_argument("video_ids", nargs="*", help="qualified ids (default: the first cached video)")
    s.add_argument("--out", type=Path, default=Path("."))
    s.add_argument("--frames", type=int, default=8)
    s.set_defaults(func=cmd_sheet)

    s = sub.add_parser("serve", help="local web app + HTTP API: upload videos in a browser, get the detect report")
    s.add_argument("--model", action="append", default=[], help="run directory, model.pt, model folder or published "
                                                                "checkpoint (repeatable; the first is the default; "
                                                                "none: the app says how to get one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback; others need --token)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--data-dir", type=Path, default=Path("forensight_serve"), help="job database, uploads, results")
    s.add_argument("--workers", type=int, default=1, help="scoring processes (default 1)")
    s.add_argument("--max-upload-mb", type=float, default=500.0, help="largest upload in MiB (default 500)")
    s.add_argument("--queue-size", type=int, default=50, help="most jobs waiting or running; more get HTTP 429")
    s.add_argument("--retention-days", type=float, default=7.0,
                   help="delete uploaded videos this many days after scoring (default 7; 0 = at once)")
    s.add_argument("--token", help="access token every request must carry (or set FORENSIGHT_TOKEN)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("models", help="list model presets (--published: known published checkpoints)")
    s.add_argument("--published", action="store_true",
                   help="list the published checkpoints Forensight can import (nothing is downloaded)")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("import", help="a published checkpoint (e.g. lipforensics_ff.pth) -> a ready model folder")
    s.add_argument("checkpoint", type=Path, help="the file, downloaded by hand (see `forensight models --published`)")
    s.add_argument("--out", type=Path, required=True, help="new model folder (never overwritten)")
    s.add_argument("--name", default="lipforensics_ff", help="which published checkpoint it is (default lipforensics_ff)")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("export", help="a model (run, model.pt, folder, published file) -> portable folder "
                                      "(model.safetensors + config.json + README.md)")
    s.add_argument("--model", type=Path, required=True, help="run directory, model.pt, model folder or checkpoint")
    s.add_argument("--out", type=Path, required=True, help="new model folder (never overwritten)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("calibrate", help="fit temperature + decision threshold on a cache's labelled validation "
                                         "videos; writes a NEW model folder")
    s.add_argument("--model", type=Path, required=True, help="run directory, model folder or published checkpoint")
    s.add_argument("--cache", type=Path, required=True, help="cache of your labelled videos (its val split is used), "
                                                             "preprocessed with the model's preprocessing")
    s.add_argument("--out", type=Path, help="new model folder (default: <model>_calibrated next to the model)")
    s.add_argument("--rule", default="eer", choices=["eer", "youden", "accuracy"], help="threshold rule (default eer)")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--max-frames", type=int, default=0, help="110 = the FaceForensics++ LipForensics protocol")
    s.add_argument("--max-clips", type=int, default=0)
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the AUC interval")
    s.add_argument("--methods", type=_csv_list, help="only the fakes of these methods (and all reals)")
    s.add_argument("--device")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_calibrate)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not a.verbose:  # Lightning's banner lines (GPU available, tips) are noise on the CLI
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from forensight.io import DiskFullError

    try:
        return int(a.func(a) or 0)
    except DiskFullError as e:  # what was being written, how much room it needed; the rerun resumes
        print(f"forensight {a.command}: error: {e}", file=sys.stderr)
        if a.verbose:
            raise
        return 3
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"forensight {a.command}: error: {msg}", file=sys.stderr)
        if a.verbose:
            raise
        return 2


if __name__ == "__main__":
    sys.exit(main())

