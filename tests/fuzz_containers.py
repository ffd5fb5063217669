"""Container fuzzing helpers: small valid MP4 / WebM / MKV files and the damage done to them.

Used by ``tests/test_fuzz_containers.py`` (a fixed small budget in the suite, thousands of
mutations under ``make fuzz``). A mutation is a list of operations on the file's bytes; positions
are fractions of the file's length, so one mutation applies to a file of any size:

- ``("flip", at, bit)``: flip one bit;
- ``("zero", at, length)``: overwrite ``length`` bytes with zeros;
- ``("dup", at, length, to)``: insert a copy of ``length`` bytes at another place;
- ``("swap", at, length, to)``: exchange two chunks of ``length`` bytes (shuffled chunks);
- ``("truncate", at)``: cut the file there (at least one byte is kept);
- ``("header", offset, value)``: set byte ``offset`` (< 512, the container header) to ``value``.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from hypothesis import strategies as st

#: The container kinds fuzzed: file suffix -> (PyAV format, video codec).
CONTAINERS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
    ".mkv": ("matroska", "libx264"),
}

Op = tuple


def encode(path: Path, frames: list[np.ndarray], fps: int = 25, gop: int = 4) -> Path:
    """Encode RGB uint8 ``(H, W, 3)`` frames into ``path`` (container and codec from its suffix,
    see ``CONTAINERS``); a keyframe every ``gop`` frames so that seeking has targets."""
    fmt, codec = CONTAINERS[path.suffix]
    c = av.open(str(path), "w", format=fmt)
    try:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.options = {"g": str(gop), **({"threads": "1"} if codec == "libx264" else {})}
        for rgb in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    finally:
        c.close()
    return path


_frac = st.floats(0.0, 1.0, allow_nan=False)
_length = st.integers(1, 2048)

OPS = st.one_of(
    st.tuples(st.just("flip"), _frac, st.integers(0, 7)),
    st.tuples(st.just("zero"), _frac, _length),
    st.tuples(st.just("dup"), _frac, _length, _frac),
    st.tuples(st.just("swap"), _frac, _length, _frac),
    st.tuples(st.just("truncate"), _frac),
    st.tuples(st.just("header"), st.integers(0, 511), st.integers(0, 255)),
)

#: One mutation: 1 to 6 operations applied in order.
MUTATIONS = st.lists(OPS, min_size=1, max_size=6)


def mutate(data: bytes, ops: list[Op]) -> bytes:
    """Apply the operations ``ops`` (see the module docstring) to ``data``; returns new bytes."""
    b = bytearray(data)
    for op in ops:
        n = len(b)
        if n == 0:
            break
        kind, at = op[0], op[1]
        i = min(int(at * n), n - 1) if isinstance(at, float) else min(int(at), n - 1)
        if kind == "flip":
            b[i] ^= 1 << op[2]
        elif kind == "zero":
            end = min(n, i + op[2])
            b[i:end] = bytes(end - i)
        elif kind == "dup":
            j = min(int(op[3] * n), n)
            b[j:j] = b[i:i + op[2]]
        elif kind == "swap":
            j = min(int(op[3] * n), n - 1)
            a, c = sorted((i, j))
            length = min(op[2], c - a, n - c)
            if length > 0:
                first, second = bytes(b[a:a + length]), bytes(b[c:c + length])
                b[a:a + length], b[c:c + length] = second, first
        elif kind == "truncate":
            del b[max(i, 1):]
        elif kind == "header":
            b[i] = op[2]
        else:
            raise ValueError(f"unknown mutation {kind!r}")
    return bytes(b)
