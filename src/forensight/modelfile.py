"""The ``model.pt`` file a training run exports: weights + configs + threshold, no code.

It holds only tensors and plain JSON-able values, so it loads with ``torch.load(...,
weights_only=True)``: a tampered or foreign file cannot execute code, and is refused with a
typed error (:class:`ModelFileError` and its subclasses) instead.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from forensight.config import InputSpec, ModelConfig, PreprocessConfig, model_config_from_dict, to_dict
from forensight.io import atomic_write

MODEL_FILE = "model.pt"
FORMAT = "forensight-model-v1"

__all__ = [
    "FORMAT",
    "MODEL_FILE",
    "IncompatibleModelFile",
    "LoadedModel",
    "ModelFileError",
    "ModelFileNotFound",
    "NotAModelFile",
    "UnsafeModelFile",
    "load_model_file",
    "resolve_model_path",
    "save_model_file",
    "update_model_file",
]


class ModelFileError(ValueError):
    """A model file could not be used (base class; the message says why)."""


class ModelFileNotFound(ModelFileError, FileNotFoundError):
    """No model file there (or a run directory without ``model.pt``)."""


class NotAModelFile(ModelFileError):
    """Not a forensight model file: not a PyTorch zip archive, damaged, or another format."""


class UnsafeModelFile(ModelFileError):
    """The file would need code execution to load (a pickled object): refused."""


class IncompatibleModelFile(ModelFileError):
    """A forensight model file whose content does not fit (tampered, or from another version)."""


@dataclass
class LoadedModel:
    """A trained model and what it was trained with.

    ``model`` is the trained module; :meth:`scoring_model` is what every scoring call uses (the
    architecture's fastest equivalent for eval, e.g. LipForensics with BatchNorm folded).
    :meth:`p_fake` turns a logit into the P(fake) every output reports (with the temperature
    stored by ``evaluate --calibrate``, if any); ``threshold`` stays on the logit scale.
    """

    model: nn.Module
    model_config: ModelConfig
    preprocess: PreprocessConfig
    threshold: float
    payload: dict[str, Any]
    path: Path
    _fast: nn.Module | None = field(default=None, repr=False)

    @property
    def preprocess_hash(self) -> str:
        return self.preprocess.hash

    @property
    def input_spec(self) -> InputSpec:
        """What the model reads."""
        return self.model_config.input_spec()

    @property
    def min_face_coverage(self) -> float:
        """The face-coverage minimum the model was trained with (``TrainConfig.min_face_coverage``);
        files written before it existed: 0 (any detection)."""
        return float((self.payload.get("train_config") or {}).get("min_face_coverage", 0.0))

    @property
    def trained_on(self) -> dict[str, Any] | None:
        """The model card (:mod:`forensight.modelcard`): what the model was trained on; None for
        files written before cards existed."""
        card = self.payload.get("trained_on")
        return dict(card) if isinstance(card, dict) else None

    @property
    def temperature(self) -> float | None:
        """The temperature fitted on the validation split (``evaluate --calibrate``), or None:
        P(fake) is then the uncalibrated ``sigmoid(logit)``."""
        t = self.payload.get("temperature")
        return None if t is None else float(t)

    def p_fake(self, logit: Any) -> Any:
        """P(fake) of a logit (float → float, array → array): ``sigmoid(logit / T)`` with the stored
        temperature, ``sigmoid(logit)`` without. Monotone, so ``logit >= threshold`` verdicts hold."""
        from forensight.metrics import apply_temperature

        p = apply_temperature(logit, self.temperature)
        return float(p) if np.ndim(logit) == 0 else p

    @property
    def calibration(self) -> str:
        """One line: whether P(fake) is calibrated, and how (reports and results show it)."""
        t = self.temperature
        if t is None:
            return "uncalibrated: P(fake) = sigmoid(logit)"
        info = self.payload.get("calibration") or {}
        where = info.get("fitted_on", "the validation split")
        return f"calibrated: P(fake) = sigmoid(logit / {t:.4g}), temperature fitted on {where}"

    def store_temperature(self, temperature: float, info: dict[str, Any] | None = None) -> None:
        """Write ``temperature`` (and ``info`` as ``calibration``) into the model file
        (:func:`update_model_file`, atomic) and use it from now on."""
        import math

        t = float(temperature)
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        entries = {"temperature": t, "calibration": dict(info or {})}
        update_model_file(self.path, **entries)
        self.payload.update(json.loads(json.dumps(entries, default=float)))

    def scoring_model(self) -> nn.Module:
        """The eval-only model every scoring call uses (built once, then reused)."""
        if self._fast is None:
            from forensight.models.registry import inference_model

            self._fast = inference_model(self.model, self.model_config)
        return self._fast


def _payload(model: nn.Module, model_cfg: ModelConfig, preprocess: PreprocessConfig, train_cfg: Any,
             threshold: float, val_metrics: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model_config": model_cfg.to_dict(),
        "preprocess": preprocess.to_dict(),
        "preprocess_hash": preprocess.hash,
        "train_config": to_dict(train_cfg) if train_cfg is not None else {},
        "threshold": float(threshold),
        "val_metrics": json.loads(json.dumps(val_metrics, default=float)),
        **(extra or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_model_file(path: str | Path, model: nn.Module, model_cfg: ModelConfig, preprocess: PreprocessConfig,
                    train_cfg: Any, threshold: float, val_metrics: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.pt`` atomically; returns its path. ``extra``: more plain JSON-able entries."""
    payload = _payload(model, model_cfg, preprocess, train_cfg, threshold, val_metrics, extra)
    return atomic_write(Path(path), lambda p: torch.save(payload, p))


def update_model_file(path: str | Path, **entries: Any) -> Path:
    """Rewrite a model file atomically with some top-level entries replaced (e.g. ``threshold``,
    ``val_metrics``); the weights and configs stay as they are."""
    f = resolve_model_path(path)
    payload = _read_payload(f)
    bad = sorted(set(entries) & {"format", "state_dict", "model_config", "preprocess", "preprocess_hash"})
    if bad:
        raise ValueError(f"update_model_file cannot replace {bad}")
    payload.update(json.loads(json.dumps(entries, default=float)))
    return atomic_write(f, lambda p: torch.save(payload, p))


def resolve_model_path(path: str | Path) -> Path:
    """A run directory or a ``model.pt`` file → the model file; :class:`ModelFileNotFound` otherwise."""
    p = Path(path)
    if p.is_dir():
        f = p / MODEL_FILE
        if not f.is_file():
            raise ModelFileNotFound(f"{p} is not a finished training run: {MODEL_FILE} is missing "
                                    "(train with `forensight train`, which writes it at the end)")
        return f
    if not p.is_file():
        raise ModelFileNotFound(f"model not found: {p} (give a run directory or its {MODEL_FILE})")
    return p


def _oneline(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _read_payload(f: Path) -> dict[str, Any]:
    if not zipfile.is_zipfile(f):
        raise NotAModelFile(f"{f} is not a forensight model file: not a PyTorch zip archive (damaged, truncated "
                            "or another kind of file)")
    try:
        payload = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeModelFile(f"refusing to load {f}: it is not a plain-tensor forensight model file and would "
                              f"need code execution to unpickle ({str(e).splitlines()[0]})") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise NotAModelFile(f"cannot read {f}: not a forensight model file or damaged ({_oneline(str(e))})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise NotAModelFile(f"{f} is not a forensight model file (format {fmt!r}, expected {FORMAT!r}); "
                            "for the official LipForensics checkpoint use `forensight train --init`")
    return payload


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a run's model without executing code from the file (``weights_only=True``).

    Raises :class:`ModelFileNotFound`, :class:`NotAModelFile`, :class:`UnsafeModelFile` or
    :class:`IncompatibleModelFile` (all :class:`ModelFileError`, a ValueError) with a message
    saying which.
    """
    from forensight.models.registry import build_model

    f = resolve_model_path(path)
    payload = _read_payload(f)
    try:
        mc = model_config_from_dict(payload["model_config"])
        pp = PreprocessConfig.from_dict(payload["preprocess"])
        threshold = float(payload.get("threshold", 0.0))
        model = build_model(mc, pretrained=False)
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as e:
        detail = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise IncompatibleModelFile(f"{f} is not a usable forensight model file (tampered, damaged or from another "
                                    f"version): {type(e).__name__}: {_oneline(str(detail))}") from e
    if missing or unexpected:
        raise IncompatibleModelFile(f"{f}: weights do not fit the stored model config: missing {list(missing)[:10]}, "
                                    f"unexpected {list(unexpected)[:10]}")
    try:
        mc.input_spec().check_preprocess(pp)
    except ValueError as e:
        raise IncompatibleModelFile(f"{f}: {e}") from e
    t = payload.get("temperature")
    if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < float(t) < float("inf")):
        raise IncompatibleModelFile(f"{f}: stored temperature {t!r} is not a finite number > 0 (tampered?)")
    model.eval().to(device)
    return LoadedModel(model=model, model_config=mc, preprocess=pp, threshold=threshold, payload=payload, path=f)
