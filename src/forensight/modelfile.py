"""Where a model comes from, and how it travels: three sources, one :class:`LoadedModel`.

* **Run** (``model.pt``, what ``forensight train`` exports): weights + configs + threshold as
  plain tensors and JSON-able values, read with ``torch.load(..., weights_only=True)``.
* **Model folder** (portable, the convention of model hubs; :func:`save_model_folder`,
  :func:`load_model_folder`): ``model.safetensors`` (weights), ``config.json`` (architecture,
  input spec, preprocessing config, threshold and how it was set, temperature, model card,
  validation metrics) and ``README.md`` (the card as a page, :func:`forensight.modelcard.card_markdown`).
  Loading reads JSON and safetensors only; a pickled weights file is refused.
* **Published checkpoint** (:func:`import_published`): a file in its authors' format (the official
  ``lipforensics_ff.pth``), checked key by key and given the authors' preprocessing, a model card
  (:mod:`forensight.models.published`), its SHA-256 and the documented, uncalibrated threshold.

:func:`load_model_file` takes any of them (a run directory or ``model.pt``, a model folder or its
``config.json``, a published checkpoint file) and never executes code from it: a tampered or
foreign file is refused with a typed error (:class:`ModelFileError` and its subclasses).
"""

from __future__ import annotations

import hashlib
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
FOLDER_FORMAT = "forensight-folder-v1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
#: How a run's threshold was set (files without ``threshold_info``).
RUN_THRESHOLD = {"source": "validation", "calibrated": True,
                 "text": "chosen on the validation split when the model was trained"}

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "FOLDER_FORMAT",
    "FORMAT",
    "MODEL_FILE",
    "WEIGHTS_FILE",
    "IncompatibleModelFile",
    "LoadedModel",
    "ModelFileError",
    "ModelFileNotFound",
    "NotAModelFile",
    "UnsafeModelFile",
    "export_model",
    "file_sha256",
    "import_published",
    "load_model_file",
    "load_model_folder",
    "resolve_model_path",
    "save_model_file",
    "save_model_folder",
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
    kind: str = "run"  #: "run" (model.pt), "folder" (portable model folder) or "imported" (published file)
    _fast: nn.Module | None = field(default=None, repr=False)

    @property
    def threshold_info(self) -> dict[str, Any]:
        """How the threshold was set: ``source`` ("validation", "published", "calibration"),
        ``calibrated`` (False: a documented default, not fitted on data like the user's) and ``text``."""
        info = self.payload.get("threshold_info")
        return dict(info) if isinstance(info, dict) else dict(RUN_THRESHOLD)

    @property
    def threshold_source(self) -> str:
        """One line on where the threshold comes from (tables, reports, JSON)."""
        info = self.threshold_info
        text = str(info.get("text", ""))
        return text if info.get("calibrated", True) else f"UNCALIBRATED: {text}"

    @property
    def source(self) -> dict[str, Any] | None:
        """Where the weights come from when not trained here (``{"kind": "published", "name",
        "file", "sha256"}``), else None."""
        src = self.payload.get("source")
        return dict(src) if isinstance(src, dict) else None

    def config_document(self) -> dict[str, Any]:
        """Everything but the weights, as the ``config.json`` of a model folder (JSON types)."""
        doc = {k: v for k, v in self.payload.items() if k not in ("state_dict", "format", "weights",
                                                                 "weights_sha256")}
        doc.update({"model_config": self.model_config.to_dict(), "input_spec": to_dict(self.input_spec),
                    "preprocess": self.preprocess.to_dict(), "preprocess_hash": self.preprocess.hash,
                    "threshold": float(self.threshold), "threshold_info": self.threshold_info})
        return json.loads(json.dumps(doc, default=float))

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

        self.check_writable()
        t = float(temperature)
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        entries = {"temperature": t, "calibration": dict(info or {})}
        update_model_file(self.path, **entries)
        self.payload.update(json.loads(json.dumps(entries, default=float)))

    def check_writable(self) -> None:
        """Raise :class:`ModelFileError` unless this is a run's ``model.pt`` (the only kind changed in
        place): model folders and imported checkpoints are never modified."""
        if self.kind != "run":
            what = "a model folder" if self.kind == "folder" else "an imported published checkpoint"
            raise ModelFileError(f"{self.path} is {what}: it is never modified in place; fit the temperature and "
                                 "threshold into a new folder with `forensight calibrate --model M --cache C --out NEW`")

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
    """A run directory, a model folder or a model file → the file to read: ``model.pt``,
    ``config.json`` (model folders), or the file itself (a ``model.pt`` or a published checkpoint).
    :class:`ModelFileNotFound` otherwise."""
    p = Path(path)
    if p.is_dir():
        f = p / MODEL_FILE
        if not f.is_file() and (p / CONFIG_FILE).is_file():
            return p / CONFIG_FILE  # a model folder (a run's model.pt wins where both exist)
        if not f.is_file():
            raise ModelFileNotFound(f"{p} is neither a finished training run ({MODEL_FILE} is missing: train with "
                                    f"`forensight train`, which writes it at the end) nor a model folder "
                                    f"({CONFIG_FILE} + {WEIGHTS_FILE}, from `forensight export` or `forensight import`)")
        return f
    if not p.is_file():
        from forensight.models.published import PUBLISHED

        hint = next((f" It is the published checkpoint {e.name}: download it by hand from {e.url}."
                     for e in PUBLISHED.values() if e.file == p.name), "")
        raise ModelFileNotFound(f"model not found: {p} (give a run directory or its {MODEL_FILE}, a model folder, "
                                f"or a published checkpoint file; `forensight models --published` lists those).{hint}")
    return p


def _oneline(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _read_payload(f: Path, foreign_ok: bool = False) -> dict[str, Any]:
    """``torch.load`` a model file safely. ``foreign_ok``: a plain state_dict container (a published
    checkpoint's format) is returned as it is instead of refused."""
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
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return payload
    if foreign_ok and _is_state_dict_container(payload):
        return payload
    fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    raise NotAModelFile(f"{f} is not a forensight model file (format {fmt!r}, expected {FORMAT!r}) nor a "
                        "published checkpoint's state_dict (see `forensight models --published`)")


def _is_legacy_torch_file(f: Path) -> bool:
    """True for a file in torch's pre-1.6 (non-zip) ``torch.save`` format (its magic-number header)."""
    with open(f, "rb") as fh:
        return fh.read(4) == b"\x80\x02\x8a\x0a"


def _is_state_dict_container(obj: Any) -> bool:
    """``{"model": {str: Tensor}}``, ``{"state_dict": {...}}`` or ``{str: Tensor}`` (non-empty)."""
    if not isinstance(obj, dict) or not obj:
        return False
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            return _is_state_dict_container(obj[key])
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _finish(model: nn.Module, mc: ModelConfig, pp: PreprocessConfig, payload: dict[str, Any], path: Path,
            kind: str, device: str | torch.device) -> LoadedModel:
    """Checks shared by every source (input spec vs preprocessing, temperature), then eval mode."""
    try:
        mc.input_spec().check_preprocess(pp)
    except ValueError as e:
        raise IncompatibleModelFile(f"{path}: {e}") from e
    t = payload.get("temperature")
    if t is not None and not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < float(t) < float("inf")):
        raise IncompatibleModelFile(f"{path}: stored temperature {t!r} is not a finite number > 0 (tampered?)")
    thr = payload.get("threshold", 0.0)
    if not (isinstance(thr, (int, float)) and not isinstance(thr, bool) and np.isfinite(thr)):
        raise IncompatibleModelFile(f"{path}: stored threshold {thr!r} is not a finite number (tampered?)")
    model.eval().to(device)
    return LoadedModel(model=model, model_config=mc, preprocess=pp, threshold=float(thr), payload=payload,
                       path=path, kind=kind)


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load any model without executing code from it: a run (directory or ``model.pt``, read with
    ``weights_only=True``), a model folder (or its ``config.json``; :func:`load_model_folder`) or
    a published checkpoint file (imported in memory; :func:`import_published`).

    Raises :class:`ModelFileNotFound`, :class:`NotAModelFile`, :class:`UnsafeModelFile` or
    :class:`IncompatibleModelFile` (all :class:`ModelFileError`, a ValueError) with a message
    saying which.
    """
    from forensight.models.registry import build_model

    f = resolve_model_path(path)
    if f.name == CONFIG_FILE or f.suffix == ".safetensors":
        return load_model_folder(f.parent, device=device)
    if _is_legacy_torch_file(f):  # pre-1.6 torch.save format: only published checkpoints use it
        return import_published(f, device=device)
    payload = _read_payload(f, foreign_ok=True)
    if payload.get("format") != FORMAT:
        return import_published(f, device=device, checkpoint=payload)
    try:
        mc = model_config_from_dict(payload["model_config"])
        pp = PreprocessConfig.from_dict(payload["preprocess"])
        model = build_model(mc, pretrained=False)
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as e:
        detail = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise IncompatibleModelFile(f"{f} is not a usable forensight model file (tampered, damaged or from another "
                                    f"version): {type(e).__name__}: {_oneline(str(detail))}") from e
    if missing or unexpected:
        raise IncompatibleModelFile(f"{f}: weights do not fit the stored model config: missing {list(missing)[:10]}, "
                                    f"unexpected {list(unexpected)[:10]}")
    return _finish(model, mc, pp, payload, f, "run", device)


# ---- portable model folders ------------------------------------------------------------------------

def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (read in ``chunk``-byte pieces)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_model_folder(model: LoadedModel, out: str | Path, **changes: Any) -> Path:
    """Write ``model`` as a portable folder ``out`` (created atomically; never overwritten):
    ``model.safetensors`` (the trained module's state_dict), ``config.json``
    (:meth:`LoadedModel.config_document` with ``changes`` applied, e.g. ``threshold``,
    ``threshold_info``, ``temperature``, ``calibration``, ``trained_on``; plus the weights' file
    name and SHA-256) and ``README.md`` (:func:`forensight.modelcard.card_markdown`). Returns ``out``.
    FileExistsError when ``out`` exists and is not empty.
    """
    from safetensors.torch import save_file

    from forensight.io import atomic_write_dir
    from forensight.modelcard import card_markdown

    doc = model.config_document()
    doc.update(json.loads(json.dumps(changes, default=float)))
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.model.state_dict().items()}

    def write(tmp: Path) -> None:
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FOLDER_FORMAT})
        (tmp / WEIGHTS_FILE).chmod(0o644)  # shared like the JSON beside it (safetensors writes 0o600)
        config = {"format": FOLDER_FORMAT, "weights": WEIGHTS_FILE, "weights_sha256": file_sha256(tmp / WEIGHTS_FILE),
                  **doc}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, allow_nan=False) + "\n")
        (tmp / CARD_FILE).write_text(card_markdown(config))

    return atomic_write_dir(out, write)


def load_model_folder(folder: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a portable model folder (:func:`save_model_folder`): JSON and safetensors only.

    Refused (:class:`ModelFileError` subclasses): a missing or foreign ``config.json``, weights
    that are not a safetensors file (a pickled ``.pt`` / ``.bin`` is :class:`UnsafeModelFile`),
    weights whose SHA-256 differs from the one recorded, keys or shapes that do not fit the
    architecture (listed).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from forensight.models.checkpoint import CheckpointMismatchError, load_state_dict_checked
    from forensight.models.registry import build_model

    d = Path(folder)
    cfg_path = d / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelFileNotFound(f"{d} is not a model folder: {CONFIG_FILE} is missing")
    try:
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NotAModelFile(f"{cfg_path} is not readable JSON ({_oneline(str(e))})") from e
    if not isinstance(doc, dict) or doc.get("format") != FOLDER_FORMAT:
        fmt = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise NotAModelFile(f"{cfg_path} is not a forensight model folder's config (format {fmt!r}, expected "
                            f"{FOLDER_FORMAT!r})")
    name = doc.get("weights", WEIGHTS_FILE)
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        raise UnsafeModelFile(f"refusing {cfg_path}: weights {name!r} must be a .safetensors file inside the folder "
                              "(pickled weights would need code execution to load)")
    wpath = d / name
    if not wpath.is_file():
        raise ModelFileNotFound(f"{d}: the weights file {name} is missing")
    with open(wpath, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise UnsafeModelFile(f"refusing to load {wpath}: it is a pickled (torch.save) file, not safetensors; "
                              "loading it would need code execution")
    want = doc.get("weights_sha256")
    if want is not None and file_sha256(wpath) != want:
        raise IncompatibleModelFile(f"{wpath}: SHA-256 differs from the one in {CONFIG_FILE} (changed or damaged "
                                    "after export)")
    try:
        state = load_file(str(wpath))
        mc = model_config_from_dict(doc["model_config"])
        pp = PreprocessConfig.from_dict(doc["preprocess"])
        model = build_model(mc, pretrained=False)
        load_state_dict_checked(model, state, source=f"'{wpath}'")
    except CheckpointMismatchError as e:
        raise IncompatibleModelFile(f"{d}: the weights do not fit the model in {CONFIG_FILE}: {e}") from e
    except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError, AttributeError, OSError) as e:
        detail = e.args[0] if isinstance(e, KeyError) and e.args else e
        raise IncompatibleModelFile(f"{d} is not a usable model folder (tampered, damaged or from another "
                                    f"version): {type(e).__name__}: {_oneline(str(detail))}") from e
    return _finish(model, mc, pp, doc, d, "folder", device)


def export_model(model: str | Path | LoadedModel, out: str | Path) -> Path:
    """Write any model (a run, a model folder, a published checkpoint file, or loaded) as a
    portable folder ``out`` (:func:`save_model_folder`); returns ``out``."""
    lm = model if isinstance(model, LoadedModel) else load_model_file(model)
    return save_model_folder(lm, out)


# ---- published checkpoints -----------------------------------------------------------------------

def import_published(path: str | Path, name: str = "lipforensics_ff", device: str | torch.device = "cpu",
                     out: str | Path | None = None, checkpoint: Any = None) -> LoadedModel:
    """A published checkpoint file (``name`` in :data:`forensight.models.published.PUBLISHED`) as a
    ready model: the authors' weights checked key by key and shape by shape against the
    architecture (strict, listed on mismatch), the authors' preprocessing preset, the documented
    threshold marked uncalibrated, a model card (source, paper, citation, reported numbers, "not
    trained by this installation") and the file's SHA-256.

    ``out``: also write it as a model folder there (:func:`save_model_folder`; the returned model
    then points at it). ``checkpoint``: the file's content when already read safely.
    Nothing is downloaded; a missing file's error says where its authors distribute it.
    """
    import dataclasses

    from forensight.config import PREPROCESS_PRESETS, get_model_config
    from forensight.models.checkpoint import (
        CheckpointError,
        CheckpointMismatchError,
        UnsafeCheckpointError,
        extract_state_dict,
        load_state_dict_checked,
        read_checkpoint,
    )
    from forensight.models.published import get_published, published_card
    from forensight.models.registry import build_model

    entry = get_published(name)
    p = Path(path)
    if not p.is_file():
        raise ModelFileNotFound(f"published checkpoint not found: {p}{' (a folder)' if p.is_dir() else ''}. "
                                f"{entry.file} is not shipped or downloaded by Forensight: download it by hand from "
                                f"{entry.url}, check its SHA-256, and pass its path")
    try:
        obj = checkpoint if checkpoint is not None else read_checkpoint(p)
        state = extract_state_dict(obj)
        mc = dataclasses.replace(get_model_config(entry.preset), name=entry.name, weights=None)
        model = build_model(mc, pretrained=False)
        load_state_dict_checked(model, state, source=f"'{p}'")
    except UnsafeCheckpointError as e:
        raise UnsafeModelFile(str(e)) from e
    except CheckpointMismatchError as e:
        raise IncompatibleModelFile(f"{p} is not a forensight model file, and it does not fit the published "
                                    f"{entry.name} ({entry.file}) format: {e}") from e
    except CheckpointError as e:
        raise NotAModelFile(f"{p} is not a forensight model file nor a published checkpoint: {e}") from e
    sha = file_sha256(p)
    if entry.sha256 and sha != entry.sha256:
        raise IncompatibleModelFile(f"{p}: SHA-256 {sha} differs from the published {entry.file}'s {entry.sha256} "
                                    "(a different or damaged file)")
    pp = PREPROCESS_PRESETS[entry.preprocess_preset]
    payload: dict[str, Any] = {
        "model_config": mc.to_dict(), "preprocess": pp.to_dict(), "preprocess_hash": pp.hash, "train_config": {},
        "threshold": float(entry.threshold),
        "threshold_info": {"source": "published", "calibrated": False, "text": entry.threshold_note},
        "val_metrics": {}, "trained_on": published_card(entry, sha256=sha, file=p.name),
        "source": {"kind": "published", "name": entry.name, "file": p.name, "sha256": sha},
        "evaluate_options": dict(entry.evaluate_options)}
    lm = _finish(model, mc, pp, payload, p, "imported", device)
    if out is not None:
        folder = save_model_folder(lm, out)
        lm = dataclasses.replace(lm, path=folder, kind="folder", payload=json.loads((folder / CONFIG_FILE).read_text()))
    return lm
