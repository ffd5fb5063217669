"""The ``model.pt`` file a training run exports: weights + configs + threshold, no code.

It holds only tensors and plain JSON-able values, so it loads with ``torch.load(...,
weights_only=True)``: a tampered or foreign file cannot execute code, and is refused with a
clear message instead.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forensight.config import PreprocessConfig, to_dict

MODEL_FILE = "model.pt"
FORMAT = "forensight-model-v1"


@dataclass
class LoadedModel:
    """A model ready for inference and what it was trained with.

    ``model`` is the trained module; ``inference_model()`` gives the fastest equivalent for eval
    (LipForensics: BatchNorm folded into convolutions, outputs equal within 1e-6).
    """

    model: nn.Module
    model_config: Any
    preprocess: PreprocessConfig
    threshold: float
    payload: dict[str, Any]
    path: Path
    _fast: nn.Module | None = None

    @property
    def preprocess_hash(self) -> str:
        return self.preprocess.hash

    def inference_model(self) -> nn.Module:
        """An eval-only model with the same outputs, optimised where the architecture allows."""
        if self.model_config.arch == "lipforensics":
            from forensight.models.lipforensics import optimize_for_inference

            if self._fast is None:
                self._fast = optimize_for_inference(self.model)
            return self._fast
        return self.model


def save_model_file(path: str | Path, model: nn.Module, model_cfg: Any, preprocess: PreprocessConfig,
                    train_cfg: Any, threshold: float, val_metrics: dict[str, Any]) -> Path:
    """Write ``model.pt`` atomically; returns its path."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "model_config": model_cfg.to_dict(),
        "preprocess": preprocess.to_dict(),
        "preprocess_hash": preprocess.hash,
        "train_config": to_dict(train_cfg) if train_cfg is not None else {},
        "threshold": float(threshold),
        "val_metrics": json.loads(json.dumps(val_metrics, default=float)),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def resolve_model_path(path: str | Path) -> Path:
    """A run directory or a ``model.pt`` file → the model file; clear errors otherwise."""
    p = Path(path)
    if p.is_dir():
        f = p / MODEL_FILE
        if not f.is_file():
            raise FileNotFoundError(f"{p} is not a finished training run: {MODEL_FILE} is missing "
                                    "(train with `forensight train`, which writes it at the end)")
        return f
    if not p.is_file():
        raise FileNotFoundError(f"model not found: {p} (give a run directory or its {MODEL_FILE})")
    return p


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a run's model without executing code from the file (``weights_only=True``)."""
    from forensight.models.registry import ModelConfig, build_from_config

    f = resolve_model_path(path)
    if not zipfile.is_zipfile(f):
        raise ValueError(f"{f} is not a forensight model file: not a PyTorch zip archive (damaged, or another "
                         "kind of file)")
    try:
        payload = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"refusing to load {f}: it is not a plain-tensor forensight model file and would "
                         f"need code execution to unpickle ({str(e).splitlines()[0]})") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"cannot read {f}: not a forensight model file or damaged ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{f} is not a forensight model file (format {fmt!r}, expected {FORMAT!r}); "
                         "for the official LipForensics checkpoint use `forensight train --init`")
    mc = ModelConfig.from_dict(payload["model_config"])
    model = build_from_config(mc, pretrained=False)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise ValueError(f"{f}: weights do not fit the stored model config: missing {list(missing)[:10]}, "
                         f"unexpected {list(unexpected)[:10]}")
    model.eval().to(device)
    return LoadedModel(model=model, model_config=mc, preprocess=PreprocessConfig.from_dict(payload["preprocess"]),
                       threshold=float(payload.get("threshold", 0.0)), payload=payload, path=f)
