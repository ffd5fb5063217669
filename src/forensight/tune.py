"""Recipe search: Optuna over the training recipe of one (region, head) on the validation split.

A trial samples a recipe (model knobs such as the feature LayerNorm, the dropouts and the BiLSTM
width; training knobs such as the learning rate, weight decay, batch size, epochs and schedule),
trains it with :func:`forensight.train.train` once per tuning seed and scores it by the selected
model's **validation** figure (``log_loss``: mean binary cross-entropy over the validation clips,
computed by the one scoring path from ``model.pt``; or ``auc``), averaged over the seeds. The test
split is never read: training reads the train and val splits only.

The search is Optuna's TPE sampler (seeded) with its median pruner on learning curves: the first
seed reports its lowest validation loss after every epoch, and a trial whose curve is worse than
the median of the finished trials at the same epoch stops there, every seed with it. A trial's
seeds train side by side in worker processes (one per seed, one torch thread each on a 2-core
machine), as lean runs (no checkpoints or logs; :func:`forensight.train.train`). Pruning reads the
first seed only, so the search, its values and its decisions do not depend on how many workers
ran it. The first trial is the starting recipe itself (``include_base``), so the best trial is
never worse on validation than where the search started. Everything lives in ``out_dir``::

    tune.db       Optuna's SQLite storage: running ``tune`` again with a larger ``n_trials``
                  resumes the search where it stopped (finished and pruned trials are kept)
    best.yaml     the best trial as an experiment file (``model:`` + ``train:`` sections), usable
                  with ``forensight train --config`` and ``forensight study``
    trials.csv    one row per trial: number, state, value, epoch a pruned trial stopped after,
                  per-seed values, parameters, seconds
    tune.png      the search: each trial's value and the best so far
    tune.json     summary (objective, best value / trial / parameters, counts, seconds)

Trial run directories (``trials/NNNN/sS``) are deleted once read, unless ``keep_runs``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from forensight.config import ModelConfig, TrainConfig, merge, resolve_model_config, to_dict
from forensight.io import atomic_write_json, atomic_write_text

__all__ = ["DEFAULT_SPACE", "OBJECTIVES", "Param", "TuneResult", "load_tuned", "suggest_recipe", "tune"]

#: objective name -> Optuna direction
OBJECTIVES = {"log_loss": "minimize", "auc": "maximize"}


@dataclass(frozen=True)
class Param:
    """One searched knob: ``kind`` ``"categorical"`` (``choices``), ``"float"`` or ``"log"``
    (``low``..``high``, ``log`` on a log scale). The name is a field of the model config or of
    :class:`~forensight.config.TrainConfig`; which one is decided by the name."""

    kind: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("categorical", "float", "log"):
            raise ValueError(f"Param kind must be categorical, float or log, got {self.kind!r}")
        if self.kind == "categorical" and not self.choices:
            raise ValueError("a categorical Param needs choices")
        if self.kind != "categorical" and not self.low < self.high:
            raise ValueError(f"a {self.kind} Param needs low < high, got {self.low}..{self.high}")
        if self.kind == "log" and self.low <= 0:
            raise ValueError(f"a log Param needs low > 0, got {self.low}")


#: The default search space over the head's recipe on cached features (today's values included).
DEFAULT_SPACE: dict[str, Param] = {
    "feature_norm": Param("categorical", ("none", "layernorm")),
    "feature_dropout": Param("float", low=0.0, high=0.5),
    "dropout": Param("float", low=0.0, high=0.7),
    "lstm_hidden": Param("categorical", (64, 128)),
    "lr": Param("log", low=1e-4, high=5e-3),
    "weight_decay": Param("log", low=1e-5, high=1e-1),
    "batch_size": Param("categorical", (8, 16)),
    "max_epochs": Param("categorical", (20, 40, 60)),
    "patience": Param("categorical", (5, 8, 15, 30)),
    "schedule": Param("categorical", ("cosine", "constant")),
}


def _split_params(params: Mapping[str, Any], model: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, train overrides) of a parameter dict; an unknown name is an error."""
    mfields = {f.name for f in fields(model)}
    tfields = {f.name for f in fields(TrainConfig)}
    m, t = {}, {}
    for k, v in params.items():
        if k in mfields:
            m[k] = v
        elif k in tfields:
            t[k] = v
        else:
            raise ValueError(f"search parameter {k!r} is neither a {type(model).__name__} nor a TrainConfig field")
    return m, t


def suggest_recipe(trial: Any, space: Mapping[str, Param]) -> dict[str, Any]:
    """Sample every parameter of ``space`` from an Optuna ``trial``."""
    out = {}
    for name, p in space.items():
        if p.kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(p.choices))
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.kind == "log")
    return out


def _base_params(space: Mapping[str, Param], model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    """The starting recipe's value of each searched parameter (enqueued as the first trial);
    values outside the space are left for the sampler."""
    out = {}
    for name, p in space.items():
        v = getattr(model, name) if hasattr(model, name) else getattr(train, name)
        inside = v in p.choices if p.kind == "categorical" else p.low <= float(v) <= p.high
        if inside:
            out[name] = v
    return out


def _longest_budget(space: Mapping[str, Param], train: TrainConfig) -> int:
    """The most epochs a trial of ``space`` can train (``max_epochs`` searched or fixed)."""
    p = space.get("max_epochs")
    if p is None:
        return int(train.max_epochs)
    return int(max(p.choices) if p.kind == "categorical" else math.floor(p.high))


@dataclass
class TuneResult:
    """The best recipe and where the search left its files."""

    out_dir: Path
    objective: str
    best_value: float
    best_trial: int
    best_params: dict[str, Any]
    model: ModelConfig
    train: TrainConfig
    best_yaml: Path
    trials_csv: Path
    plot: Path
    n_complete: int = 0
    n_pruned: int = 0
    n_trained_now: int = 0
    seconds: float = 0.0
    trials: list[dict[str, Any]] = field(default_factory=list)


#: where a seed run reports its epochs: ``_SINK(trial_number, epoch, best_val_loss)`` (set per
#: process: the parent's handler in process, a queue in a worker)
_SINK: Any = None


def _init_worker(queue: Any, threads: int) -> None:
    """A worker process of the search: its torch threads, and its reports go to ``queue``."""
    import torch

    global _SINK
    torch.set_num_threads(threads)

    def send(*msg: Any) -> None:
        queue.put(msg)

    _SINK = send


def _seed_run(cache_root: Path, trial_dir: Path, trial_no: int, model: ModelConfig, train_cfg: TrainConfig,
              seed: int, objective: str, reports: bool, keep: bool) -> tuple[float | None, dict[str, Any]]:
    """Train one seed of a trial (a lean run) and read its validation figure.

    The run stops at the end of an epoch once ``trial_dir/STOP`` exists (the trial was pruned);
    the seed that ``reports`` sends each epoch's lowest validation loss to :data:`_SINK` first.
    Returns (value, info), value None when stopped.
    """
    from forensight.train import TrainingStopped
    from forensight.train import train as train_run

    run_dir = trial_dir / f"s{seed}"
    if run_dir.exists():  # a trial interrupted mid-run and sampled again: start it cleanly
        shutil.rmtree(run_dir)
    stop = trial_dir / "STOP"

    def on_epoch(epoch: int, best_loss: float) -> bool:
        if reports:
            _SINK(trial_no, epoch, best_loss)
        return stop.exists()

    try:
        res = train_run(cache_root, run_dir, model, merge(TrainConfig, train_cfg, {"seed": seed}), progress=False,
                        lean=True, on_epoch=on_epoch)
    except TrainingStopped as e:
        shutil.rmtree(run_dir, ignore_errors=True)
        return None, {"stopped_after_epoch": e.epoch}
    value = res.val_metrics.get(objective)
    if value is None or not math.isfinite(float(value)):
        raise RuntimeError(f"the validation split gave no {objective!r} (val metrics: {res.val_metrics}); "
                           "it needs clips of both classes")
    info = {"val_auc": res.val_metrics.get("auc"), "val_log_loss": res.val_metrics.get("log_loss"),
            "best_epoch": res.best_epoch, "seconds": round(res.seconds, 2)}
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return float(value), info


def tune(cache_root: str | Path, out_dir: str | Path, model: ModelConfig | str = "region_lite0_attention",
         *, region: str | None = None, n_trials: int = 30, seeds: Sequence[int] = (0, 1), sampler_seed: int = 0,
         objective: str = "log_loss", train: TrainConfig | Mapping[str, Any] | None = None,
         model_overrides: Mapping[str, Any] | None = None, space: Mapping[str, Param] | None = None,
         include_base: bool = True, prune: bool = True, prune_warmup: int = 8, workers: int | None = None,
         keep_runs: bool = False, progress: bool = True, label: str = "tune") -> TuneResult:
    """Search the recipe of ``model`` (a preset name, config or YAML) on ``cache_root``'s validation split.

    Args:
        region, model_overrides: applied to ``model`` (``region`` last).
        n_trials: the search's total size: a search in ``out_dir`` that already has trials (finished
            or pruned) continues up to this many; no new trial runs when it has them.
        seeds: training seeds per trial; the objective is their mean.
        sampler_seed: seeds the TPE sampler (the search is reproducible for a given storage state).
        objective: ``"log_loss"`` (validation clip BCE, minimised) or ``"auc"`` (validation video
            AUC, maximised).
        train: the starting training config (or overrides of :class:`TrainConfig`); searched fields
            are replaced per trial, the rest (e.g. ``methods``) is kept.
        space: the searched knobs (default :data:`DEFAULT_SPACE`).
        include_base: enqueue the starting recipe as the first trial.
        prune: Optuna's median pruner on the first seed's per-epoch learning curve (its lowest
            validation loss so far), once 3 trials have finished and after ``prune_warmup`` epochs:
            a trial whose curve is worse than the median of finished trials at the same epoch stops
            there, with every seed. A finished trial's curve is held at its end value up to the
            longest budget in the space, so it is compared at every epoch.
        workers: processes that train a trial's seeds side by side (default: one per seed, at most
            one per CPU core; 1 = one after another in this process). The search is the same
            either way: the pruning decisions read the first seed only.
        keep_runs: keep the trial run directories.

    Returns:
        TuneResult with the best recipe as configs and as ``best.yaml``.
    """
    import optuna
    from tqdm.auto import tqdm

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("give at least one tuning seed")
    space = dict(DEFAULT_SPACE if space is None else space)
    t0 = time.perf_counter()
    cache_root = Path(cache_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_model = resolve_model_config(model, None, {**(model_overrides or {}), "region": region})
    base_train = merge(TrainConfig, train)
    _split_params({k: None for k in space}, base_model)  # every name is a known field

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out / 'tune.db').resolve()}"
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=prune_warmup) if prune
              else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name="tune", storage=storage, load_if_exists=True,
                                direction=OBJECTIVES[objective], sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                                pruner=pruner)
    meta = {"objective": objective, "seeds": list(seeds), "model": base_model.to_dict(), "train": to_dict(base_train),
            "space": {k: to_dict(v) for k, v in space.items()},
            "pruning": {"median": bool(prune), "per": "epoch of the first seed", "warmup_epochs": int(prune_warmup)}}
    stored = study.user_attrs.get("setup")
    if stored is None:
        for k, v in json.loads(json.dumps(meta)).items():
            study.set_user_attr(f"setup.{k}", v)
        study.set_user_attr("setup", True)
    else:
        old = {k: study.user_attrs.get(f"setup.{k}") for k in meta}
        diff = sorted(k for k, v in json.loads(json.dumps(meta)).items() if old.get(k) != v)
        if diff:
            raise ValueError(f"{out} holds a search with another setup (differs in {diff}); "
                             "resume it with the same arguments or choose a new output folder")
    done_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

    def n_done() -> int:
        return len(study.get_trials(deepcopy=False, states=done_states))

    if include_base and not study.trials:
        study.enqueue_trial(_base_params(space, base_model, base_train), user_attrs={"base": True})
    # trials left RUNNING by an interrupted search are run again with the same parameters
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if not study.user_attrs.get(f"requeued.{t.number}"):
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
            study.set_user_attr(f"requeued.{t.number}", True)
    trained_now = 0

    horizon = _longest_budget(space, base_train)
    n_workers = min(len(seeds), os.cpu_count() or 1) if workers is None else int(workers)
    if n_workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    n_workers = min(n_workers, len(seeds))
    pool, queue = None, None
    if n_workers > 1:  # one process per seed run (spawned: a forked OpenMP runtime can hang)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        queue = ctx.SimpleQueue()  # a put is written before the run returns: nothing arrives late
        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(queue, max(1, (os.cpu_count() or 1) // n_workers)))

    def objective_fn(trial: Any) -> float:
        nonlocal trained_now
        global _SINK
        params = suggest_recipe(trial, space)
        m_over, t_over = _split_params(params, base_model)
        mcfg = base_model.replace(**m_over)
        tcfg = merge(TrainConfig, base_train, t_over)
        trial_dir = out / "trials" / f"{trial.number:04d}"
        shutil.rmtree(trial_dir, ignore_errors=True)  # a requeued trial starts without a stale STOP
        trial_dir.mkdir(parents=True)
        pruned_at: list[int] = []
        curve: list[float] = []

        def on_report(trial_no: int, epoch: int, best_loss: float) -> None:
            """The reporting seed's epoch: record it and decide whether the trial goes on."""
            if trial_no != trial.number or pruned_at:
                return
            trial.report(best_loss, step=epoch)
            curve.append(best_loss)
            if prune and trial.should_prune():
                pruned_at.append(epoch)
                (trial_dir / "STOP").touch()

        args = [(cache_root, trial_dir, trial.number, mcfg, tcfg, s, objective, i == 0, keep_runs)
                for i, s in enumerate(seeds)]
        results: list[tuple[float | None, dict[str, Any]]] = []
        if pool is None:
            _SINK = on_report
            try:
                for a in args:
                    if pruned_at:
                        break
                    trained_now += 1
                    results.append(_seed_run(*a))
            finally:
                _SINK = None
        else:
            from concurrent.futures import FIRST_COMPLETED, wait
            from concurrent.futures.process import BrokenProcessPool

            futures = [pool.submit(_seed_run, *a) for a in args]
            trained_now += len(futures)
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    on_report(*queue.get())
            try:
                results = [f.result() for f in futures]
            except BrokenProcessPool as e:
                raise RuntimeError(
                    "a tuning worker process died before its seed run finished. Worker processes are "
                    "spawned and import the calling script: a script that calls forensight.tune (or "
                    "run_study with tuning) must do so under `if __name__ == \"__main__\":`; "
                    "workers=1 trains the seeds in this process instead") from e
        for s, (_, info) in zip(seeds, results, strict=False):
            for k, x in info.items():
                trial.set_user_attr(f"s{s}.{k}", x)
        if pruned_at:
            trial.set_user_attr("pruned_after_epoch", pruned_at[0])
            raise optuna.TrialPruned()
        # A finished curve stays at its lowest loss (its selected model does not change): held
        # to the longest budget in the space, so a trial that stopped early still counts in the
        # median at later epochs (else only the longest, best runs would be compared there).
        for step in range(len(curve), horizon if curve else 0):
            trial.report(curve[-1], step=step)
        values = [v for v, _ in results]
        if any(v is None for v in values):  # stopped without a pruning decision: cannot happen
            raise RuntimeError(f"trial {trial.number}: a seed run stopped but the trial was not pruned")
        return sum(values) / len(values)

    left = max(0, n_trials - n_done())
    bar = tqdm(total=n_trials, initial=n_trials - left, desc=label, unit="trial", disable=not progress,
               dynamic_ncols=True)

    def on_trial(st: Any, tr: Any) -> None:
        bar.update(1)
        try:
            bar.set_postfix_str(f"best {objective} {st.best_value:.4f} (#{st.best_trial.number})", refresh=True)
        except ValueError:
            pass

    try:
        while n_done() < n_trials:
            study.optimize(objective_fn, n_trials=1, callbacks=[on_trial], gc_after_trial=False)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if not keep_runs:
        shutil.rmtree(out / "trials", ignore_errors=True)

    best = study.best_trial
    m_over, t_over = _split_params(best.params, base_model)
    best_model = base_model.replace(**m_over)
    best_train = merge(TrainConfig, base_train, t_over, {"seed": seeds[0]})
    rows = trial_rows(study, seeds)
    res = TuneResult(out_dir=out, objective=objective, best_value=float(best.value), best_trial=best.number,
                     best_params=dict(best.params), model=best_model, train=best_train,
                     best_yaml=out / "best.yaml", trials_csv=out / "trials.csv", plot=out / "tune.png",
                     n_complete=sum(r["state"] == "COMPLETE" for r in rows),
                     n_pruned=sum(r["state"] == "PRUNED" for r in rows), n_trained_now=trained_now, trials=rows)
    write_best_yaml(res, seeds, out / "best.yaml")
    _write_csv(rows, res.trials_csv)
    plot_search(rows, objective, res.plot)
    res.seconds = time.perf_counter() - t0
    atomic_write_json(out / "tune.json", {
        "objective": objective, "direction": OBJECTIVES[objective], "seeds": list(seeds),
        "best_value": res.best_value, "best_trial": res.best_trial, "best_params": res.best_params,
        "n_trials": len(rows), "n_complete": res.n_complete, "n_pruned": res.n_pruned,
        "trained_now": trained_now, "seconds": round(res.seconds, 1), "sampler_seed": sampler_seed,
        "cache": str(cache_root.resolve()),
        "region": best_model.input_spec().region, "model": best_model.to_dict(), "train": to_dict(best_train)})
    return res


def trial_rows(study: Any, seeds: Sequence[int]) -> list[dict[str, Any]]:
    """One plain row per trial of an Optuna study: number, state, value, per-seed value, params."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name,
                               "value": None if t.value is None else round(float(t.value), 6),
                               "base": bool(t.user_attrs.get("base", False)),
                               "pruned_after_epoch": t.user_attrs.get("pruned_after_epoch")}
        for s in seeds:
            for k in ("val_log_loss", "val_auc", "best_epoch"):
                v = t.user_attrs.get(f"s{s}.{k}")
                row[f"s{s}_{k}"] = round(v, 6) if isinstance(v, float) else v
        row.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in t.params.items()})
        dur = t.duration.total_seconds() if t.duration is not None else None
        row["seconds"] = None if dur is None else round(dur, 1)
        rows.append(row)
    return rows


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import io

    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def write_best_yaml(res: TuneResult, seeds: Sequence[int], path: Path) -> Path:
    """The best recipe as an experiment file (``model`` + ``train``; ``tune`` records where it
    came from). Training it with each tuning seed reproduces the best trial's value."""
    import yaml

    header = (f"# forensight tune: best of {res.n_complete + res.n_pruned} finished trials (#{res.best_trial}), validation "
              f"{res.objective} {res.best_value:.6f} = mean over seeds {list(seeds)}.\n"
              f"# Reproduce: forensight train --cache CACHE --run-dir RUN --config {path.name} --seed S\n")
    body = {"model": res.model.to_dict(), "train": to_dict(res.train),
            "tune": {"objective": res.objective, "value": res.best_value, "trial": res.best_trial,
                     "seeds": list(seeds), "params": res.best_params}}
    atomic_write_text(path, header + yaml.safe_dump(json.loads(json.dumps(body)), sort_keys=False))
    return path


def load_tuned(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configs of a ``best.yaml`` (any experiment file)."""
    from forensight.config import yaml_section

    return resolve_model_config(path), merge(TrainConfig, yaml_section(path, "train"))


def plot_search(rows: list[dict[str, Any]], objective: str, path: Path) -> Path:
    """Each trial's value (pruned trials: their last reported mean, hollow) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    ax.plot([r["trial"] for r in done], [r["value"] for r in done], "o", color="C0", ms=4, label="trial")
    best, xs, ys = None, [], []
    better = (lambda a, b: a < b) if OBJECTIVES[objective] == "minimize" else (lambda a, b: a > b)
    for r in done:
        if best is None or better(r["value"], best):
            best = r["value"]
        xs.append(r["trial"])
        ys.append(best)
    ax.step(xs, ys, where="post", color="C1", label="best so far")
    base = [r for r in done if r["base"]]
    if base:
        ax.axhline(base[0]["value"], color="grey", ls="--", lw=0.8, label="starting recipe")
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    if pruned:
        ax.plot([r["trial"] for r in pruned], [0.0] * len(pruned), "x", color="C3", ms=4,
                transform=ax.get_xaxis_transform(), label="pruned")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {objective} (mean over seeds)")
    ax.legend(fontsize=8)
    ax.set_title("Recipe search")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
