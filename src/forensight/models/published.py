"""Published checkpoints Forensight knows how to run (torch-free catalogue; nothing downloads).

Each :class:`PublishedCheckpoint` says what the file is (paper, citation, where its authors
distribute it, its SHA-256 when it has been verified), what it expects (the model preset and the
preprocessing preset that reproduce the authors' input) and what it is documented to do (the
paper's reported numbers). :func:`forensight.modelfile.import_published` turns such a file into a
ready detector with a model card built from this entry (:func:`published_card`).

The SHA-256 is recorded only when it has been checked against the authors' file; otherwise it is
``None`` and shown as "unknown", and the import records the hash of the file the user has so
they can compare it with others.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PUBLISHED", "PublishedCheckpoint", "format_published", "get_published", "published_card"]


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One published checkpoint.

    Attributes:
        name: catalogue name (``lipforensics_ff``), also the imported model's name.
        file: the file name the authors use.
        title: one-line description.
        paper: short paper reference; ``citation``: the full citation.
        url: where the authors distribute it (a page to read; nothing is fetched from it).
        sha256: the authors' file's SHA-256 when verified, else None ("unknown").
        preset: the model preset whose ``state_dict`` the file holds (official key layout).
        preprocess_preset: the preprocessing preset that reproduces the authors' input.
        expects: what the model reads, in words.
        trained_on: datasets / methods / compression the authors trained on, in words and data.
        reported: metric name → value as reported in the paper (percent).
        reported_note: what the reported numbers are (metric, protocol, where in the paper).
        threshold: the documented decision threshold (a logit) and ``threshold_note`` its meaning.
        evaluate_options: :class:`forensight.config.EvaluateConfig` options of the authors'
            test protocol (e.g. ``max_frames=110`` on FaceForensics++).
    """

    name: str
    file: str
    title: str
    paper: str
    citation: str
    url: str
    sha256: str | None
    preset: str
    preprocess_preset: str
    expects: str
    trained_on: dict[str, Any]
    reported: dict[str, float]
    reported_note: str
    threshold: float = 0.0
    threshold_note: str = ""
    evaluate_options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain data for listings (``forensight models --published``)."""
        return {"name": self.name, "file": self.file, "title": self.title, "paper": self.paper,
                "citation": self.citation, "url": self.url, "sha256": self.sha256 or "unknown",
                "expects": self.expects, "preset": self.preset, "preprocess_preset": self.preprocess_preset,
                "trained_on": dict(self.trained_on), "reported": dict(self.reported),
                "reported_note": self.reported_note, "threshold": self.threshold,
                "threshold_note": self.threshold_note, "evaluate_options": dict(self.evaluate_options)}


LIPFORENSICS_FF = PublishedCheckpoint(
    name="lipforensics_ff",
    file="lipforensics_ff.pth",
    title="LipForensics, FaceForensics++ checkpoint (ResNet-18 3D stem + MS-TCN on mouth clips)",
    paper="Haliassos et al., CVPR 2021, \"Lips Don't Lie\"",
    citation=("A. Haliassos, K. Vougioukas, S. Petridis, M. Pantic. Lips Don't Lie: A Generalisable and "
              "Robust Approach to Face Forgery Detection. IEEE/CVF Conference on Computer Vision and Pattern "
              "Recognition (CVPR), 2021."),
    url=("https://github.com/ahaliassos/LipForensics (the README's pretrained-model link; download it by hand, "
         "under the authors' terms)"),
    sha256=None,  # not verified against the authors' file here: "unknown", never guessed
    preset="lipforensics",
    preprocess_preset="lips",
    expects=("25-frame clips of 88x88 grayscale mouths aligned to the mean face (96x96 crops, 12-frame forward "
             "landmark smoothing as the official crop_mouths.py), normalised with mean 0.421, std 0.165; "
             "state_dict {'model': ...} with the official 343 keys"),
    trained_on={"datasets": {"FaceForensics++": "official train split"},
                "methods": ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"],
                "compression": "c23"},
    reported={"Celeb-DF-v2": 82.4, "DFDC": 73.5, "FaceShifter": 97.1, "DeeperForensics": 97.6},
    reported_note=("video-level AUC (%) reported in the paper's cross-dataset evaluation (trained on "
                   "FaceForensics++, tested on each dataset's test videos); measured by the authors, not here"),
    threshold=0.0,
    threshold_note="logit 0 (P(fake) 0.5), the paper's accuracy threshold, not fitted on videos like yours",
    evaluate_options={"max_frames": 110},
)

#: The catalogue by name.
PUBLISHED: dict[str, PublishedCheckpoint] = {LIPFORENSICS_FF.name: LIPFORENSICS_FF}


def get_published(name: str) -> PublishedCheckpoint:
    """The catalogue entry ``name``; KeyError naming the known ones."""
    try:
        return PUBLISHED[name]
    except KeyError:
        raise KeyError(f"no published checkpoint {name!r}; known: {sorted(PUBLISHED)}") from None


def published_card(entry: PublishedCheckpoint, *, sha256: str, file: str,
                   now: _dt.datetime | None = None) -> dict[str, Any]:
    """The model card (``trained_on``) of an imported published checkpoint.

    ``sha256``: the imported file's hash (hex); ``file``: its path as given. The card says the
    model was not trained by this installation and that its threshold is uncalibrated
    (``threshold_calibrated`` False; ``forensight calibrate`` sets it in the folder it writes).
    """
    when = (now or _dt.datetime.now(_dt.UTC)).astimezone(_dt.UTC)
    return {"source": "published", "published": entry.name, "title": entry.title, "paper": entry.paper,
            "citation": entry.citation, "url": entry.url, "trained_by": "the authors (not trained by this "
            "installation)", "datasets": dict(entry.trained_on.get("datasets", {})),
            "methods": list(entry.trained_on.get("methods", [])),
            "compression": entry.trained_on.get("compression", ""),
            "reported": dict(entry.reported), "reported_note": entry.reported_note,
            "file": str(file), "sha256": sha256, "sha256_published": entry.sha256,
            "sha256_verified": bool(entry.sha256) and entry.sha256 == sha256,
            "threshold_calibrated": False, "threshold_note": entry.threshold_note,
            "synthetic_only": False,
            "imported_at": when.replace(microsecond=0).isoformat().replace("+00:00", "Z")}


def format_published() -> str:
    """The catalogue as readable text (``forensight models --published``)."""
    blocks = []
    for e in PUBLISHED.values():
        rep = ", ".join(f"{k} {v}" for k, v in e.reported.items())
        opts = ", ".join(f"{k}={v}" for k, v in e.evaluate_options.items()) or "none"
        blocks.append("\n".join([
            f"{e.name}  ({e.file})", f"  {e.title}", f"  paper:    {e.paper}", f"  cite:     {e.citation}",
            f"  get it:   {e.url}", f"  sha256:   {e.sha256 or 'unknown (not verified here; import prints your file’s hash)'}",
            f"  expects:  {e.expects}", (f"  model preset {e.preset}, preprocessing preset {e.preprocess_preset} "
            f"(forensight preprocess --preset {e.preprocess_preset}); test protocol options: {opts}"),
            f"  reported: {rep} ({e.reported_note})", f"  threshold: {e.threshold_note}",
            (f"  use:      forensight import {e.file} --out models/{e.name}   "
            f"(or forensight detect --model {e.file} VIDEO)")]))
    return "\n\n".join(blocks) + "\n\nNothing is downloaded: fetch the file by hand from the address above."
