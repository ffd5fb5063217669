"""Self-contained HTML reports of ``detect`` results: one page per video and an index per batch.

A page shows the verdict and P(fake) against the validation threshold, the score over time,
the attention timeline (which frames the model weighted), thumbnails of the most-attended frames
with the face box, the model's region and the 68 landmarks drawn, next to the exact region crop
the model read, the clip table, what was skipped and why, and the model / timing details. Every
image is embedded as a ``data:`` URI, so a page is one file with no external assets (it can be
mailed or archived); the plots are also written as PNG files next to it.

Safety: every file is written inside ``out_dir``. File names come from :func:`report_key`, which
keeps only ``[A-Za-z0-9._-]`` characters of the video's base name (no folders, no leading dots)
and appends a hash of its full path, so ``../../x.mp4`` or two ``clip.mp4`` from different
folders can neither escape ``out_dir`` nor overwrite each other. All text is HTML-escaped.

Files per video (``key = report_key(result)``): ``key.html``, ``key_score.png``,
``key_attention.png``, ``key.json`` (the ``--json`` record). Batch: ``index.html``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from forensight.io import atomic_write_bytes, atomic_write_text
from forensight.report import to_jsonable
from forensight.result import DetectionResult

log = logging.getLogger(__name__)

__all__ = ["report_key", "write_index", "write_report", "write_video_report"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_KEY_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")

FAKE_COLOR = "#c62828"
REAL_COLOR = "#2e7d32"
FAIL_COLOR = "#6b7280"
ACCENT = "#1f5fbf"


# ---- names and safe paths -------------------------------------------------------------------

def report_key(result: DetectionResult) -> str:
    """A file-name-safe, collision-free key for a result (base name + hash of the full path/name).

    ``"../../x.mp4"`` → ``"x-3f2a9c1d"``; only ``[A-Za-z0-9._-]`` survive, no leading dot.
    """
    ident = result.path or result.name
    base = re.split(r"[\\/]", result.name or ident or "video")[-1]
    stem, dot, ext = base.rpartition(".")
    base = stem if dot and stem and 1 <= len(ext) <= 5 else base
    base = _SAFE.sub("-", base).lstrip(".-_")[:60] or "video"
    digest = hashlib.sha1(f"{ident}\0{result.name}".encode()).hexdigest()[:8]
    return f"{base}-{digest}"


def _safe_target(out_dir: Path, filename: str) -> Path:
    """``out_dir / filename`` after checking the name is a plain file name inside ``out_dir``."""
    if not _KEY_OK.match(filename):
        raise ValueError(f"refusing to write {filename!r}: not a plain file name")
    root = out_dir.resolve()
    target = (root / filename).resolve()
    if target.parent != root:
        raise ValueError(f"refusing to write {target}: outside the report folder {root}")
    return target


def _write_bytes(out_dir: Path, filename: str, data: bytes) -> Path:
    """Write ``data`` atomically to ``out_dir / filename`` after :func:`_safe_target`'s checks."""
    return atomic_write_bytes(_safe_target(out_dir, filename), data, what="report file")


def _write_text(out_dir: Path, filename: str, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically to ``out_dir / filename`` after :func:`_safe_target`'s checks."""
    return atomic_write_text(_safe_target(out_dir, filename), text, what="report file")


# ---- images ---------------------------------------------------------------------------------

def _fig_png(fig: Figure) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _encode(rgb: np.ndarray, fmt: str = ".png", quality: int = 88) -> bytes:
    img = np.ascontiguousarray(rgb)
    if img.ndim == 2 or img.shape[-1] == 1:
        img = cv2.cvtColor(img.reshape(img.shape[0], img.shape[1]), cv2.COLOR_GRAY2RGB)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else []
    ok, buf = cv2.imencode(fmt, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError("image encoding failed")
    return buf.tobytes()


_MARGINS = {"left": 0.08, "right": 0.80, "bottom": 0.17, "top": 0.95}  # same axes box in both plots


def _style_axes(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(alpha=0.25, lw=0.8)
    ax.tick_params(labelsize=9)


def plot_score_over_time(result: DetectionResult) -> bytes:
    """PNG: P(fake) over time — clip scores (segments), sliding-window scores (line), the video
    score, the decision threshold; unscored time shaded, frames without a face detection marked."""
    fig = Figure(figsize=(9.6, 2.7))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    dur = float((result.video or {}).get("duration_s") or 0.0)
    times = [f.timestamp_s for f in result.frames]
    t_end = max([dur] + times + [c.end_s for c in result.clips]) or 1.0
    fr = result.frames
    pos = [i for i, f in enumerate(fr) if f.scored]
    if pos:  # shade the time before the first / after the last scored sampled frame
        a, b = pos[0], pos[-1]
        spans = []
        if a > 0:
            spans.append((0.0, (fr[a - 1].timestamp_s + fr[a].timestamp_s) / 2))
        if b < len(fr) - 1:
            spans.append(((fr[b].timestamp_s + fr[b + 1].timestamp_s) / 2, t_end))
        for k, (x0, x1) in enumerate(spans):
            ax.axvspan(x0, x1, color="#9ca3af", alpha=0.22, lw=0, label="not scored (no face)" if k == 0 else None)
    miss = [f.timestamp_s for f in result.frames if not f.observed]
    if miss:
        ax.plot(miss, [0.015] * len(miss), "|", color="#b45309", ms=9, mew=1.6, label="face not detected")
    thr = result.threshold_p
    ax.axhline(thr, color="#111827", ls="--", lw=1.1, label=f"threshold {thr:.2f}")
    if result.p_fake is not None:
        col = FAKE_COLOR if result.verdict == "fake" else REAL_COLOR
        ax.axhline(result.p_fake, color=col, ls=":", lw=1.6, label=f"video P(fake) {result.p_fake:.2f}")
    for i, c in enumerate(result.clips):
        col = FAKE_COLOR if c.logit >= result.threshold else REAL_COLOR
        x1 = c.end_s if c.end_s > c.start_s else c.start_s + 0.04
        ax.plot([c.start_s, x1], [c.p_fake, c.p_fake], color=col, lw=4, solid_capstyle="butt", alpha=0.85,
                label="clip P(fake)" if i == 0 else None)
    if result.local_scores:
        xs = [(s.start_s + s.end_s) / 2 for s in result.local_scores]
        ax.plot(xs, [s.p_fake for s in result.local_scores], "o-", color=ACCENT, lw=1.4, ms=4,
                label="sliding-window P(fake)")
    ax.set(xlim=(0, t_end), ylim=(0, 1.0), xlabel="time (s)", ylabel="P(fake)")
    _style_axes(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.subplots_adjust(**_MARGINS)
    return _fig_png(fig)


def plot_attention(result: DetectionResult) -> bytes:
    """PNG: attention weight of every scored frame over time; the top frames are highlighted and
    numbered as in the thumbnails; the dashed line is the uniform weight (no preference)."""
    fig = Figure(figsize=(9.6, 2.7))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    fr = [f for f in result.frames if f.scored and f.attention is not None]
    dur = float((result.video or {}).get("duration_s") or 0.0)
    t_end = max([dur] + [f.timestamp_s for f in result.frames]) or 1.0
    if fr:
        t = np.array([f.timestamp_s for f in fr])
        w = np.array([f.attention for f in fr], dtype=np.float64)
        gaps = np.diff(np.sort(t))
        width = 0.8 * float(np.median(gaps)) if gaps.size and np.median(gaps) > 0 else 0.03
        ranks = {tf.frame_index: tf.rank for tf in result.top_frames}
        colors = ["#f59e0b" if f.frame_index in ranks else "#93b4e6" for f in fr]
        ax.bar(t, w, width=width, color=colors, linewidth=0)
        ax.axhline(1.0 / len(fr), color="#6b7280", ls="--", lw=1, label="uniform weight")
        ymax = float(w.max()) * 1.3
        miss = [f.timestamp_s for f in fr if not f.observed]
        if miss:
            ax.plot(miss, [ymax * 0.012] * len(miss), "|", color="#b45309", ms=9, mew=1.6,
                    label="face interpolated")
        # number the top frames; labels closer than 3% of the axis are stacked, not overprinted
        labelled = sorted((f.timestamp_s, wt, ranks[f.frame_index]) for f, wt in zip(fr, w)
                          if f.frame_index in ranks)
        last_x, level = -1e9, 0
        for tt, wt, rk in labelled:
            level = level + 1 if tt - last_x < 0.03 * t_end else 0
            last_x = tt
            ax.text(tt, wt + ymax * (0.015 + 0.075 * level), f"#{rk}", ha="center", va="bottom",
                    fontsize=8, color="#92400e", fontweight="bold")
        ax.set_ylim(0, max(ymax, 1e-6))
        from matplotlib.patches import Patch

        handles = [Patch(color="#93b4e6", label="attention weight"), Patch(color="#f59e0b", label="top frames"),
                   *ax.get_lines()]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.set_xlim(min(0.0, float(t.min()) - width), max(t_end, float(t.max()) + width))
    ax.set(xlabel="time (s)", ylabel="attention weight")
    _style_axes(ax)
    fig.subplots_adjust(**_MARGINS)
    return _fig_png(fig)


def _draw_frame(frame: np.ndarray, box: Sequence[float], landmarks: Sequence[Sequence[float]], region: str,
                preprocess: Any, out_w: int = 360, context: float = 0.9,
                crop_box: Sequence[float] | None = None) -> np.ndarray:
    """A view of the face in its frame, ``out_w`` px wide, with the face box (green), the model's
    region (magenta, when it is a box) and the 68 landmarks (cyan; mouth in yellow for lips) drawn.

    The view is the face box grown by ``context`` of its size on each side (clamped to the frame),
    so the face is large enough to judge while some surroundings stay visible. ``crop_box``: the
    model's crop in frame pixels as an evidence map gives it (drawn in magenta for every region).
    """
    fh, fw = frame.shape[:2]
    lm = np.asarray(landmarks, np.float64).reshape(-1, 2)
    b = np.asarray(box, np.float64).reshape(4)
    bw, bh = max(b[2] - b[0], 1.0), max(b[3] - b[1], 1.0)
    x0 = int(max(0, np.floor(b[0] - context * bw)))
    y0 = int(max(0, np.floor(b[1] - context * bh)))
    x1 = int(min(fw, np.ceil(b[2] + context * bw)))
    y1 = int(min(fh, np.ceil(b[3] + context * bh)))
    if x1 - x0 < 8 or y1 - y0 < 8:  # box outside the frame: show the whole frame
        x0, y0, x1, y1 = 0, 0, fw, fh
    view = frame[y0:y1, x0:x1]
    s = out_w / float(x1 - x0)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = np.ascontiguousarray(cv2.resize(view, (out_w, max(1, round((y1 - y0) * s))), interpolation=interp))

    def pt(x: float, y: float) -> tuple[int, int]:
        return round((x - x0) * s), round((y - y0) * s)

    th = 2
    if crop_box is not None:
        cb = np.asarray(crop_box, np.float64).reshape(4)
        cv2.rectangle(img, pt(cb[0], cb[1]), pt(cb[2], cb[3]), (217, 70, 239), th, cv2.LINE_AA)
    elif region in ("full", "eyes", "mouth") and preprocess is not None and lm.shape == (68, 2):
        try:
            from forensight.regions import region_box

            rb = np.asarray(region_box(region, lm, b, frame.shape, preprocess), np.float64)
            cv2.rectangle(img, pt(rb[0], rb[1]), pt(rb[2], rb[3]), (217, 70, 239), th, cv2.LINE_AA)
        except Exception:  # the drawing is only a guide
            log.debug("no region box drawn", exc_info=True)
    cv2.rectangle(img, pt(b[0], b[1]), pt(b[2], b[3]), (34, 197, 94), th, cv2.LINE_AA)
    r = max(2, round(out_w / 180))
    for k, (x, y) in enumerate(lm):
        col = (250, 204, 21) if (region == "lips" and k >= 48) else (34, 211, 238)
        cv2.circle(img, pt(x, y), r, col, -1, cv2.LINE_AA)
    return img


def _top_frame_images(result: DetectionResult) -> dict[int, np.ndarray]:
    """Re-decode the top frames (or take them from the in-memory input)."""
    art = result.artifacts or {}
    frames: dict[int, np.ndarray] = dict(art.get("frames") or {})
    want = [t.frame_index for t in result.top_frames if t.frame_index not in frames]
    if want and result.path and Path(result.path).is_file():
        try:
            from forensight.video import read_frames

            sf = read_frames(result.path, np.array(sorted(want), np.int64))
            frames.update({int(i): f for i, f in zip(sf.indices, sf.frames)})
        except Exception:  # the page still shows the crops
            log.warning("could not re-decode the top frames of %s", result.path, exc_info=True)
    return frames


# ---- HTML -----------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#1f2937;background:#f3f4f6}
main{max-width:1180px;margin:0 auto;padding:24px 28px 40px}
a{color:#1f5fbf}
.brand{font-size:12px;letter-spacing:.08em;text-transform:uppercase;color:#6b7280;margin:0 0 4px}
h1{font-size:26px;margin:0 0 2px;word-break:break-all}
h2{font-size:17px;margin:0 0 10px}
.path{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#6b7280;word-break:break-all}
.card{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08),0 1px 2px rgba(0,0,0,.04);
 padding:18px 22px;margin:16px 0}
.hero{display:grid;grid-template-columns:auto 1fr;gap:28px;align-items:center}
.badge{display:inline-block;padding:6px 14px;border-radius:999px;color:#fff;font-weight:700;
 letter-spacing:.06em;font-size:14px;white-space:nowrap}
.big{font-size:44px;font-weight:750;line-height:1.05;margin-top:10px}
.big small{font-size:15px;font-weight:500;color:#6b7280}
.gauge{position:relative;height:14px;border-radius:7px;margin:30px 0 8px;
 background:linear-gradient(90deg,#2e7d32 0%,#a3c96b 45%,#f1c453 55%,#c62828 100%)}
.gauge .thr{position:absolute;top:-8px;bottom:-8px;width:2px;background:#111827}
.gauge .thr span{position:absolute;top:-20px;transform:translateX(-50%);font-size:11px;color:#111827;
 white-space:nowrap}
.gauge .val{position:absolute;top:50%;width:20px;height:20px;border-radius:50%;background:#fff;
 border:4px solid #111827;transform:translate(-50%,-50%)}
.scale{display:flex;justify-content:space-between;font-size:11px;color:#6b7280}
.explain{color:#4b5563;font-size:13.5px;margin:10px 0 0}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px 18px;margin:0}
.facts div{border-left:3px solid #e5e7eb;padding-left:10px}
.facts dt{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280}
.facts dd{margin:0;font-weight:600;font-size:15px}
img.plot{width:100%;height:auto;display:block}
.caption{color:#6b7280;font-size:13px;margin:6px 0 0}
.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
.thumb{border:1px solid #e5e7eb;border-radius:10px;padding:10px;background:#fafafa}
.thumb .pair{display:flex;gap:8px;align-items:flex-start}
.thumb .pair img.frame{flex:1 1 auto;min-width:0;width:100%;border-radius:6px}
.thumb .pair img.crop{width:112px;height:112px;border-radius:6px;image-rendering:pixelated;flex:none;
 border:2px solid #d946ef}
.thumb .pair .stack{display:flex;flex-direction:column;gap:6px;flex:none}
.thumb .pair img.evidence{border-color:#f59e0b}
.thumb .meta{font-size:13px;margin-top:6px;display:flex;justify-content:space-between;gap:8px}
.rank{font-weight:700;color:#92400e}
.legend{font-size:12.5px;color:#4b5563;margin:0 0 10px}
.cscale{display:inline-flex;align-items:center;gap:4px;font-size:11px;margin:0 4px}
.cscale .bar{display:inline-block;width:90px;height:10px;border-radius:2px;
background:linear-gradient(90deg,#000004,#3b0f70,#8c2981,#de4968,#fe9f6d,#fcfdbf)}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#6b7280;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.score{white-space:nowrap}
.bar{position:relative;height:8px;width:120px;background:#e5e7eb;border-radius:4px;display:inline-block;
 vertical-align:middle;margin-left:8px}
.bar i{position:absolute;left:0;top:0;bottom:0;border-radius:4px}
.bar b{position:absolute;top:-3px;bottom:-3px;width:2px;background:#111827}
ul.notes{margin:0;padding-left:20px}
ul.notes li{margin:3px 0}
.fail{border-left:5px solid #6b7280}
details summary{cursor:pointer;font-weight:600}
pre{background:#f9fafb;border:1px solid #e5e7eb;border-radius:8px;padding:10px;overflow:auto;font-size:12px}
.chips{display:flex;gap:10px;flex-wrap:wrap;margin-top:8px}
.chip{background:#fff;border-radius:999px;padding:6px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);font-size:14px}
footer{color:#6b7280;font-size:12.5px;margin-top:24px}
.warn{background:#fef3c7;border:1px solid #f59e0b;color:#78350f;border-radius:8px;padding:10px 14px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 8px}
.person .badge{font-size:12px;padding:3px 10px;margin:0 6px}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _badge(result: DetectionResult) -> str:
    if result.status != "ok":
        return f'<span class="badge" style="background:{FAIL_COLOR}">NOT SCORED</span>'
    if result.verdict == "fake":
        return f'<span class="badge" style="background:{FAKE_COLOR}">FAKE</span>'
    return f'<span class="badge" style="background:{REAL_COLOR}">REAL</span>'


def _fmt(v: Any, nd: int = 2, suffix: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}{suffix}"
    return f"{v}{suffix}"


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")


def _facts(result: DetectionResult) -> str:
    v = result.video or {}
    ft = result.face_track
    items = [
        ("Duration", _fmt(v.get("duration_s"), 2, " s")),
        ("Resolution", f"{v['width']}×{v['height']}" if v.get("width") else "–"),
        ("Frame rate", _fmt(v.get("fps"), 2, " fps")),
        ("Frames", _fmt(v.get("num_frames"))),
        ("Frames scored", f"{ft.num_scored} / {ft.num_sampled} sampled" if ft else "–"),
        ("Clips", str(len(result.clips)) if result.clips else "–"),
        ("Face coverage", f"{100 * ft.coverage:.0f}%" if ft else "–"),
        ("Other faces", str(ft.num_other_tracks) if ft else "–"),
    ]
    if v.get("rotation"):
        items.append(("Rotation", f"{v['rotation']}°"))
    return '<dl class="facts">' + "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(val)}</dd></div>"
                                          for k, val in items) + "</dl>"


def _hero(result: DetectionResult) -> str:
    if result.status != "ok":
        return (f'<section class="card fail"><div>{_badge(result)}</div>'
                f'<p style="font-size:19px;font-weight:600;margin:12px 0 0">{_e(_cap(result.message))}</p>'
                f'<p class="explain">Reason code: <code>{_e(result.reason)}</code>. No score is given: '
                "the video is never replaced by a guess.</p></section>")
    p = float(result.p_fake or 0.0)
    thr = float(result.threshold_p)
    word = "manipulated (fake)" if result.verdict == "fake" else "authentic (real)"
    src = result.model.get("threshold_source") or "chosen on the validation split when the model was trained"
    explain = (f"The model estimates P(fake) = {p:.3f}. Videos scoring at or above the threshold "
               f"{thr:.3f} ({_e(src)}) are called fake, "
               f"so this video is judged <b>{word}</b>. {_e(_cap(result.message))}."
               + (f" P(fake) is {_e(result.model['calibration'])}." if result.model.get("calibration") else ""))
    return (f'<section class="card hero"><div>{_badge(result)}<div class="big">{p:.3f}<br>'
            f'<small>P(fake)</small></div></div>'
            f'<div><div class="gauge"><div class="thr" style="left:{100 * thr:.2f}%"><span>threshold '
            f'{thr:.2f}</span></div><div class="val" style="left:{100 * p:.2f}%"></div></div>'
            f'<div class="scale"><span>0 · real</span><span>0.5</span><span>1 · fake</span></div>'
            f'<p class="explain">{explain}</p></div></section>')


def _thumbs(result: DetectionResult, heading: str = "h2") -> str:
    """The most-attended frames with the crops the model read; ``heading`` "h2" = its own card,
    "h3" = a block inside another card (per-person sections)."""
    if not result.top_frames:
        return ""
    art = result.artifacts or {}
    crops: dict[int, np.ndarray] = art.get("crops") or {}
    region = result.model.get("region", "")
    frames = _top_frame_images(result)
    maps = {m.frame_index: m for m in result.evidence_maps}
    cards = []
    for tf in result.top_frames:
        parts = []
        ev = maps.get(tf.frame_index)
        if tf.frame_index in frames:
            drawn = _draw_frame(frames[tf.frame_index], tf.box, tf.landmarks, region, art.get("preprocess"),
                                crop_box=ev.box if ev is not None else None)
            parts.append(f'<img class="frame" alt="frame {tf.frame_index}" '
                         f'src="{_data_uri(_encode(drawn, ".jpg"), "image/jpeg")}">')
        if tf.frame_index in crops:
            parts.append(f'<img class="crop" alt="{_e(region)} crop" title="the {_e(region)} crop the model read" '
                         f'src="{_data_uri(_encode(crops[tf.frame_index]))}">')
        if ev is not None:  # the crop and its evidence map stacked beside the frame
            crop_html = parts.pop() if tf.frame_index in crops else ""
            parts.append(f'<div class="stack">{crop_html}{_evidence_img(ev, crops.get(tf.frame_index))}</div>')
        if not parts:
            parts.append('<p class="caption">(frame not available)</p>')
        cards.append(f'<div class="thumb"><div class="pair">{"".join(parts)}</div><div class="meta">'
                     f'<span class="rank">#{tf.rank}</span><span>frame {tf.frame_index} · '
                     f'{tf.timestamp_s:.2f} s</span><span>weight {tf.attention:.3f}</span></div></div>')
    region_note = ("the aligned grayscale mouth crop the model read (mouth landmarks in yellow)" if region == "lips"
                   else f"the <b>{_e(region)}</b> crop the model read (its box drawn in magenta)")
    legend = ('<p class="legend"><span class="sw" style="background:#22c55e;margin-left:0"></span>tracked face box'
              '<span class="sw" style="background:#22d3ee"></span>68 landmarks'
              f'<span class="sw" style="background:#d946ef"></span>right: {region_note}. '
              "Rank #1 is the frame the model weighted most.</p>")
    inner = (f'<{heading}>Most-attended frames</{heading}>{legend}{_evidence_legend(result)}'
             f'<div class="thumbs">{"".join(cards)}</div>')
    return f'<section class="card">{inner}</section>' if heading == "h2" else f"<div>{inner}</div>"


def _evidence_img(ev: Any, crop: np.ndarray | None) -> str:
    """The evidence map of one frame over the crop the model read (or alone when the crop is gone)."""
    from forensight.explain import colorize, overlay

    small = np.asarray(ev.map, np.float32)
    img = overlay(crop, small) if crop is not None else colorize(small, 112)
    return (f'<img class="crop evidence" alt="evidence map, frame {ev.frame_index}" '
            f'title="where the evidence is (Grad-CAM, {ev.grid[0]}x{ev.grid[1]} cells)" '
            f'src="{_data_uri(_encode(img))}">')


def _evidence_legend(result: DetectionResult) -> str:
    """Colour scale and the one-line reading note of the evidence maps (empty without maps)."""
    if not result.evidence_maps:
        return ""
    from forensight.explain import HOW_TO_READ

    ev = result.evidence or {}
    layer = f" (layer <code>{_e(ev['layer'])}</code>)" if ev.get("layer") else ""
    return ('<p class="legend evidence-legend"><b>Evidence map</b> (orange frame, under each crop): '
            '<span class="cscale">0<span class="bar"></span>max</span> '
            f'{_e(HOW_TO_READ)}{layer}</p>')


def _clip_table(result: DetectionResult) -> str:
    if not result.clips:
        return ""
    rows = []
    for c in result.clips:
        col = FAKE_COLOR if c.logit >= result.threshold else REAL_COLOR
        rows.append(f"<tr><td>{c.index}</td><td>{c.start_frame}–{c.end_frame}</td>"
                    f"<td>{c.start_s:.2f}–{c.end_s:.2f} s</td><td class=num>{c.num_frames}</td>"
                    f"<td class=num>{c.logit:+.3f}</td><td class=num>{c.p_fake:.3f}"
                    f'<span class="bar"><i style="width:{100 * c.p_fake:.1f}%;background:{col}"></i>'
                    f'<b style="left:{100 * result.threshold_p:.1f}%"></b></span></td></tr>')
    return ('<section class="card"><h2>Clips</h2><table><thead><tr><th>#</th><th>frames</th><th>time</th>'
            '<th class=num>frames read</th><th class=num>logit</th><th class=num>P(fake)</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table><p class=caption>The video score is the mean of the clip "
            "logits (as in evaluation).</p></section>")


def _notes(result: DetectionResult) -> str:
    if not result.skipped:
        return ('<section class="card"><h2>Skipped</h2><p class="caption">Nothing: every sampled frame had the '
                "face and was scored.</p></section>")
    items = "".join(f"<li><b>{_e(s.get('what'))}</b> — {_e(s.get('why'))}</li>" for s in result.skipped)
    return f'<section class="card"><h2>Skipped and why</h2><ul class="notes">{items}</ul></section>'


def _details(result: DetectionResult, key: str) -> str:
    m = result.model
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in m.items())
    t = "".join(f"<tr><th>{_e(k)}</th><td class=num>{v:.3f} s</td></tr>" for k, v in result.timings_s.items())
    data = json.dumps(to_jsonable(result.to_dict())).replace("<", "\\u003c").replace(">", "\\u003e")
    return ('<section class="card"><details><summary>Model, timings and raw result</summary>'
            f'<h2 style="margin-top:14px">Model</h2><table>{rows}</table>'
            f'<h2 style="margin-top:14px">Timings</h2><table>{t}</table>'
            f'<p class="caption">The full result is in <a href="{_e(key)}.json">{_e(key)}.json</a> and embedded '
            'in this page (<code>script#forensight-result</code>).</p></details></section>'
            f'<script type="application/json" id="forensight-result">{data}</script>')


def _model_card(result: DetectionResult) -> str:
    """What the model was trained on (its card), with the warning a verdict must carry, if any."""
    from forensight.modelcard import card_lines, card_warning

    card = result.model.get("trained_on")
    warning = result.model.get("warning", card_warning(card)) if result.model else None
    lines = [ln for ln in card_lines(card) if not ln.startswith("WARNING")]
    banner = (f'<div class="warn" role="alert"><b>Warning:</b> {_e(_cap(warning))}</div>' if warning else "")
    return (f'<section class="card"><h2>What this verdict rests on</h2>{banner}<ul class="notes">'
            + "".join(f"<li>{_e(ln)}</li>" for ln in lines) + "</ul></section>")


def _people(result: DetectionResult, key: str, out: Path) -> str:
    """One card per person (when several were scored): verdict, P(fake), coverage, their own
    attention timeline and most-attended crops."""
    if len(result.people) < 2:
        return ""
    rows, cards = [], []
    for p in result.people:
        ft = p.face_track
        cov = f"{100 * ft.coverage:.0f}%" if ft else "–"
        chosen = " (the verdict)" if p.person == result.person else ""
        if not p.ok:
            rows.append(f"<tr><td>person {p.person}</td><td>NOT SCORED</td><td class=num>–</td><td class=num>{cov}"
                        f"</td><td>{_e(p.message)}</td></tr>")
            continue
        rows.append(f"<tr><td>person {p.person}{chosen}</td><td>{_e(str(p.verdict).upper())}</td>"
                    f"<td class=num>{p.p_fake:.3f}</td><td class=num>{cov}</td>"
                    f"<td>{ft.num_scored if ft else 0} frames scored in {len(p.clips)} clip(s)</td></tr>")
        view = result.person_view(p.person)
        png = plot_attention(view)
        _write_bytes(out, f"{key}_person{p.person}_attention.png", png)
        thumbs = _thumbs(view, heading="h3")
        cards.append(f'<section class="card person" id="person-{p.person}"><h2>Person {p.person}{chosen}: '
                     f'{_badge(view)} P(fake) {p.p_fake:.3f} · face in {cov} of sampled frames</h2>'
                     f'<img class="plot" alt="attention timeline of person {p.person}" src="{_data_uri(png)}">'
                     f"{thumbs}</section>")
    table = ('<section class="card"><h2>People in this video</h2><p class="caption">Every face seen often enough '
             "is scored on its own; the video's verdict is the highest-scoring person's (a video is fake if "
             "anyone in it is).</p><table><thead><tr><th>person</th><th>verdict</th><th class=num>P(fake)</th>"
             f"<th class=num>face coverage</th><th>scored</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
             "</section>")
    return table + "".join(cards)


def write_video_report(result: DetectionResult, out_dir: str | Path, index_link: bool = False) -> Path:
    """Write ``key.html`` (self-contained), ``key_score.png``, ``key_attention.png`` and ``key.json``
    for one result into ``out_dir`` (created); returns the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = report_key(result)
    parts = ['<p class="brand">Forensight · deepfake video analysis</p>']
    if index_link:
        parts.append('<p class="caption" style="margin:0 0 8px"><a href="index.html">← all videos</a></p>')
    parts.append(f"<h1>{_e(result.name)}</h1>")
    if result.path:
        parts.append(f'<div class="path">{_e(result.path)}</div>')
    parts.append(_hero(result))
    if result.model:
        parts.append(_model_card(result))
    if result.video or result.status == "ok":
        parts.append(f'<section class="card"><h2>Video</h2>{_facts(result)}</section>')
    if result.status == "ok":
        score_png = plot_score_over_time(result)
        att_png = plot_attention(result)
        _write_bytes(out, f"{key}_score.png", score_png)
        _write_bytes(out, f"{key}_attention.png", att_png)
        local = (" The blue line scores short sliding windows of the sampled frames on their own (indicative; "
                 "the verdict uses the whole video)." if result.local_scores else "")
        parts.append('<section class="card"><h2>Score over time</h2>'
                     f'<img class="plot" alt="score over time" src="{_data_uri(score_png)}">'
                     '<p class="caption">Bars: P(fake) of each clip the model read; dotted: the video score; '
                     f'dashed: the decision threshold.{local}</p></section>')
        parts.append('<section class="card"><h2>Where the model looked: attention over time</h2>'
                     f'<img class="plot" alt="attention timeline" src="{_data_uri(att_png)}">'
                     '<p class="caption">Weight the model gave each scored frame when pooling over time (they '
                     'sum to 1). Frames above the dashed line counted more than average; the numbered ones '
                     'are shown below.</p></section>')
        parts.append(_thumbs(result))
        parts.append(_people(result, key, out))
        parts.append(_clip_table(result))
    if result.status == "ok" or len(result.skipped) > 1:
        parts.append(_notes(result))
    parts.append(_details(result, key))
    parts.append(f'<footer>Generated by forensight {result.version} on {time.strftime("%Y-%m-%d %H:%M")}. '
                 "A score is a statistical estimate from one model, not proof; check the frames it points "
                 "to.</footer>")
    _write_text(out, f"{key}.json", json.dumps(to_jsonable(result.to_dict()), indent=2) + "\n")
    return _write_text(out, f"{key}.html", _page(f"{result.name} – Forensight", "\n".join(parts)))


def write_index(results: Sequence[DetectionResult], out_dir: str | Path, title: str = "Forensight batch report"
                ) -> Path:
    """Write ``index.html``: one row per video (verdict, P(fake), coverage, why it failed), linking
    to each video's page where it exists."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_fake = sum(r.status == "ok" and r.verdict == "fake" for r in results)
    n_real = sum(r.status == "ok" and r.verdict == "real" for r in results)
    n_fail = sum(r.status != "ok" for r in results)
    rows = []
    for r in results:
        key = report_key(r)
        page = (out / f"{key}.html")
        name = (f'<a href="{_e(key)}.html">{_e(r.name)}</a>' if page.is_file() else _e(r.name))
        ft = r.face_track
        if r.status == "ok":
            col = FAKE_COLOR if r.verdict == "fake" else REAL_COLOR
            score = (f"{r.p_fake:.3f}<span class=\"bar\"><i style=\"width:{100 * (r.p_fake or 0):.1f}%;"
                     f"background:{col}\"></i><b style=\"left:{100 * r.threshold_p:.1f}%\"></b></span>")
            note = _e(r.short_notes()) or "–"
        else:
            score, note = "–", _e(r.message)
        dur = (r.video or {}).get("duration_s")
        rows.append(f"<tr><td>{name}</td><td>{_badge(r)}</td><td class='num score'>{score}</td>"
                    f"<td class=num>{_fmt(100 * ft.coverage, 0, '%') if ft else '–'}</td>"
                    f"<td class=num>{len(r.clips) or '–'}</td><td class=num>{_fmt(dur, 1, ' s')}</td>"
                    f"<td style='font-size:13px;color:#4b5563'>{note}</td></tr>")
    model = next((r.model for r in results if r.model), {})
    thr = next((r.threshold_p for r in results), 0.5)
    head = (f'<p class="brand">Forensight · deepfake video analysis</p><h1>{_e(title)}</h1>'
            f'<div class="path">model {_e(model.get("name", "?"))} ({_e(model.get("region", ""))} region, '
            f'{_e(model.get("pooling", ""))} pooling) · {_e(model.get("path", ""))} · decision threshold '
            f"P(fake) ≥ {thr:.3f} ({_e(model.get('threshold_source') or 'validation split')})"
            + (f" · P(fake) {_e(model['calibration'])}" if model.get("calibration") else "") + "</div>"
            f'<div class="chips"><span class="chip"><b>{len(results)}</b> videos</span>'
            f'<span class="chip" style="color:{FAKE_COLOR}"><b>{n_fake}</b> fake</span>'
            f'<span class="chip" style="color:{REAL_COLOR}"><b>{n_real}</b> real</span>'
            f'<span class="chip" style="color:{FAIL_COLOR}"><b>{n_fail}</b> not scored</span></div>')
    table = ('<section class="card"><table><thead><tr><th>video</th><th>verdict</th><th class=num>P(fake)</th>'
             '<th class=num>face</th><th class=num>clips</th><th class=num>length</th><th>notes</th></tr></thead>'
             f"<tbody>{''.join(rows)}</tbody></table></section>")
    foot = (f'<footer>Generated by forensight on {time.strftime("%Y-%m-%d %H:%M")}. Scores are statistical '
            "estimates from one model, not proof.</footer>")
    return _write_text(out, "index.html", _page(title, head + table + foot))


def write_report(results: Sequence[DetectionResult], out_dir: str | Path) -> Path:
    """Pages for every result plus ``index.html``; returns the index path."""
    for r in results:
        write_video_report(r, out_dir, index_link=True)
    return write_index(results, out_dir)
