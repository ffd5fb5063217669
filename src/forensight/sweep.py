"""The sparsity sweep: where, if anywhere, does temporal attention beat the time-average?

One synthetic dataset holds every condition (:class:`forensight.synth.Variant`: the same real
videos and [target, source] pairs, fakes manipulated on a given fraction of their frames at a given
strength, each condition a "method"), preprocessed once. For each condition the mouth-region study
(:func:`forensight.study.run_study` restricted to that condition's fakes) trains both heads over
the seeds and scores them on the same large test split. Outputs in ``out_dir``:

* ``sweep.csv`` / ``sweep.md``: per condition and head, test AUC mean ± sd over seeds; per
  condition, attention − control with its paired bootstrap interval and permutation p-value, and
  the attention head's temporal localisation (frame-level AUC, attention mass inside the
  manipulated frames vs their share);
* ``sweep.png``: test AUC vs manipulated fraction per head (± sd), and attention − control with its
  interval.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensight.config import TrainConfig


@dataclass(frozen=True)
class Condition:
    """One sweep condition: the fakes of synth variant ``name`` (``sparsity`` share of frames
    manipulated at ``strength``)."""

    name: str
    sparsity: float
    strength: float = 1.0


def default_conditions(fractions: Sequence[float] = (1.0, 0.5, 0.25, 0.1), strength: float = 1.0) -> list[Condition]:
    """Face2Face-like conditions named ``Face2Face_f<fraction>``."""
    return [Condition(f"Face2Face_f{f:g}", float(f), float(strength)) for f in fractions]


@dataclass
class SweepResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    csv: Path | None = None
    plot: Path | None = None
    seconds: float = 0.0


def run_sweep(cache_root: str | Path, out_dir: str | Path, conditions: Sequence[Condition],
              region: str = "mouth", family: str = "region_lite0", seeds: tuple[int, ...] = (0, 1, 2),
              train: TrainConfig | Mapping[str, Any] | None = None, model_overrides: Mapping[str, Any] | None = None,
              n_bootstrap: int = 1000, progress: bool = True) -> SweepResult:
    """Run the study of ``region`` × both heads × ``seeds`` for each condition; write the table and plot."""
    from forensight.report import write_table
    from forensight.study import run_study

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for k, cond in enumerate(conditions, 1):
        res = run_study(cache_root, out / cond.name, regions=(region,), family=family, seeds=seeds, train=train,
                        model_overrides=model_overrides, n_bootstrap=n_bootstrap, methods=(cond.name,),
                        progress=progress, label=f"sweep {k}/{len(conditions)} {cond.name}")
        cells = {c["head"]: c for c in res.cells}
        diff = res.diffs[0] if res.diffs else {}
        att = cells.get("attention", {})
        rows.append({"condition": cond.name, "fraction": cond.sparsity, "strength": cond.strength,
                     "seeds": len(seeds), "n_test": cells.get("control", att).get("n_test"),
                     "auc_control": cells.get("control", {}).get("test_auc"),
                     "auc_control_sd": cells.get("control", {}).get("test_auc_sd"),
                     "auc_attention": att.get("test_auc"), "auc_attention_sd": att.get("test_auc_sd"),
                     "diff": diff.get("diff_attention_minus_control"), "diff_ci_lo": diff.get("ci_lo"),
                     "diff_ci_hi": diff.get("ci_hi"), "p_value": diff.get("p_value"),
                     "loc_frame_auc": att.get("loc_frame_auc"), "loc_mass_inside": att.get("loc_mass_inside"),
                     "loc_share_inside": att.get("loc_share_inside")})
    result = SweepResult(rows=rows, csv=out / "sweep.csv")
    write_table(rows, out / "sweep.md", result.csv)
    result.plot = plot_sweep(rows, out / "sweep.png")
    result.seconds = time.perf_counter() - t0
    return result


def plot_sweep(rows: list[dict[str, Any]], path: Path) -> Path:
    """Left: test AUC vs manipulated fraction per head (± sd over seeds). Right: attention −
    control with its paired 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["fraction"])
    xs = [r["fraction"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for j, head in enumerate(("control", "attention")):
        ys = [r[f"auc_{head}"] for r in rows]
        sd = [r[f"auc_{head}_sd"] for r in rows]
        a1.errorbar(xs, ys, yerr=sd, marker="o", capsize=3, color=f"C{j}", label=head)
    a1.set_xscale("log")
    a1.set_xticks(xs, [f"{x:g}" for x in xs])
    a1.set_xlabel("fraction of frames manipulated")
    a1.set_ylabel("test video AUC (mean ± sd)")
    a1.set_ylim(0.4, 1.02)
    a1.axhline(0.5, color="grey", lw=0.8, ls="--")
    a1.legend(fontsize=8)
    d = [r["diff"] if r["diff"] is not None else float("nan") for r in rows]
    lo = [r["diff"] - r["diff_ci_lo"] if r["diff"] is not None else 0 for r in rows]
    hi = [r["diff_ci_hi"] - r["diff"] if r["diff"] is not None else 0 for r in rows]
    a2.errorbar(xs, d, yerr=[lo, hi], marker="s", capsize=3, color="k")
    a2.axhline(0.0, color="grey", lw=0.8, ls="--")
    a2.set_xscale("log")
    a2.set_xticks(xs, [f"{x:g}" for x in xs])
    a2.set_xlabel("fraction of frames manipulated")
    a2.set_ylabel("AUC attention − control (95% CI)")
    fig.suptitle(f"Sparsity sweep ({rows[0]['n_test'] if rows else 0} test videos per condition)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def format_sweep(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of the sweep."""
    lines = [f"{'fraction':>8s} {'control':>14s} {'attention':>14s} {'att - ctrl':>11s} {'95% CI':>17s} {'p':>6s} "
             f"{'loc AUC':>8s}"]
    for r in rows:
        ci = f"{r['diff_ci_lo']:+.3f}..{r['diff_ci_hi']:+.3f}" if r["diff"] is not None else "-"
        loc = f"{r['loc_frame_auc']:.3f}" if r.get("loc_frame_auc") is not None else "-"
        lines.append(f"{r['fraction']:8g} {r['auc_control']:7.3f} ±{r['auc_control_sd']:.3f} "
                     f"{r['auc_attention']:7.3f} ±{r['auc_attention_sd']:.3f} "
                     f"{(r['diff'] if r['diff'] is not None else float('nan')):+11.3f} {ci:>17s} "
                     f"{(r['p_value'] if r['p_value'] is not None else float('nan')):6.3f} {loc:>8s}")
    return "\n".join(lines)
