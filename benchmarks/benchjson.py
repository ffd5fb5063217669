"""Benchmark results as JSON: one file per benchmark under ``benchmarks/results/`` (helper, not a benchmark).

Every file records where and when its figures were measured, so the performance table
(``benchmarks/report.py`` → ``docs/performance.md``) can say how old each figure is::

    {"benchmark": "detect_latency", "command": "python benchmarks/detect_latency.py",
     "date": "2026-12-07T13:40:00Z", "commit": "abc1234", "dirty": false,
     "machine": {"platform": "x86_64", "cores": 2, "python": "3.11.7", "torch": "2.14.1", "device": "cpu"},
     "load": {"before": [1.2, 1.0, 0.9], "after": [...]}, "note": "...",
     "figures": [{"id": "detect.region_b1", "label": "...", "value": 0.21, "unit": "x real time",
                  "target": "<= 0.15", "detail": "..."}]}

``value`` is a number (rounded for display by the report); ``target`` and ``detail`` are text.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from forensight.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def git_commit(root: Path = RESULTS.parent.parent) -> tuple[str, bool]:
    """(short commit hash, whether tracked files differ from it) of the repository at ``root``;
    ("unknown", False) outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip() != ""
        return head, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def machine(device: str = "cpu") -> dict[str, Any]:
    """What ran the benchmark: platform, cores, python and torch versions, device."""
    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        tv = "none"
    return {"platform": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": tv, "device": device}


class Recorder:
    """Collects one benchmark's figures and writes its JSON file (:func:`write`).

    Create it before measuring (it reads the load average then) and call :meth:`save` at the end.
    """

    def __init__(self, benchmark: str, device: str = "cpu", note: str = "") -> None:
        self.benchmark = benchmark
        self.device = device
        self.note = note
        self.figures: list[dict[str, Any]] = []
        self.load_before = [round(v, 2) for v in os.getloadavg()]
        self.started = time.time()
        self.commit = git_commit()  # the code that is measured: the checkout at the start

    def add(self, fid: str, label: str, value: float, unit: str, target: str = "", detail: str = "") -> None:
        """One figure: a stable ``fid`` (the table's row key), its label, value, unit, target, detail."""
        if any(f["id"] == fid for f in self.figures):
            raise ValueError(f"figure {fid!r} recorded twice")
        self.figures.append({"id": fid, "label": label, "value": float(value), "unit": unit, "target": target,
                             "detail": detail})

    def save(self, out: Path | None = None) -> Path:
        """Write ``benchmarks/results/<benchmark>.json`` (or ``out``); returns the path."""
        commit, dirty = self.commit
        doc = {"benchmark": self.benchmark, "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)), "commit": commit,
               "dirty": dirty, "machine": machine(self.device),
               "load": {"before": self.load_before, "after": [round(v, 2) for v in os.getloadavg()]},
               "note": self.note, "figures": self.figures}
        path = out or RESULTS / f"{self.benchmark}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, doc, indent=1)
        print(f"results written to {path}")
        return path
