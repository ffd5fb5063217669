"""Video probing, frame sampling and writing (PyAV).

Decoding is done in ONE forward pass over the file: the packet index (read without decoding)
maps presentation timestamps to 0-based frame numbers, and the decoder seeks to a keyframe only
when the next wanted frame lies beyond the next keyframe, so a 300-frame video is never decoded
32 times. Only wanted frames are converted to RGB.

Frame numbers are presentation order; timestamps are seconds from the stream start.
Rotation metadata (display matrix) is applied, so frames come out upright.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from forensight.config import PreprocessConfig
from forensight.records import PreprocessError, SampledFrames, VideoInfo

__all__ = [
    "VideoIndex",
    "clip_starts",
    "index_video",
    "iter_frames",
    "probe",
    "read_frames",
    "sample_indices",
    "write_video",
]


@dataclass
class VideoIndex:
    """Timing of every frame of the first video stream, read from packets without decoding.

    Attributes:
        info: probed metadata (size after rotation, fps, frame count, duration).
        pts: int64 (N,) presentation timestamps in stream time-base units, sorted; frame i has pts[i].
        keyframes: int64 (K,) frame numbers that are keyframes (seek targets), sorted.
        time_base: seconds per pts unit.
        start_pts: pts of the first frame.
    """

    info: VideoInfo
    pts: np.ndarray
    keyframes: np.ndarray
    time_base: float
    start_pts: int
    seekable: bool = True

    def timestamps(self, indices: np.ndarray) -> np.ndarray:
        """Seconds from the first frame for the given frame numbers."""
        return (self.pts[indices] - self.start_pts).astype(np.float64) * self.time_base


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise PreprocessError("not_found", f"no such file: {path}")
    if path.is_dir():
        raise PreprocessError("unreadable", f"{path} is a directory, not a video file")
    if path.stat().st_size == 0:
        raise PreprocessError("empty_file", f"{path} is empty (0 bytes)")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise PreprocessError("unreadable", f"{path}: not a readable video file ({e})") from e


def _rotation_of(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> int:
    """Counter-clockwise display rotation in degrees (multiple of 90), from the first frame."""
    try:
        frame = next(container.decode(stream))
        rot = round(float(getattr(frame, "rotation", 0) or 0)) % 360
    except (StopIteration, av.error.FFmpegError):
        return 0
    return rot - rot % 90


def index_video(path: str | Path, max_side: int = 0) -> VideoIndex:
    """Read the packet index of ``path``'s first video stream (no full decode).

    Raises ``PreprocessError`` with reason ``not_found``, ``empty_file``, ``unreadable``,
    ``no_video_stream``, ``too_large`` (a side above ``max_side`` > 0) or ``too_short`` (no frame).
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise PreprocessError("no_video_stream", f"{path} has no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            raise PreprocessError("unreadable", f"{path}: video stream has no frame size")
        if max_side and max(w, h) > max_side:
            raise PreprocessError("too_large", f"{path}: {w}x{h} exceeds the {max_side}-pixel limit")
        pts_list: list[int] = []
        key_pts: list[int] = []
        seq = 0
        seekable = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                p = packet.pts if packet.pts is not None else packet.dts
                if p is None:
                    p = seq  # no timestamps: decode order = presentation order, no seeking
                    seekable = False
                pts_list.append(int(p))
                if packet.is_keyframe:
                    key_pts.append(int(p))
                seq += 1
        except av.error.FFmpegError as e:
            if not pts_list:
                raise PreprocessError("unreadable", f"{path}: cannot read packets ({e})") from e
            # a truncated tail: keep the frames whose packets were read
        if not pts_list:
            raise PreprocessError("too_short", f"{path} contains no video frames")
        pts = np.unique(np.asarray(pts_list, dtype=np.int64))
        keyframes = np.searchsorted(pts, np.unique(np.asarray(key_pts, dtype=np.int64)))
        if keyframes.size == 0 or keyframes[0] != 0:
            keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
        tb = float(stream.time_base) if stream.time_base else 1.0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        n = int(pts.size)
        if n > 1:
            span = (pts[-1] - pts[0]) * tb
            duration = float(span + (1.0 / fps if fps else span / (n - 1)))
            if not fps:
                fps = (n - 1) / span if span > 0 else 0.0
        else:
            duration = 1.0 / fps if fps else 0.0
        container.seek(0)
        rotation = _rotation_of(stream, container)
        if rotation in (90, 270):
            w, h = h, w
        info = VideoInfo(width=w, height=h, fps=fps, num_frames=n, duration_s=duration,
                         rotation=rotation, codec=cc.name)
        return VideoIndex(info=info, pts=pts, keyframes=keyframes, time_base=tb, start_pts=int(pts[0]),
                          seekable=seekable)
    finally:
        container.close()


def probe(path: str | Path, max_side: int = 0) -> VideoInfo:
    """Metadata of a video (see ``index_video`` for the errors raised)."""
    return index_video(path, max_side=max_side).info


def clip_starts(num_frames: int, clip_len: int, max_clips: int = 0) -> np.ndarray:
    """First frame of each consecutive non-overlapping clip of ``clip_len`` frames.

    With ``max_clips`` > 0 and more clips available, that many are kept, evenly spread.
    """
    n_clips = num_frames // clip_len
    starts = np.arange(n_clips, dtype=np.int64) * clip_len
    if max_clips and n_clips > max_clips:
        keep = np.linspace(0, n_clips - 1, max_clips).round().astype(np.int64)
        starts = starts[keep]
    return starts


def sample_indices(num_frames: int, cfg: PreprocessConfig) -> np.ndarray:
    """Frame numbers (int64, sorted, unique) to sample from a video of ``num_frames`` frames.

    Raises ``PreprocessError("too_short")`` when the video has fewer frames than the mode needs:
    linear needs ``num_frames`` distinct frames, clips needs one whole clip.
    """
    n = min(num_frames, cfg.max_frames) if cfg.max_frames else num_frames
    if n <= 0:
        raise PreprocessError("too_short", "the video has no frames")
    if cfg.sampling == "linear":
        if n < cfg.num_frames:
            raise PreprocessError("too_short", f"{n} frames, fewer than the {cfg.num_frames} to sample")
        idx = np.linspace(0, n - 1, cfg.num_frames).round().astype(np.int64)
    elif cfg.sampling == "stride":
        idx = np.arange(0, n, cfg.stride, dtype=np.int64)
    elif cfg.sampling == "all":
        idx = np.arange(n, dtype=np.int64)
    else:  # clips
        starts = clip_starts(n, cfg.clip_len, cfg.max_clips)
        if starts.size == 0:
            raise PreprocessError("too_short", f"{n} frames, fewer than one {cfg.clip_len}-frame clip")
        idx = (starts[:, None] + np.arange(cfg.clip_len)[None, :]).reshape(-1)
    if idx.size < cfg.min_frames:
        raise PreprocessError("too_short", f"{idx.size} sampled frames, fewer than min_frames={cfg.min_frames}")
    if idx.size > cfg.max_sampled_frames:
        raise PreprocessError(
            "too_large", f"{idx.size} frames to sample exceed max_sampled_frames={cfg.max_sampled_frames}")
    return np.unique(idx)


def _to_rgb(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def iter_frames(
    path: str | Path,
    indices: Iterable[int] | np.ndarray,
    index: VideoIndex | None = None,
    threads: int = 0,
    min_seek_gap: int = 12,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(frame_number, timestamp_s, rgb uint8 (H,W,3))`` for the wanted frames, in order.

    One forward pass with keyframe-aware seeks: the decoder jumps to the keyframe before a wanted
    frame only when that skips at least ``min_seek_gap`` frames (a seek flushes the decoder, so
    short gaps are cheaper to decode through; frames in a gap are never converted to RGB).
    ``threads`` = decoder
    threads (0 = FFmpeg's choice). Raises ``PreprocessError("truncated")`` if the stream ends
    before a wanted frame and ``PreprocessError("decode_error")`` on corrupt data.
    """
    path = Path(path)
    idx = index or index_video(path)
    wanted = np.unique(np.fromiter(indices, dtype=np.int64) if not isinstance(indices, np.ndarray)
                       else indices.astype(np.int64))
    if wanted.size == 0:
        return
    if wanted[0] < 0 or wanted[-1] >= idx.info.num_frames:
        raise ValueError(f"frame numbers must be in [0, {idx.info.num_frames}), got {wanted[0]}..{wanted[-1]}")
    pts_to_num = {int(p): i for i, p in enumerate(idx.pts)}
    keyframes = idx.keyframes.tolist() if idx.seekable else [0]

    def keyframe_before(n: int) -> int:
        return keyframes[bisect.bisect_right(keyframes, n) - 1]

    container = _open(path)
    try:
        stream = container.streams.video[0]
        if threads:
            stream.codec_context.thread_count = threads
        stream.thread_type = "AUTO"
        w, pos, seq = 0, -1, -1
        frames = None
        while w < wanted.size:
            k = keyframe_before(int(wanted[w]))
            if frames is None or k - pos - 1 >= max(min_seek_gap, 1):
                if k > 0:
                    container.seek(int(idx.pts[k]), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            try:
                for frame in frames:
                    seq += 1
                    num = seq if frame.pts is None else pts_to_num.get(int(frame.pts))
                    if num is None:
                        continue
                    pos = num
                    if num < wanted[w]:
                        continue
                    if num > wanted[w]:
                        raise PreprocessError(
                            "decode_error", f"{path}: frame {int(wanted[w])} could not be decoded")
                    yield num, float(idx.timestamps(np.array([num]))[0]), _to_rgb(frame, idx.info.rotation)
                    w += 1
                    if w == wanted.size:
                        return
                    if keyframe_before(int(wanted[w])) - pos - 1 >= max(min_seek_gap, 1):
                        break  # cheaper to seek than to decode the gap
                else:
                    raise PreprocessError(
                        "truncated", f"{path}: the stream ended at frame {pos}, before wanted frame "
                                     f"{int(wanted[w])} (the file is cut short or damaged)")
            except av.error.FFmpegError as e:
                raise PreprocessError("decode_error", f"{path}: corrupt video data ({e})") from e
    finally:
        container.close()


def read_frames(path: str | Path, indices: np.ndarray, index: VideoIndex | None = None,
                threads: int = 0, min_seek_gap: int = 12) -> SampledFrames:
    """Decode the wanted frames into one array: uint8 (T, H, W, 3); see ``iter_frames``."""
    nums, times, frames = [], [], []
    for n, t, f in iter_frames(path, indices, index=index, threads=threads, min_seek_gap=min_seek_gap):
        nums.append(n)
        times.append(t)
        frames.append(f)
    return SampledFrames(indices=np.asarray(nums, np.int64), timestamps=np.asarray(times, np.float64),
                         frames=np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8))


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 25.0, crf: int = 23,
                codec: str = "libx264", gop: int = 0) -> int:
    """Encode RGB uint8 (H, W, 3) frames to ``path`` (H.264, yuv420p, ``crf`` like FF++ c23).

    Width and height must be even for yuv420p. ``gop`` > 0 sets the keyframe interval.
    Returns the number of frames written. The file is written to a temporary name and renamed,
    so a crash never leaves a half-written video under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    n = 0
    container = av.open(str(tmp), mode="w")
    try:
        stream = None
        for rgb in frames:
            rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
            if stream is None:
                h, w = rgb.shape[:2]
                if h % 2 or w % 2:
                    raise ValueError(f"frame size {w}x{h} must be even for yuv420p")
                stream = container.add_stream(codec, rate=_as_fraction(fps))
                stream.width, stream.height = w, h
                stream.pix_fmt = "yuv420p"
                opts = {"crf": str(crf), "preset": "veryfast"} if codec == "libx264" else {}
                if gop:
                    opts["g"] = str(gop)
                stream.options = opts
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is None:
            raise ValueError("no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    except BaseException:
        container.close()
        tmp.unlink(missing_ok=True)
        raise
    container.close()
    tmp.replace(path)
    return n


def _as_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def prefetch(items: Iterable, depth: int = 4) -> Iterator:
    """Iterate ``items`` in a background thread, ``depth`` items ahead.

    Decoding (PyAV) and resizing (OpenCV) release the GIL, so the next frames decode while the
    caller detects faces in the current one. Exceptions are re-raised in the caller; closing the
    returned generator stops the thread.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def run() -> None:
        try:
            for it in items:
                while not stop.is_set():
                    try:
                        q.put(("item", it), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(("error", e))

    th = threading.Thread(target=run, name="forensight-prefetch", daemon=True)
    th.start()
    try:
        while True:
            kind, val = q.get()
            if kind == "item":
                yield val
            elif kind == "error":
                raise val
            else:
                return
    finally:
        stop.set()
        th.join(timeout=5)
