"""Do the evidence maps point at the manipulated area? The experiment behind docs/guide/explanations.md.

For every model run given (e.g. the demo study's ``full_*`` and ``mouth_*`` runs, several seeds,
or the generalisation experiment's ``<training>_<region>_<head>_s<seed>`` runs),
``forensight evaluate --explain`` on a cache of fakes whose manipulated areas are known (synthetic
Face2Face = mouth, EyeBlink = eyes, FaceSwap = inner face; pseudo-fakes = the boxes stored in their
cache entries), then one table and one figure:

* per (training, region, head, method): mean over test fakes of the share of map energy inside the
  manipulated area, that area's share of the crop (what a uniform map scores), their ratio
  (lift) and the pointing game (the map's peak inside the area), each per-video value first
  averaged over the seeds, with a percentile bootstrap 95 % interval over videos
  (:func:`forensight.explain.summarise_area_scores`); plus the per-seed means (do seeds agree?)
  and the share of manipulated frames whose map is all 0 (nothing raised the fake score there);
* ``<stem>.csv``, ``<stem>.md`` and ``<stem>.png`` in ``--out`` (``--stem``, default ``explain_demo``).

    python benchmarks/explain_demo.py --cache CACHE --out DIR [--stem NAME] RUN [RUN ...]

Run folders are named ``[<training>_]<region>_<head>_s<seed>``; the training column is ``-`` without one.

A run already evaluated (``DIR/<run name>/explain.csv`` exists) is not scored again.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

KEYS = ("energy_inside", "area_share", "lift", "pointing_hit")
RUN_NAME = re.compile(r"^(?:(?P<training>[a-z0-9_]+?)_)?(?P<region>[a-z]+)_(?P<head>control|attention)_s(?P<seed>\d+)$")


def evaluate_runs(runs: list[Path], cache: Path, out: Path) -> None:
    from forensight.evaluate import evaluate

    for run in runs:
        dest = out / run.name
        if (dest / "explain.csv").is_file():
            continue
        print(f"evaluate --explain {run.name}", flush=True)
        evaluate(run, cache, dest, explain=True, device="cpu", progress=False)


def read_rows(out: Path) -> list[dict[str, object]]:
    rows = []
    for f in sorted(out.glob("*/explain.csv")):
        m = RUN_NAME.match(f.parent.name)
        if m is None:
            continue
        with f.open() as fh:
            for r in csv.DictReader(fh):
                rows.append({**r, "training": m["training"] or "-", "head": m["head"], "seed": int(m["seed"]),
                             **{k: float(r[k]) if r[k] not in ("", "None") else None for k in KEYS}})
    return rows


def table(rows: list[dict[str, object]], n_boot: int = 2000) -> list[dict[str, object]]:
    from forensight.explain import summarise_area_scores

    out = []
    groups = sorted({(r["training"], r["region"], r["head"], r["method"]) for r in rows})
    for training, region, head, method in groups:
        sel = [r for r in rows if (r["training"], r["region"], r["head"], r["method"]) == (training, region, head, method)]
        seeds = sorted({r["seed"] for r in sel})
        per_video = []
        for vid in sorted({r["video_id"] for r in sel}):
            vs = [r for r in sel if r["video_id"] == vid]
            d = {"n_frames": int(vs[0]["n_frames"])}
            for k in KEYS:
                vals = [r[k] for r in vs if r[k] is not None]
                d[k] = float(np.mean(vals)) if vals else None
            per_video.append(d)
        s = summarise_area_scores(per_video, n_boot=n_boot)
        seed_means = {k: [float(np.mean([r[k] for r in sel if r["seed"] == sd and r[k] is not None] or [np.nan]))
                          for sd in seeds] for k in ("energy_inside", "pointing_hit")}
        out.append({"training": training, "region": region, "head": head, "method": method, "seeds": len(seeds),
                    "videos": s["videos"], "frames_per_video": s["frames"] / max(1, s["videos"]),
                    "zero_maps": sum(int(r["n_zero_maps"]) for r in sel) / max(1, sum(int(r["n_frames"]) for r in sel)),
                    **{k: s[k] for k in KEYS}, **{f"{k}_lo": s[f"{k}_ci"][0] for k in KEYS},
                    **{f"{k}_hi": s[f"{k}_ci"][1] for k in KEYS},
                    "energy_inside_per_seed": " ".join(f"{v:.3f}" for v in seed_means["energy_inside"]),
                    "pointing_hit_per_seed": " ".join(f"{v:.3f}" for v in seed_means["pointing_hit"])})
    return out


def _value(cell: dict[str, object] | None, key: str) -> float:
    return np.nan if cell is None or cell[key] is None else float(cell[key])  # type: ignore[arg-type]


def plot(tab: list[dict[str, object]], path: Path, suptitle: str) -> None:
    """One row of panels per (region, head): energy inside and pointing game per test method, one
    bar per training (95 % bootstrap interval), the area's share of the crop as a red tick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted({(t["region"], t["head"]) for t in tab})
    order = ["-", "supervised_f2f", "pseudo", "both"]
    trainings = sorted({str(t["training"]) for t in tab}, key=lambda tr: (order.index(tr) if tr in order else 99, tr))
    palette = ["#9ca3af", "#1f5fbf", "#e08a1e", "#2e7d32", "#7b1fa2"]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.9 * len(rows) + 0.8), sharey=True, squeeze=False)
    width = 0.8 / len(trainings)
    for (region, head), pair in zip(rows, axes):
        sel = [t for t in tab if (t["region"], t["head"]) == (region, head)]
        methods = sorted({t["method"] for t in sel})
        x = np.arange(len(methods))
        for ax, key, title in ((pair[0], "energy_inside", "share of map energy inside the area"),
                               (pair[1], "pointing_hit", "pointing game: peak inside the area")):
            for j, tr in enumerate(trainings):
                cells = {t["method"]: t for t in sel if t["training"] == tr}
                v, lo, hi = (np.array([_value(cells.get(m), k) for m in methods])
                             for k in (key, key + "_lo", key + "_hi"))
                ax.bar(x + (j - (len(trainings) - 1) / 2) * width, v, width, yerr=[v - lo, hi - v], capsize=2,
                       color=palette[j % len(palette)], label=None if tr == "-" else f"trained: {tr}")
            share = [np.nanmean([float(t["area_share"]) for t in sel if t["method"] == m]) for m in methods]
            ax.scatter(x, share, marker="_", s=700, color="#c62828", zorder=3, label="area's share of the crop")
            ax.set_xticks(x, methods, fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_title(f"{region} / {head}: {title}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", type=Path, help="model run directories (named <region>_<head>_s<seed>)")
    ap.add_argument("--cache", type=Path, help="cache of synthetic fakes (needed to evaluate new runs)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stem", default="explain_demo", help="name of the table / figure files")
    ap.add_argument("--plot-only", action="append", default=[], metavar="COLUMN=VALUE",
                    help="plot only the table rows with this value (e.g. head=control); repeatable")
    ap.add_argument("--title", default="Do the demo models' Grad-CAM maps point at the manipulated area? "
                                       "(test fakes, seeds pooled)")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.runs:
        if a.cache is None:
            raise SystemExit("--cache is required to evaluate runs")
        evaluate_runs(a.runs, a.cache, a.out)
    tab = table(read_rows(a.out))
    if not tab:
        raise SystemExit(f"no explain.csv under {a.out}")
    from forensight.report import write_table

    write_table(tab, None, a.out / f"{a.stem}.csv")
    lines = [("| training | region | head | method | seeds | videos | energy inside [95% CI] | area share | lift | "
              "pointing game [95% CI] | zero maps | energy per seed | pointing per seed |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def ci(t: dict[str, object], k: str) -> str:
        return "–" if t[k] is None else f"{t[k]:.3f} [{t[k + '_lo']:.3f}, {t[k + '_hi']:.3f}]"

    for t in tab:
        lines.append(f"| {t['training']} | {t['region']} | {t['head']} | {t['method']} | {t['seeds']} | {t['videos']} | "
                     f"{ci(t, 'energy_inside')} | {t['area_share']:.3f} | "
                     f"{'–' if t['lift'] is None else format(t['lift'], '.2f')} | {ci(t, 'pointing_hit')} | "
                     f"{t['zero_maps']:.1%} | {t['energy_inside_per_seed']} | {t['pointing_hit_per_seed']} |")
    (a.out / f"{a.stem}.md").write_text("\n".join(lines) + "\n")
    keep = [kv.split("=", 1) for kv in a.plot_only]
    plot([t for t in tab if all(str(t[k]) == v for k, v in keep)], a.out / f"{a.stem}.png", a.title)
    print("\n".join(lines))
    print(f"wrote {a.out}/{a.stem}.csv, {a.stem}.md, {a.stem}.png")


if __name__ == "__main__":
    main()
