"""Shared fixtures: small generated videos (a real face from scikit-image, no face, bad files)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TORCH_HOME", os.path.join(os.path.dirname(__file__), ".torch-home-empty"))

from pathlib import Path

import cv2
import numpy as np
import pytest

from forensight.video import write_video


def moving_face_frames(n: int = 40, size: tuple[int, int] = (320, 256), seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames (H=size[1], W=size[0]) of the astronaut's face with slow camera motion."""
    from skimage.data import astronaut

    img = astronaut()  # 512x512 RGB, one real face
    w, h = size
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi)
    frames = []
    for i in range(n):
        s = 0.62 + 0.02 * np.sin(i / 7 + phase)
        tx = -40 + 6 * np.sin(i / 9 + phase)
        ty = -10 + 4 * np.cos(i / 11)
        m = np.array([[s, 0, tx], [0, s, ty]], np.float32)
        frames.append(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 320x256 H.264 video of a real face, 25 fps."""
    path = tmp_path_factory.mktemp("videos") / "face.mp4"
    write_video(path, moving_face_frames(40), fps=25)
    return path


@pytest.fixture(scope="session")
def noface_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame video of smooth colour gradients: no face anywhere."""
    path = tmp_path_factory.mktemp("videos") / "noface.mp4"
    yy, xx = np.mgrid[0:128, 0:160]
    frames = [np.stack([(xx + i) % 256, (yy * 2) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
              for i in range(40)]
    write_video(path, frames, fps=25)
    return path


@pytest.fixture(scope="session")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-frame face video (too short for 32-frame sampling or a 25-frame clip)."""
    path = tmp_path_factory.mktemp("videos") / "short.mp4"
    write_video(path, moving_face_frames(5), fps=25)
    return path


@pytest.fixture()
def bad_files(tmp_path: Path, face_video: Path) -> dict[str, Path]:
    """Broken inputs: empty, text, truncated, audio-only, a directory, a missing path."""
    d = tmp_path / "bad"
    d.mkdir()
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    text = d / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    data = face_video.read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    audio = d / "audio_only.wav"
    _write_wav(audio)
    folder = d / "folder.mp4"
    folder.mkdir()
    return {"empty_file": empty, "unreadable": text, "truncated": truncated, "no_video_stream": audio,
            "directory": folder, "not_found": d / "missing.mp4"}


def _write_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> None:
    import wave

    t = np.arange(int(seconds * rate)) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def require_chromium() -> str:
    """Path of Debian's ``chromium`` for the browser tests. ``.ci/run`` installs it, so in CI a missing
    browser fails the test; elsewhere the test is skipped with the install command."""
    import shutil

    path = shutil.which("chromium")
    if path is None:
        msg = "chromium is not installed: apt-get install chromium (Debian) to run the browser test"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path
