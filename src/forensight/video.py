"""Video probing, frame sampling and writing (PyAV).

Decoding is done in ONE forward pass over the file: the packet index (read without decoding)
maps presentation timestamps to 0-based frame numbers, and the decoder seeks to a keyframe only
when the next wanted frame lies beyond the next keyframe, so a 300-frame video is never decoded
32 times. Only wanted frames are converted to RGB.

Frame numbers are presentation order; timestamps are seconds from the stream start, taken
from each frame's own pts x time base (never frame number x nominal fps, so variable-frame-rate
videos keep their real timing). The frame count is the number of packets read, never a header
field (many containers, e.g. Matroska, store none).
Orientation. Frames come out as a player shows them: the display matrix (the side data phones
write, e.g. a portrait iPhone video stored landscape) is applied, including a mirrored one; without
a display matrix, a legacy ``rotate`` stream tag (degrees clockwise, as older FFmpeg builds and some
Matroska writers store it) is. Angles are rounded to the nearest multiple of 90 degrees.

Pixel formats and codecs. Any format FFmpeg decodes is converted to 8-bit RGB (``rgb24``) by
swscale: 8/10-bit, 4:2:0 / 4:2:2 / 4:4:4 H.264 and HEVC, VP9 and AV1 (libdav1d) in WebM/Matroska.

Interlaced video (frames the decoder flags ``interlaced_frame``, e.g. broadcast H.264 MBAFF or
MPEG-2) is deinterlaced frame by frame: the lines of the temporally first field (``field_order``;
top first when unknown) are kept and the other field's lines are interpolated between them (a
spatial "bob"), so the two fields, half a frame period apart, never comb a moving face. It needs no
neighbouring frames, so sparse sampling and seeking give the same frame as a full decode; the cost
is half the vertical resolution of interlaced input.

Truncation. A file that stops early (a download or copy cut short) still opens and demuxes its
surviving prefix. ``index_video`` compares what it read against what the container declares
(the video stream's frame count, else its duration, else the container's duration when the
video is its only stream) and records the shortfall in ``VideoIndex.truncation``; packets from
the first corrupt (partly read) one on are dropped, so every indexed frame can be decoded.
What to do with a truncated file is the caller's policy (``PreprocessConfig.on_truncated``).
An MP4 whose index (``moov`` atom) sits at the end of the file, FFmpeg's default, does not open
at all once cut: that is ``unreadable``; a "faststart" MP4 (index first) is indexed and flagged.
"""

from __future__ import annotations

import bisect
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import av
import numpy as np

from forensight.config import PreprocessConfig
from forensight.io import guard_disk_full
from forensight.records import PreprocessError, SampledFrames, VideoInfo

__all__ = [
    "FrameStore",
    "Orientation",
    "Truncation",
    "VideoIndex",
    "clip_starts",
    "deinterlace_field",
    "index_video",
    "iter_frames",
    "probe",
    "read_frames",
    "sample_indices",
    "write_video",
]


@dataclass(frozen=True)
class Truncation:
    """A video that ends before what its container declares.

    Attributes:
        found_frames: frames indexed (all decodable).
        declared_frames: frames the container declares; when it declares only a duration, the
            estimate ``round(declared_s * fps)`` (``estimated`` is then True).
        found_s: end time of the last indexed frame (its pts + one frame duration), seconds.
        declared_s: declared end time in seconds, or None when only a frame count is declared.
        basis: what was compared: "frame_count", "duration" or "corrupt_packet" (a packet that
            was only partly read: the data stops inside it).
        estimated: whether ``declared_frames`` is estimated from a duration.
    """

    found_frames: int
    declared_frames: int
    found_s: float
    declared_s: float | None
    basis: str
    estimated: bool = False

    def message(self, path: str | Path) -> str:
        about = "about " if self.estimated else ""
        secs = f" ({self.found_s:.2f} of {self.declared_s:.2f} s)" if self.declared_s is not None else ""
        return (f"{path}: truncated: {self.found_frames} of {about}{self.declared_frames} declared frames{secs} "
                f"survive (basis: {self.basis}); the file is cut short or damaged")

    def to_dict(self) -> dict[str, int | float | str | bool | None]:
        return {"found_frames": self.found_frames, "declared_frames": self.declared_frames,
                "found_s": round(self.found_s, 6),
                "declared_s": None if self.declared_s is None else round(self.declared_s, 6),
                "basis": self.basis, "estimated": self.estimated}


@dataclass(frozen=True)
class Orientation:
    """How decoded frames are turned upright.

    Attributes:
        rotation: counter-clockwise display rotation in degrees (0, 90, 180, 270).
        transpose: swap rows and columns (a 90/270-degree display matrix), applied first.
        flip_rows: then flip the rows (upside down).
        flip_cols: then flip the columns (left-right mirror).
        source: "display_matrix", "rotate_tag" or "none".
    """

    rotation: int = 0
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    source: str = "none"

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """The upright view of a decoded ``(H, W, 3)`` frame (``(W, H, 3)`` when transposed)."""
        if self.transpose:
            rgb = rgb.transpose(1, 0, 2)
        if self.flip_rows:
            rgb = rgb[::-1]
        if self.flip_cols:
            rgb = rgb[:, ::-1]
        return np.ascontiguousarray(rgb) if (self.transpose or self.flip_rows or self.flip_cols) else rgb


@dataclass
class VideoIndex:
    """Timing of every frame of the first video stream, read from packets without decoding.

    Attributes:
        info: probed metadata (size after rotation, fps, frame count, duration).
        pts: int64 (N,) presentation timestamps in stream time-base units, sorted; frame i has pts[i].
        keyframes: int64 (K,) frame numbers that are keyframes (seek targets), sorted.
        time_base: seconds per pts unit.
        start_pts: pts of the first frame.
        seekable: False when packets carry no timestamps (decode order = presentation order).
        declared_frames: the stream's frame count from the container header, or None.
        declared_s: the declared end time of the video in seconds (stream duration, its
            Matroska ``DURATION`` tag, or the container's duration if the video is its only
            stream), or None.
        truncation: set when fewer frames were read than declared (see ``Truncation``).
        orientation: how frames are turned upright (display matrix or legacy ``rotate`` tag).
        field_order: FFmpeg's field order of the stream ("progressive", "tt", "bb", "tb", "bt" or
            "unknown"); frames flagged interlaced are deinterlaced keeping the first field.
        interlaced: whether the first frame is flagged interlaced.
    """

    info: VideoInfo
    pts: np.ndarray
    keyframes: np.ndarray
    time_base: float
    start_pts: int
    seekable: bool = True
    declared_frames: int | None = None
    declared_s: float | None = None
    truncation: Truncation | None = None
    orientation: Orientation = Orientation()
    field_order: str = "unknown"
    interlaced: bool = False

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


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first video stream of ``container``, with a decoder that opened.

    Raises ``PreprocessError("no_video_stream")`` when there is none, and ``unreadable`` when its
    codec cannot be opened (FFmpeg then gives the stream no codec context: an unknown or damaged
    codec header, e.g. a bit flip in an MP4 ``stsd`` box or a Matroska ``CodecID``).
    """
    if not container.streams.video:
        raise PreprocessError("no_video_stream", f"{path} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise PreprocessError(
            "unreadable", f"{path}: the video stream's codec cannot be opened (an unknown codec or a damaged "
                          "codec header)")
    return stream


def _seek(container: av.container.InputContainer, pts: int, stream: av.video.stream.VideoStream) -> bool:
    """Seek ``container`` to the keyframe at or before ``pts`` (stream time base) of ``stream``.

    Returns False when FFmpeg refuses (a damaged or missing seek index): the caller then decodes
    through instead of jumping, which gives the same frames (they are matched by their own pts),
    only slower.
    """
    try:
        container.seek(int(pts), stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OverflowError, ValueError):
        return False
    return True


def _orientation_from_matrix(m: np.ndarray) -> Orientation:
    """Orientation of an FFmpeg display matrix (9 int32, 16.16 fixed point, ``AV_PKT_DATA_DISPLAYMATRIX``).

    The matrix maps a source pixel (p, q) = (column, row) to the displayed one:
    p' = a p + c q, q' = b p + d q with ``m = [a, b, u, c, d, v, x, y, w]``. Its linear part is
    rounded to the nearest signed permutation (a multiple of 90 degrees, maybe mirrored).
    """
    a, b, c, d = (float(m[i]) / 65536.0 for i in (0, 1, 3, 4))
    if abs(a) + abs(d) >= abs(b) + abs(c):  # p' = ±p, q' = ±q
        orient = Orientation(transpose=False, flip_rows=d < 0, flip_cols=a < 0)
    else:  # p' = ±q, q' = ±p: the displayed frame is the transpose, then flipped
        orient = Orientation(transpose=True, flip_rows=b < 0, flip_cols=c < 0)
    # FFmpeg's av_display_rotation_get: the counter-clockwise angle of the (unmirrored) rotation
    ccw = -np.degrees(np.arctan2(b / (np.hypot(b, d) or 1.0), a / (np.hypot(a, c) or 1.0)))
    rot = round(ccw / 90.0) * 90 % 360
    return replace(orient, rotation=rot, source="display_matrix")


def _orientation_from_ccw(rot: int, source: str) -> Orientation:
    """Orientation of a pure counter-clockwise rotation by ``rot`` degrees (multiple of 90)."""
    rot %= 360
    if rot == 90:  # np.rot90(k=1): transpose, then flip rows
        return Orientation(90, transpose=True, flip_rows=True, source=source)
    if rot == 180:
        return Orientation(180, flip_rows=True, flip_cols=True, source=source)
    if rot == 270:
        return Orientation(270, transpose=True, flip_cols=True, source=source)
    return Orientation(0, source=source)


def _rotate_tag(stream: av.video.stream.VideoStream) -> int | None:
    """Degrees clockwise of a legacy ``rotate`` stream tag (any case), or None if absent / malformed."""
    value = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), None)
    if value is None:
        return None
    try:
        return round(float(str(value).strip()))
    except ValueError:
        return None


def _orientation_of(frame: av.VideoFrame | None, stream: av.video.stream.VideoStream) -> Orientation:
    """How to turn this stream's frames upright: the first frame's display matrix, else the legacy
    ``rotate`` tag (clockwise degrees), else none."""
    matrix = None
    for sd in frame.side_data if frame is not None else ():
        if getattr(sd.type, "name", str(sd.type)) == "DISPLAYMATRIX":
            raw = bytes(sd)
            if len(raw) == 36:
                matrix = np.frombuffer(raw, dtype="<i4")
    if matrix is not None and np.any(matrix[[0, 1, 3, 4]]):
        return _orientation_from_matrix(matrix)
    tag = _rotate_tag(stream)
    if tag is not None and tag % 360:
        return _orientation_from_ccw(-round(tag / 90.0) * 90, "rotate_tag")
    return Orientation()


def _tag_seconds(value: str) -> float | None:
    """Seconds of a Matroska ``DURATION`` tag (``HH:MM:SS.fffffffff``), or None if malformed."""
    try:
        hh, mm, ss = value.strip().split(":")
        return int(hh) * 3600 + int(mm) * 60 + float(ss)
    except ValueError:
        return None


def _declared_length(stream: av.video.stream.VideoStream,
                     container: av.container.InputContainer) -> tuple[int | None, float | None]:
    """(declared frame count or None, declared end time in seconds or None) of ``stream``.

    The frame count is the header's (``nb_frames``: MP4, MOV, AVI); the end time is the stream's
    own duration (plus its start time), else its Matroska ``DURATION`` tag, else the container's
    duration, but only when the video is the container's only stream (an audio track may
    legitimately run longer than the video).
    """
    frames = int(stream.frames or 0) or None
    tb = float(stream.time_base) if stream.time_base else 0.0
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    if stream.duration and tb:
        return frames, start + float(stream.duration * tb)
    tag = next((v for k, v in stream.metadata.items() if k.upper() == "DURATION"), None)
    if tag is not None and (secs := _tag_seconds(str(tag))) is not None:
        return frames, secs
    if container.duration and len(container.streams) == 1:
        c_start = container.start_time / 1e6 if container.start_time is not None else 0.0
        return frames, c_start + container.duration / 1e6
    return frames, None


def _truncation(found: int, empty: int, found_s: float, fps: float, declared_frames: int | None,
                declared_s: float | None, corrupt: bool) -> Truncation | None:
    """Compare what was read with what is declared (see ``Truncation``); None = complete.

    With a declared frame count the comparison is exact (zero-size packets, i.e. dropped or
    repeated frames, count as present). With only a declared duration the video is truncated
    when its last frame ends more than two frame durations (at least 50 ms) before it, so
    millisecond timestamp rounding never flags a complete file.
    """
    estimated = False
    if declared_frames is None and declared_s is not None:
        declared_frames, estimated = (round(declared_s * fps) if fps else found), True
    if corrupt:
        basis = "corrupt_packet"
    elif declared_frames is not None and not estimated and found + empty < declared_frames:
        basis = "frame_count"
    elif estimated and declared_s is not None and found_s < declared_s - max(2.0 / fps if fps else 0.0, 0.05):
        basis = "duration"
    else:
        return None
    return Truncation(found_frames=found, declared_frames=max(int(declared_frames or found), found),
                      found_s=found_s, declared_s=declared_s, basis=basis, estimated=estimated)


def _safe_prefix(decode_order_pts: np.ndarray) -> np.ndarray:
    """Sorted unique pts of the surviving frames of a truncated stream that no lost frame precedes.

    Packets come in decode order; with B-frames a frame is presented up to ``d`` frames before
    its decode position (``d`` = reorder depth, estimated as the largest ``position - rank`` over
    the surviving packets; 2 for x264's defaults). A packet lost with the cut at decode position
    ``j >= m`` is thus presented at rank ``>= m - d``, so the first ``m - d`` frames in
    presentation order are exactly frames ``0 .. m-d-1`` of the complete video; the up to ``d``
    frames after them are dropped, as a lost frame may sit between them (frame numbers would
    shift). ``m`` = surviving packets.
    """
    m = decode_order_pts.size
    rank = np.argsort(np.argsort(decode_order_pts, kind="stable"), kind="stable")
    depth = int(max(0, (np.arange(m) - rank).max())) if m else 0
    return np.unique(np.sort(decode_order_pts)[: max(m - depth, 0)])


def index_video(path: str | Path, max_side: int = 0) -> VideoIndex:
    """Read the packet index of ``path``'s first video stream (no full decode).

    Raises ``PreprocessError`` with reason ``not_found``, ``empty_file``, ``unreadable``,
    ``no_video_stream``, ``too_large`` (a side above ``max_side`` > 0, before rotation) or
    ``too_short`` (no frame). A file shorter than declared is indexed on the frames that survive, and
    ``VideoIndex.truncation`` says so (raising is the caller's policy). Only the first frame is
    decoded (for its display matrix and interlacing flag).
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
        if w <= 0 or h <= 0:
            raise PreprocessError("unreadable", f"{path}: video stream has no frame size")
        if max_side and max(w, h) > max_side:
            raise PreprocessError("too_large", f"{path}: {w}x{h} exceeds the {max_side}-pixel limit")
        pts_list: list[int] = []
        key_pts: list[int] = []
        seq = 0
        empty = 0  # zero-size packets (dropped / repeated frames): counted by headers, never decoded
        seekable = True
        corrupt = False
        try:
            for packet in container.demux(stream):
                if packet.is_corrupt:
                    corrupt = True  # the data ends inside this packet: it and all after it are lost
                    break
                if packet.size == 0:
                    empty += packet.pts is not None or packet.dts is not None
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
            corrupt = True  # a damaged tail: keep the frames whose packets were read, flag the rest
        if not pts_list:
            raise PreprocessError("too_short", f"{path} contains no video frames")
        tb = float(stream.time_base) if stream.time_base else 1.0
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        pts = np.unique(np.asarray(pts_list, dtype=np.int64))
        if not fps and pts.size > 1 and pts[-1] > pts[0]:
            fps = (pts.size - 1) / float((pts[-1] - pts[0]) * tb)
        declared_frames, declared_s = _declared_length(stream, container)
        frame_s = 1.0 / fps if fps else 0.0
        end_s = float(pts[-1] * tb) + frame_s if seekable else pts.size * frame_s  # end of the last frame
        truncation = _truncation(int(pts.size), empty, end_s, fps, declared_frames, declared_s, corrupt)
        if truncation is not None and seekable:
            pts = _safe_prefix(np.asarray(pts_list, dtype=np.int64))
            if pts.size == 0:
                raise PreprocessError("too_short", truncation.message(path) + "; no frame survives")
            truncation = replace(truncation, found_frames=int(pts.size), found_s=float(pts[-1] * tb) + frame_s)
        key = np.unique(np.asarray(key_pts, dtype=np.int64))
        keyframes = np.searchsorted(pts, key[np.isin(key, pts)])
        if keyframes.size == 0 or keyframes[0] != 0:
            keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
        n = int(pts.size)
        if n > 1:
            span = (pts[-1] - pts[0]) * tb
            duration = float(span + (frame_s if fps else span / (n - 1)))
        else:
            duration = frame_s
        try:
            container.seek(0)
            rewound = True
        except (av.error.FFmpegError, OverflowError, ValueError):
            rewound = False
        if rewound:
            orientation, interlaced, field_order = _first_frame_facts(stream, container)
        else:  # the damaged index refuses a seek back to the start: read the first frame from a fresh open
            container.close()
            container = _open(path)
            stream = _video_stream(container, path)
            orientation, interlaced, field_order = _first_frame_facts(stream, container)
        if orientation.transpose:
            w, h = h, w
        info = VideoInfo(width=w, height=h, fps=fps, num_frames=n, duration_s=duration,
                         rotation=orientation.rotation, codec=cc.name)
        return VideoIndex(info=info, pts=pts, keyframes=keyframes, time_base=tb, start_pts=int(pts[0]),
                          seekable=seekable, declared_frames=declared_frames, declared_s=declared_s,
                          truncation=truncation, orientation=orientation, field_order=field_order,
                          interlaced=interlaced)
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


def sample_indices(num_frames: int, cfg: PreprocessConfig, min_frames: int = 0) -> np.ndarray:
    """Frame numbers (int64, sorted, unique) to sample from a video of ``num_frames`` frames.

    Raises ``PreprocessError("too_short")`` when the video has fewer frames than the mode needs:
    linear needs ``num_frames`` distinct frames, clips needs one whole clip. ``min_frames`` > 0
    (short clips, ``detect``): a linear-sampled video with fewer than ``cfg.num_frames`` but at
    least ``min_frames`` frames gives all of them; below, the message names both limits.
    """
    n = min(num_frames, cfg.max_frames) if cfg.max_frames else num_frames
    if n <= 0:
        raise PreprocessError("too_short", "the video has no frames")
    if cfg.sampling == "linear":
        if n < cfg.num_frames and (min_frames <= 0 or n < min_frames):
            least = f"; short clips need at least {min_frames}" if min_frames > 0 else ""
            raise PreprocessError("too_short", f"{n} frames, fewer than the {cfg.num_frames} to sample{least}")
        idx = np.linspace(0, n - 1, min(n, cfg.num_frames)).round().astype(np.int64)
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


_FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


def _field_order(cc: av.video.codeccontext.VideoCodecContext) -> str:
    fo = getattr(cc, "field_order", None)
    if isinstance(fo, int):
        return _FIELD_ORDERS.get(fo, "unknown")
    name = str(getattr(fo, "name", fo) or "unknown").lower()
    return name if name in _FIELD_ORDERS.values() else "unknown"


def _first_frame_facts(stream: av.video.stream.VideoStream,
                       container: av.container.InputContainer) -> tuple[Orientation, bool, str]:
    """(orientation, first frame flagged interlaced, field order), decoding the first frame once."""
    try:
        frame = next(container.decode(stream))
    except (StopIteration, av.error.FFmpegError):
        frame = None
    interlaced = bool(frame is not None and frame.interlaced_frame)
    return _orientation_of(frame, stream), interlaced, _field_order(stream.codec_context)


def deinterlace_field(rgb: np.ndarray, top_first: bool = True) -> np.ndarray:
    """Keep one field of an interlaced uint8 ``(H, W, C)`` frame and interpolate the other's lines.

    The kept field is the top one (rows 0, 2, 4, ...) when ``top_first``, else the bottom one
    (rows 1, 3, ...); each replaced row is the mean of the kept rows above and below it (the edge
    row copies its one neighbour). Returns a new array of the same shape and dtype.
    """
    h = rgb.shape[0]
    if h < 2:
        return rgb.copy()
    keep = 0 if top_first else 1
    out = rgb.copy()
    kept = rgb[keep::2].astype(np.uint16)
    other = np.arange(1 - keep, h, 2)  # rows of the other field
    inner = (other - 1 >= 0) & (other + 1 < h)  # rows between two kept rows (kept[i] = row 2i + keep)
    out[other[inner]] = ((kept[(other[inner] - 1 - keep) // 2] + kept[(other[inner] + 1 - keep) // 2] + 1) // 2
                         ).astype(rgb.dtype)
    for r in other[~inner]:  # an edge row copies its one neighbour
        out[r] = rgb[r - 1 if r - 1 >= 0 else r + 1]
    return out


def _to_rgb(frame: av.VideoFrame, idx: VideoIndex) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    if frame.interlaced_frame:
        rgb = deinterlace_field(rgb, top_first=idx.field_order not in ("bb", "bt"))
    return idx.orientation.apply(rgb)


def _decode_frames(container: av.container.InputContainer,
                   stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """Decode ``stream`` from the current position: each packet decoded once, in file order.

    At a corrupt (partly read) packet, where a cut file's data stops, decoding ends: that
    packet is not sent to the decoder (it would fail and lose the frames still held for
    reordering); the decoder is drained instead, so every frame ``index_video`` indexed comes out.
    """
    for packet in container.demux(stream):
        if packet.is_corrupt:
            yield from stream.codec_context.decode(None)  # drain the frames held for reordering
            return
        yield from packet.decode()  # the final empty packet drains the decoder


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
        stream = _video_stream(container, path)
        if threads:
            stream.codec_context.thread_count = threads
        stream.thread_type = "AUTO"
        w, pos, seq = 0, -1, -1
        frames = None
        shape: tuple[int, ...] | None = None
        while w < wanted.size:
            k = keyframe_before(int(wanted[w]))
            # (re)start decoding at the keyframe before the wanted frame when the gap is worth a seek; a
            # refused seek (damaged index) decodes on instead: from the start when nothing was decoded
            # yet, else forward through the gap (the same frames, only slower)
            jump = frames is None or k - pos - 1 >= max(min_seek_gap, 1)
            if jump and (k <= 0 or _seek(container, int(idx.pts[k]), stream) or frames is None):
                frames = _decode_frames(container, stream)
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
                    rgb = _to_rgb(frame, idx)
                    if shape is None:
                        shape = rgb.shape
                    elif rgb.shape != shape:
                        raise PreprocessError(
                            "decode_error", f"{path}: frame {num} is {rgb.shape[1]}x{rgb.shape[0]}, earlier frames "
                                            f"{shape[1]}x{shape[0]}: the stream changes size (damaged or spliced)")
                    yield num, float(idx.timestamps(np.array([num]))[0]), rgb
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
                codec: str = "libx264", gop: int = 0, reproducible: bool = True) -> int:
    """Encode RGB uint8 (H, W, 3) frames to ``path`` (H.264, yuv420p, ``crf`` like FF++ c23).

    Width and height must be even for yuv420p. ``gop`` > 0 sets the keyframe interval.
    ``reproducible`` (libx264 only): one encoder thread and no B-frames (lookahead and macroblock
    tree stay on), so identical frames give identical bytes on one machine. Measured (2026-12-01,
    320x256, 64 frames, one process, other encodes in between): libx264's default gave 8 different
    files in 8 encodes of the same frames, one thread alone still 3 in 40; one thread without
    B-frames gave one file in 40 encodes, ~20 % larger at the same CRF, and two synthetic datasets
    of 80 videos were byte-identical. Not a guarantee for every input: frames of uniform random
    noise encoded 4 times in one CI run gave 2 different files.
    ``reproducible=False`` keeps x264's default rate control (what a real-world re-encode uses).
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
                if codec == "libx264" and reproducible:
                    opts.update({"threads": "1", "x264-params": "bframes=0"})
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


class FrameStore:
    """Append-only sequence of decoded frames whose RAM use is bounded by ``budget_bytes``.

    Frames are kept in memory while their total size stays within the budget; every later frame
    is appended to an anonymous temporary file (``tempfile.TemporaryFile`` in ``spill_dir``, or
    the system's temporary folder; unlinked at once, so it vanishes even if the process is
    killed) with plain writes, not a memory map, so spilled frames never count towards the
    process's resident memory. :meth:`drain` gives the frames back once, in order, releasing
    each in-memory frame as it goes and reading spilled ones one at a time: at most
    ``budget_bytes`` + one frame are resident at any time. Frames come back bit for bit.

    Disk use: ``H * W * 3`` bytes per spilled frame (about 6.2 MB at 1080p).
    """

    def __init__(self, budget_bytes: int, spill_dir: str | Path | None = None) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self.spill_dir = spill_dir
        self._mem: list[np.ndarray | None] = []
        self._disk: list[tuple[int, ...]] = []  # shapes of the spilled frames, in order
        self._file = None
        self.resident_bytes = 0
        self.peak_resident_bytes = 0
        self.spilled_bytes = 0
        self._drained = False

    def __len__(self) -> int:
        return len(self._mem) + len(self._disk)

    @property
    def num_in_memory(self) -> int:
        return len(self._mem)

    @property
    def num_spilled(self) -> int:
        return len(self._disk)

    def append(self, frame: np.ndarray) -> None:
        """Store one uint8 frame (any shape); it is copied to disk or kept as it is (not copied)."""
        if self._drained:
            raise RuntimeError("FrameStore: append after drain")
        frame = np.ascontiguousarray(frame)
        if frame.dtype != np.uint8:
            raise ValueError(f"FrameStore holds uint8 frames, got {frame.dtype}")
        if not self._disk and self.resident_bytes + frame.nbytes <= self.budget_bytes:
            self._mem.append(frame)
            self.resident_bytes += frame.nbytes
            self.peak_resident_bytes = max(self.peak_resident_bytes, self.resident_bytes)
            return
        where = Path(self.spill_dir or tempfile.gettempdir())
        with guard_disk_full(where, "decoded frames spilled to a temporary file", frame.nbytes):
            if self._file is None:
                # lives as long as the store (closed by close / drain / __exit__)
                self._file = tempfile.TemporaryFile(prefix="forensight-frames-", dir=self.spill_dir)  # noqa: SIM115
            self._file.write(memoryview(frame).cast("B"))
        self._disk.append(frame.shape)
        self.spilled_bytes += frame.nbytes

    def drain(self) -> Iterator[np.ndarray]:
        """Yield every stored frame once, in order, releasing it from the store."""
        if self._drained:
            raise RuntimeError("FrameStore: already drained")
        self._drained = True
        for i, frame in enumerate(self._mem):
            self._mem[i] = None
            self.resident_bytes -= frame.nbytes
            yield frame
            del frame
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            for shape in self._disk:
                n = int(np.prod(shape))
                buf = np.fromfile(self._file, dtype=np.uint8, count=n)
                if buf.size != n:
                    raise OSError(f"FrameStore: the spill file ended early ({buf.size} of {n} bytes)")
                yield buf.reshape(shape)
        self.close()

    def close(self) -> None:
        """Free the memory and delete the spill file (idempotent)."""
        self._mem = []
        self.resident_bytes = 0
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
