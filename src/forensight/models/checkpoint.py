"""Loading LipForensics weights: the official checkpoint and our own saved state_dicts.

Everything is read with ``torch.load(..., weights_only=True)``: a file whose unpickling would run
code is refused, never executed. Keys are checked before anything is copied, and a mismatch is
reported with the offending keys listed.

Accepted file contents:
  * ``{"model": state_dict, ...}`` — the official ``lipforensics_ff.pth`` format (and ours);
  * ``{"state_dict": state_dict, ...}`` — a Lightning checkpoint (use ``prefix`` to strip the
    LightningModule attribute name, e.g. ``prefix="model."``);
  * a raw ``state_dict`` (``{str: Tensor}``).
A ``module.`` prefix on every key (``nn.DataParallel``) is removed.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "OFFICIAL_CHECKPOINT_HELP",
    "CheckpointError",
    "CheckpointMismatchError",
    "LoadReport",
    "UnsafeCheckpointError",
    "extract_state_dict",
    "load_official_lipforensics",
    "load_state_dict_checked",
    "read_checkpoint",
    "save_lipforensics",
]

log = logging.getLogger(__name__)

OFFICIAL_CHECKPOINT_HELP = (
    "Download the official FaceForensics++ checkpoint 'lipforensics_ff.pth' from the LipForensics "
    "repository (https://github.com/ahaliassos/LipForensics; the download link is in its README), "
    "put it somewhere local (for example ./weights/lipforensics_ff.pth) and pass that path "
    "(e.g. `--init weights/lipforensics_ff.pth`). Nothing is downloaded at run time."
)

#: Keys the official checkpoint cannot provide: the attention head's parameters.
ATTENTION_PREFIXES: tuple[str, ...] = ("attention.",)

_LIST_LIMIT = 20


class CheckpointError(ValueError):
    """A checkpoint file cannot be used for this model."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs arbitrary code execution to unpickle; it is refused."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's keys or shapes do not match the model.

    Attributes ``missing``, ``unexpected`` (key lists) and ``mismatched``
    (``[(key, checkpoint_shape, model_shape)]``) hold the full details.
    """

    def __init__(self, message: str, missing: list[str], unexpected: list[str],
                 mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


@dataclass(frozen=True)
class LoadReport:
    """What a successful load did.

    Attributes:
        source: the file (or ``"<state_dict>"``).
        loaded: number of tensors copied into the model.
        missing_allowed: model keys absent from the checkpoint that were allowed to be
            (the attention head when starting from the official checkpoint); they keep their
            initialisation.
    """

    source: str
    loaded: int
    missing_allowed: list[str] = field(default_factory=list)


def _listing(title: str, items: list[str]) -> str:
    shown = items[:_LIST_LIMIT]
    more = f"\n    ... and {len(items) - len(shown)} more" if len(items) > len(shown) else ""
    return f"  {title} ({len(items)}):\n" + "\n".join(f"    {s}" for s in shown) + more


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` a file safely (``weights_only=True``).

    Raises:
        FileNotFoundError: the file does not exist (the message says where to get the official one).
        UnsafeCheckpointError: the file needs code execution to unpickle.
        CheckpointError: the file is not a readable torch checkpoint.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"LipForensics checkpoint not found: '{p}'"
            + (" (it is a directory)" if p.is_dir() else "") + ". " + OFFICIAL_CHECKPOINT_HELP
        )
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "weights only load failed" not in text.lower() or "Unsupported operand" in text:
            # not a pickle torch can read at all (garbage, truncated, unknown opcode)
            detail = re.search(r"Unsupported operand \S+", text)
            raise CheckpointError(f"'{p}' is not a readable torch checkpoint"
                                  f" ({detail.group(0) if detail else text.splitlines()[0]})") from err
        match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        culprit = f" (it pickles {match.group(1)})" if match else ""
        raise UnsafeCheckpointError(
            f"refusing to load '{p}': file needs code execution to unpickle{culprit}; only tensors and "
            f"plain containers are accepted (torch.load weights_only=True). Re-save it from a trusted "
            f"environment as a plain state_dict: torch.save({{'model': model.state_dict()}}, path)."
        ) from err
    except Exception as err:  # zip/legacy readers raise many types on corrupt files
        raise CheckpointError(f"'{p}' is not a readable torch checkpoint: {type(err).__name__}: {err}") from err


def extract_state_dict(obj: Any, prefix: str | None = None) -> dict[str, Tensor]:
    """Pull the state_dict out of a loaded checkpoint object (see module docstring).

    ``prefix``: if given, only keys starting with it are kept, with it removed.
    """
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        sd = obj["model"]
    elif isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        sd = obj["state_dict"]
    elif isinstance(obj, Mapping):
        sd = obj
    else:
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, expected a state_dict or a dict "
                              f"with a 'model' state_dict")
    bad = [str(k) for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError("checkpoint is not a state_dict: non-tensor entries\n" + _listing("entries", bad))
    out = dict(sd)
    if prefix:
        out = {k[len(prefix):]: v for k, v in out.items() if k.startswith(prefix)}
        if not out:
            raise CheckpointError(f"no checkpoint key starts with prefix {prefix!r}")
    if out and all(k.startswith("module.") for k in out):
        out = {k[len("module."):]: v for k, v in out.items()}
    return out


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, Tensor],
    allowed_missing_prefixes: Iterable[str] = (),
    source: str = "<state_dict>",
) -> LoadReport:
    """Copy ``state_dict`` into ``model`` after checking keys and shapes.

    Strict except that model keys starting with one of ``allowed_missing_prefixes`` may be absent.

    Raises:
        CheckpointMismatchError: missing (not allowed), unexpected or wrongly shaped keys,
            listed (first 20 of each, with counts).
    """
    allowed = tuple(allowed_missing_prefixes)
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    missing_bad = [k for k in missing if not k.startswith(allowed)] if allowed else missing
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if missing_bad or unexpected or mismatched:
        header = (f"checkpoint {source} does not match {type(model).__name__}"
                  f" ({len(missing_bad)} missing, {len(unexpected)} unexpected, "
                  f"{len(mismatched)} shape mismatches; the model has {len(own)} keys, "
                  f"the checkpoint {len(state_dict)}):")
        parts = [header]
        if missing_bad:
            parts.append(_listing("missing from checkpoint", missing_bad))
        if unexpected:
            parts.append(_listing("unexpected in checkpoint", unexpected))
        if mismatched:
            parts.append(_listing("shape mismatch (checkpoint vs model)",
                                  [f"{k}: {c} vs {m}" for k, c, m in mismatched]))
        raise CheckpointMismatchError("\n".join(parts), missing_bad, unexpected, mismatched)
    model.load_state_dict(state_dict, strict=False)
    allowed_missing = [k for k in missing if k not in missing_bad]
    if allowed_missing:
        log.info("%s: %d keys not in the checkpoint keep their initialisation: %s",
                 source, len(allowed_missing), ", ".join(allowed_missing))
    return LoadReport(source=source, loaded=len(state_dict), missing_allowed=allowed_missing)


def load_official_lipforensics(
    model: nn.Module,
    path: str | Path,
    map_location: str | torch.device = "cpu",
    prefix: str | None = None,
) -> LoadReport:
    """Load the official LipForensics checkpoint (or one of ours) into a ``LipForensics`` model.

    Strict; the only keys allowed to be missing are the attention head's (``attention.*``),
    which the official model does not have. Returns a :class:`LoadReport` listing them.

    Raises:
        FileNotFoundError, UnsafeCheckpointError, CheckpointError, CheckpointMismatchError.
    """
    obj = read_checkpoint(path, map_location=map_location)
    sd = extract_state_dict(obj, prefix=prefix)
    return load_state_dict_checked(model, sd, allowed_missing_prefixes=ATTENTION_PREFIXES, source=f"'{path}'")


def save_lipforensics(model: nn.Module, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Save ``{"model": state_dict, **extra}`` (the official layout; ``weights_only``-loadable).

    ``extra`` must hold only plain data (str, int, float, bool, None, lists/dicts of them, tensors).
    """
    if extra and "model" in extra:
        raise ValueError("'model' is reserved for the state_dict")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    torch.save({"model": model.state_dict(), **(extra or {})}, tmp)
    tmp.replace(p)
    return p
