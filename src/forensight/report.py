"""Report artefacts: ROC curves, confusion matrices, contact sheets, tables and JSON.

Plots use matplotlib's object API (``Figure`` + Agg canvas) and never touch ``pyplot``'s global
state or the interactive backend, so they are safe in workers and headless machines. Every
writer creates missing parent folders and returns the written path.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from forensight.io import atomic_write_json, atomic_write_text
from forensight.metrics import auc as _auc
from forensight.metrics import roc_points

__all__ = [
    "plot_confusion",
    "plot_reliability",
    "plot_robustness",
    "plot_roc",
    "plot_roc_multi",
    "to_jsonable",
    "write_json",
    "write_table",
]

ArrayLike = Sequence[float] | np.ndarray


def _new_figure(w: float = 5.0, h: float = 4.5) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(p, format=p.suffix.lstrip(".") or "png")
    return p


def plot_roc_multi(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]], path: str | Path, title: str = "ROC"
) -> Path:
    """ROC curves of several models on one plot; legend shows each AUC.

    Args:
        curves: name -> ``(y (N,), s (N,))`` with labels 0/1 and scores (higher = fake).
        path: output image (PNG unless the suffix says otherwise).
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    for name, (y, s) in curves.items():
        fpr, tpr, _ = roc_points(y, s)
        ax.plot(fpr, tpr, lw=1.8, label=f"{name} (AUC {_auc(y, s):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate (real called fake)",
           ylabel="True positive rate (fake detected)", title=title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_roc(y: ArrayLike, s: ArrayLike, path: str | Path, label: str = "model", title: str = "ROC") -> Path:
    """ROC curve of one model (see :func:`plot_roc_multi`)."""
    return plot_roc_multi({label: (y, s)}, path, title=title)


def plot_confusion(
    cm: ArrayLike | Sequence[Sequence[int]],
    path: str | Path,
    labels: Sequence[str] = ("real", "fake"),
    title: str = "Confusion matrix",
) -> Path:
    """Confusion matrix ``(2, 2)`` ``[[TN, FP], [FN, TP]]`` (rows true, columns predicted).

    Cells show counts and the percentage of their row.
    """
    m = np.asarray(cm, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"expected a {len(labels)}x{len(labels)} matrix, got shape {m.shape}")
    fig = _new_figure(4.2, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046)
    rows = m.sum(axis=1, keepdims=True)
    thresh = m.max() / 2.0 if m.size else 0
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            pct = 100.0 * m[i, j] / rows[i, 0] if rows[i, 0] else 0.0
            ax.text(j, i, f"{m[i, j]}\n{pct:.1f}%", ha="center", va="center",
                    color="white" if m[i, j] > thresh else "black", fontsize=10)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def plot_reliability(curves: Mapping[str, Mapping[str, Any]], path: str | Path,
                     title: str = "Reliability of P(fake)") -> Path:
    """Reliability diagram: observed fraction of fakes against mean predicted P(fake) per bin.

    Args:
        curves: label -> :func:`forensight.metrics.calibration_summary` output (``bins`` with
            ``lo``, ``hi``, ``count``, ``mean_p``, ``frac_fake``; ``ece``, ``brier``), e.g.
            ``{"uncalibrated": ..., "temperature 2.1": ...}``; all with the same bins.
        path: output image.

    Top: one line per curve through its non-empty bins (marker area ~ videos in the bin) and the
    diagonal (perfect calibration); bottom: videos per bin of the first curve, per curve.
    """
    if not curves:
        raise ValueError("no reliability curves to plot")
    fig = _new_figure(5.2, 6.0)
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(gs[0])
    hist = fig.add_subplot(gs[1], sharex=ax)
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="perfectly calibrated")
    n_curves = len(curves)
    for k, (name, c) in enumerate(curves.items()):
        bins = [b for b in c["bins"] if b["count"]]
        xs = [b["mean_p"] for b in bins]
        ys = [b["frac_fake"] for b in bins]
        total = max(1, sum(b["count"] for b in c["bins"]))
        sizes = [12 + 300 * b["count"] / total for b in bins]
        line = ax.plot(xs, ys, lw=1.6, label=f"{name} (ECE {c['ece']:.3f}, Brier {c['brier']:.3f})")[0]
        ax.scatter(xs, ys, s=sizes, color=line.get_color(), alpha=0.7, zorder=3)
        width = (c["bins"][0]["hi"] - c["bins"][0]["lo"]) / n_curves
        hist.bar([b["lo"] + k * width for b in c["bins"]], [b["count"] for b in c["bins"]], width=width,
                 align="edge", color=line.get_color(), alpha=0.7)
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), ylabel="observed fraction of fakes", title=title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    hist.set(xlabel="predicted P(fake)", ylabel="videos")
    hist.grid(alpha=0.3)
    return _save(fig, path)


def scored_all(row: dict[str, Any]) -> bool:
    """True when every video of the split was scored in this ``robustness.csv`` row: none failed
    (perturbing or preprocessing, e.g. no face after strong noise) and none was left unscored
    (e.g. too little face coverage). The one rule for what counts in a type's mean and is drawn on
    the line (``robustness.robustness_table``, ``robustness.format_table``, :func:`plot_robustness`); it
    lives here, below ``forensight.robustness``, so that the plot needs nothing from the command."""
    return not int(row.get("failed") or 0) and not int(row.get("not_scored") or 0)


def plot_robustness(rows: Sequence[Mapping[str, Any]], path: str | Path, metric: str = "auc",
                    title: str = "Robustness to perturbations") -> Path:
    """AUC (or ``metric``) against perturbation level, one line per type, one panel per model.

    Args:
        rows: ``robustness.csv`` rows: ``model``, ``type`` ("clean" for the unperturbed row),
            ``level`` (0 for clean), ``metric`` (None when it could not be computed), ``failed`` /
            ``not_scored`` (a level where some video was not scored,
            :func:`scored_all`, is a hollow marker off the line).
        path: output image.
    """
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    if not models:
        raise ValueError("no robustness rows to plot")
    fig = _new_figure(4.8 * len(models) + 1.2, 4.2)
    axes = [fig.add_subplot(1, len(models), i + 1) for i in range(len(models))]
    for ax, model in zip(axes, models):
        mine = [r for r in rows if str(r["model"]) == model]
        clean = next((r.get(metric) for r in mine if r["type"] == "clean"), None)
        types = list(dict.fromkeys(str(r["type"]) for r in mine if r["type"] != "clean"))
        partial = False
        for t in types:
            runs = sorted((r for r in mine if r["type"] == t), key=lambda r: int(r["level"]))
            pts = [(int(r["level"]), r.get(metric), not scored_all(r)) for r in runs]
            if clean is not None:
                pts = [(0, clean, False), *pts]
            full = [(x, float(v)) for x, v, f in pts if v is not None and not f]
            line = ax.plot([x for x, _ in full], [y for _, y in full], marker="o", ms=4, lw=1.5, label=t)[0]
            part = [(x, float(v)) for x, v, f in pts if v is not None and f]
            if part:  # some videos could not be scored at that level: hollow marker, no line
                ax.plot([x for x, _ in part], [y for _, y in part], ls="none", marker="o", ms=6, mfc="none",
                        color=line.get_color())
                partial = True
        if partial:
            ax.plot([], [], ls="none", marker="o", mfc="none", color="grey", label="some videos not scored")
        if clean is not None:
            ax.axhline(float(clean), ls="--", lw=1, color="grey", label=f"clean ({float(clean):.3f})")
        if metric == "auc":
            ax.axhline(0.5, ls=":", lw=1, color="black", alpha=0.5)
            vals = [float(r[metric]) for r in mine if r.get(metric) is not None]
            ax.set_ylim(max(0.0, min([0.45, *vals]) - 0.05), 1.02)
        ax.set_xticks(range(6), ["clean", "1", "2", "3", "4", "5"])
        ax.set(xlabel="perturbation level", ylabel=f"video {metric.upper()}", title=f"{model}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    if len(models) > 1:
        fig.suptitle(title)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Tables and JSON

def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tensors, paths, dataclasses, sets and tuples to JSON types.

    Non-finite floats (NaN, +/-inf) become ``None`` so the output is strict JSON.
    """
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(to_jsonable(k)) if not isinstance(k, str) else k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if hasattr(obj, "tolist"):  # torch tensors and similar
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def _write_text(path: str | Path, text: str) -> Path:
    """Create the parent folders of ``path``, then write ``text`` there atomically (UTF-8)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(p, text)


def write_json(obj: Any, path: str | Path, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON atomically (temp file in the same folder, then ``os.replace``).

    ``obj`` is first converted with :func:`to_jsonable` (so NaN becomes ``null``); missing parent
    folders are created.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(p, to_jsonable(obj), indent=indent)


def _fmt_md(v: Any, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "nan" if math.isnan(f) else f"{f:.{digits}f}"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_fmt_md(x, digits) for x in v) + "]"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _fmt_csv(v: Any) -> str:
    v = to_jsonable(v)
    if v is None:
        return ""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def write_table(
    rows: Sequence[Mapping[str, Any]],
    path_md: str | Path | None,
    path_csv: str | Path | None,
    columns: Sequence[str] | None = None,
    digits: int = 4,
) -> str:
    """Write ``rows`` as a Markdown table (floats to ``digits`` places) and a CSV (full precision).

    Columns are ``columns`` or the union of the rows' keys in order of first appearance; a
    missing cell is empty. Either path may be None to skip that file. Returns the Markdown text.
    """
    cols: list[str] = list(columns) if columns is not None else []
    if columns is None:
        for r in rows:
            cols.extend(k for k in r if k not in cols)
    header = "| " + " | ".join(_fmt_md(c, digits) for c in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(_fmt_md(r.get(c), digits) for c in cols) + " |" for r in rows]
    md = "\n".join([header, sep, *body]) + "\n"
    if path_md is not None:
        _write_text(path_md, md)
    if path_csv is not None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for r in rows:
            writer.writerow([_fmt_csv(r.get(c)) for c in cols])
        _write_text(path_csv, buf.getvalue())
    return md


def contact_sheet(regions: Mapping[str, np.ndarray], path: str | Path, frames: int = 8, cell: int = 112,
                  landmarks: np.ndarray | None = None) -> Path:
    """A PNG grid: one row per region, ``frames`` evenly spaced frames per row.

    ``regions`` maps region name → uint8 (T, h, w, c) (c = 1 or 3). Every crop is resized to
    ``cell`` pixels (nearest, so artefacts stay visible); the label column is at least 70 px,
    wider for long region names. Returns the path.
    """
    import cv2

    names = list(regions)
    if not names:
        raise ValueError("no regions to draw")
    t = int(next(iter(regions.values())).shape[0])
    pick = np.linspace(0, t - 1, min(frames, t)).round().astype(int)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    # at least 70 px, wider when a name would run into the first cell (e.g. "mouth_band", 88 px)
    label_w = max(70, max(cv2.getTextSize(n, font, scale, 1)[0][0] for n in names) + 8)
    sheet = np.full((len(names) * (cell + 4) + 4, label_w + len(pick) * (cell + 4) + 4, 3), 255, np.uint8)
    for r, name in enumerate(names):
        arr = np.asarray(regions[name])
        y = 4 + r * (cell + 4)
        cv2.putText(sheet, name, (4, y + cell // 2), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        for c, i in enumerate(pick):
            img = arr[i]
            if img.ndim == 2 or img.shape[-1] == 1:
                img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=-1)
            img = cv2.resize(np.ascontiguousarray(img), (cell, cell), interpolation=cv2.INTER_NEAREST)
            x = label_w + 4 + c * (cell + 4)
            sheet[y:y + cell, x:x + cell] = img
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def pseudofake_sheet(frames: np.ndarray, landmarks: np.ndarray, path: str | Path, seed: int = 0, shown: int = 8,
                     cell: int = 112, sparsity: float = 0.5) -> Path:
    """Contact sheet of pseudo-fakes (:mod:`forensight.pseudofake`) of one real clip: a row of the real
    frames, then one row per kind x region (sbi / vb x face / eyes / mouth), ``shown`` evenly spaced
    frames each, cropped around the face; on manipulated frames the mask outline (blend weight 0.05
    and 0.5) is drawn in green / yellow, untouched frames are shown as they are.

    ``frames``: uint8 (T, H, W, 3) RGB; ``landmarks``: float (T, 68, 2). Returns the path.
    """
    import cv2

    from forensight.pseudofake import KINDS, REGIONS, plan_pseudofake

    frames = np.asarray(frames)
    lms = np.asarray(landmarks, np.float32)
    lo, hi = lms.reshape(-1, 2).min(0), lms.reshape(-1, 2).max(0)
    c, half = (lo + hi) / 2, float(max(hi - lo)) * 0.65
    h, w = frames.shape[1:3]
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    x1, y1 = int(min(w, c[0] + half)), int(min(h, c[1] + half))
    rows: dict[str, np.ndarray] = {"real": frames[:, y0:y1, x0:x1]}
    for kind in KINDS:
        for region in REGIONS[:-1]:
            plan = plan_pseudofake(kind, region, lms, frames.shape[1:], np.random.default_rng(seed), sparsity)
            out = []
            for i, f in enumerate(frames):
                fake = plan.apply(i, f)
                img = np.ascontiguousarray(fake[y0:y1, x0:x1])
                if fake is not f:
                    m = plan.mask(i, f.shape)[y0:y1, x0:x1]
                    for level, colour in ((0.05, (0, 255, 0)), (0.5, (255, 220, 0))):
                        cs, _ = cv2.findContours((m > level).astype(np.uint8), cv2.RETR_EXTERNAL,
                                                 cv2.CHAIN_APPROX_NONE)
                        cv2.drawContours(img, cs, -1, colour, 1, cv2.LINE_AA)
                out.append(img)
            rows[f"{kind} {region}"] = np.stack(out)
    return contact_sheet(rows, path, frames=shown, cell=cell)
