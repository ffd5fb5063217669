"""The vocabulary of test-time perturbations: type names and codes, levels, the spec string.

Pure data and parsing (standard library only), below :mod:`forensight.config`, which validates a
``PreprocessConfig.perturbation`` / ``RobustnessConfig.types`` with it, and below
:mod:`forensight.perturbations`, which attaches a frame operation and the level parameters to each
type. Keeping it here lets the configs check their fields without importing the pipeline
(numpy, OpenCV, the video reader).

A spec string is ``type:level`` or ``type:level:seed=N``; its canonical form is
``type:level:seed=N`` with the canonical type name (:func:`canonical_spec`).
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["CODES", "LEVELS", "MIXED", "REFERENCE_TYPES", "canonical_spec", "check_level", "resolve_type",
           "split_spec"]

#: Severity levels of every type.
LEVELS = (1, 2, 3, 4, 5)
#: The chain of 2-4 reference types drawn per video.
MIXED = "mixed"
#: Every type's canonical name -> its code, in table order: DeeperForensics-1.0's seven codes
#: (CS, CC, BW, GNC, GB, JPEG, VC), then ours (MIX, XJPEG, XRES).
CODES: dict[str, str] = {
    "saturation": "CS", "contrast": "CC", "block": "BW", "noise": "GNC", "blur": "GB",
    "pixelation": "JPEG", "compression": "VC", MIXED: "MIX", "ext_jpeg": "XJPEG", "ext_rescale": "XRES",
}
#: The seven types of DeeperForensics-1.0, in its order (the robustness table's columns).
REFERENCE_TYPES = ("saturation", "contrast", "block", "noise", "blur", "pixelation", "compression")
_BY_CODE = {code: name for name, code in CODES.items()}


def resolve_type(name: str) -> str:
    """Canonical type name of ``name`` (a canonical name, any case, or an exact code: CS, CC, BW,
    GNC, GB, JPEG, VC, MIX, XJPEG, XRES); ValueError naming the choices otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"perturbation type must be a string, got {name!r}")
    text = name.strip()
    if text in _BY_CODE:
        return _BY_CODE[text]
    if text.lower() in CODES:
        return text.lower()
    hint = ""
    if text.lower() == "jpeg":
        hint = (" (DeeperForensics' 'JPEG' is a pixelation: write JPEG or pixelation; real JPEG "
                "re-encoding is the extension ext_jpeg)")
    choices = ", ".join(f"{n} ({c})" for n, c in CODES.items())
    raise ValueError(f"unknown perturbation type {name!r}{hint}; choose from {choices}")


def check_level(level: Any) -> int:
    """``level`` as an int in 1-5 (a Python or numpy integer, not a bool); ValueError otherwise."""
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or int(level) not in LEVELS:
        raise ValueError(f"perturbation level must be an integer in {LEVELS[0]}-{LEVELS[-1]}, got {level!r}")
    return int(level)


def split_spec(spec: str) -> tuple[str, int, int]:
    """``(type, level, seed)`` as written in ``spec`` (``type:level`` or ``type:level:seed=N``; seed
    0 when absent); ValueError for any other shape. Type and level are not checked here."""
    parts = str(spec).strip().split(":")
    if len(parts) not in (2, 3) or not parts[1].strip().isdigit():
        raise ValueError(f"perturbation spec must look like 'type:level[:seed=N]', got {spec!r}")
    seed = 0
    if len(parts) == 3:
        key, _, val = parts[2].partition("=")
        if key.strip() != "seed" or not val.strip().isdigit():
            raise ValueError(f"perturbation spec must look like 'type:level[:seed=N]', got {spec!r}")
        seed = int(val)
    return parts[0], int(parts[1]), seed


def canonical_spec(spec: str) -> str:
    """The canonical form ``type:level:seed=N`` of ``spec`` (type resolved, level checked);
    ValueError for a bad spec, an unknown type or a level outside 1-5."""
    name, level, seed = split_spec(spec)
    return f"{resolve_type(name)}:{check_level(level)}:seed={seed}"
