"""The models a server offers: each ``--model`` loaded once at start to check it and describe it.

:func:`load_models` resolves every path (run directory or ``model.pt``, model folder, published
checkpoint file) with
:func:`forensight.modelfile.resolve_model_path`, loads it with
:func:`forensight.detect.load_detector` (so a missing, foreign or tampered file stops the
server at start with :class:`forensight.modelfile.ModelFileError`, not at the first upload)
and keeps its :meth:`~forensight.detect.ForensightDetector.describe` facts. The loaded
weights are dropped; the worker processes load their own copies.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NO_MODEL_HINT", "ModelEntry", "load_models", "model_id_for"]

NO_MODEL_HINT = ("No model is loaded, so videos cannot be scored yet. Train the demo models with "
                 "`forensight demo` (about 9 minutes on 2 CPU cores), then restart with "
                 "`forensight serve --model forensight_demo/study/runs/mouth_attention_s0` "
                 "(or any run directory or model.pt from `forensight train`).")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelEntry:
    """One offered model: ``id`` (what a client sends as ``model``), its file, and its facts."""

    id: str
    path: Path
    description: dict[str, Any]

    def to_api(self, default: bool) -> dict[str, Any]:
        """The ``GET /api/models`` record."""
        d = self.description
        return {"id": self.id, "default": default, "path": str(self.path), "name": d.get("name"),
                "arch": d.get("arch"), "region": d.get("region"), "pooling": d.get("pooling"),
                "input_size": d.get("input_size"), "val_auc": d.get("val_auc"), "clips": d.get("clips"),
                "preprocess_hash": d.get("preprocess_hash"), "source": d.get("source"),
                "threshold_source": d.get("threshold_source"), "threshold_calibrated": d.get("threshold_calibrated"),
                "warning": d.get("warning")}

    def label(self) -> str:
        """A short human label for the upload page's model choice."""
        d = self.description
        auc = d.get("val_auc")
        auc_s = f", val AUC {auc:.3f}" if isinstance(auc, (int, float)) else ""
        src = d.get("source") or {}
        origin = f", published weights ({src.get('name')}), not trained here" if src.get("kind") == "published" else ""
        thr = "" if d.get("threshold_calibrated", True) else ", UNCALIBRATED threshold"
        return f"{self.id} ({d.get('region')} region, {d.get('pooling')} head{auc_s}{origin}{thr})"


def model_id_for(path: Path, taken: set[str]) -> str:
    """A readable, unique id for a model file: its run or model folder's name (``mouth_attention_s0``)
    for ``model.pt`` / ``config.json``, else the file stem; ``-2``, ``-3``, ... when taken."""
    base = path.parent.name if path.name in ("model.pt", "config.json") and path.parent.name else path.stem
    base = _UNSAFE.sub("-", base).strip(".-") or "model"
    ident, k = base[:60], 2
    while ident in taken:
        ident, k = f"{base[:56]}-{k}", k + 1
    return ident


def load_models(paths: Sequence[str | Path]) -> list[ModelEntry]:
    """Check and describe every model (CPU); raises ``ModelFileError`` naming the bad file."""
    from forensight.detect import load_detector
    from forensight.modelfile import resolve_model_path

    out: list[ModelEntry] = []
    taken: set[str] = set()
    for p in paths:
        f = resolve_model_path(p).resolve()
        det = load_detector(f, device="cpu")
        ident = model_id_for(f, taken)
        taken.add(ident)
        out.append(ModelEntry(id=ident, path=f, description=det.describe()))
        del det
    return out
