"""Wall time of `forensight demo` end to end, in a fresh folder (benchmark, not a test).

Target (README, issues 18 / 23): the whole demo in <= 15 min on 2 CPU cores. Runs
``forensight.demo.run_demo`` with its defaults into a new temporary folder (nothing reused), prints
the minutes and each stage's seconds (the demo's own timing), and writes
``benchmarks/results/demo.json`` (``benchmarks/report.py`` makes the performance table from it).

    python benchmarks/demo_time.py [--keep DIR] [--json PATH | --no-json]

It takes as long as the demo (about 14 minutes on an idle 2-core machine).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from benchjson import Recorder

TARGET_MIN = 15.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="run the demo into this (new or empty) folder and keep it")
    ap.add_argument("--json", type=Path, help="results file (default benchmarks/results/demo.json)")
    ap.add_argument("--no-json", action="store_true", help="print only")
    a = ap.parse_args()
    from forensight.config import DemoConfig
    from forensight.demo import run_demo

    if a.keep is not None and a.keep.exists() and any(a.keep.iterdir()):
        raise SystemExit(f"--keep {a.keep} is not empty: the demo must start from nothing to be timed")
    out = a.keep or Path(tempfile.mkdtemp(prefix="forensight-demo-"))
    rec = Recorder("demo", note="forensight demo with its defaults into a fresh folder (synthetic data, preprocess, "
                                "region study, sparsity sweep, small generalisation study)")
    t = time.perf_counter()
    try:
        result = run_demo(out, DemoConfig(), progress=False)
    finally:
        if a.keep is None:
            shutil.rmtree(out, ignore_errors=True)
    minutes = (time.perf_counter() - t) / 60
    stages = ", ".join(f"{k} {v:.0f}" for k, v in result["seconds"].items() if k != "total")
    print(f"forensight demo: {minutes:.1f} min (target <= {TARGET_MIN:.0f} min); stage seconds: {stages}")
    rec.add("demo.minutes", "forensight demo, end to end", minutes, "min", f"<= {TARGET_MIN:.0f} min",
            f"stage seconds: {stages}")
    if not a.no_json:
        rec.save(a.json)


if __name__ == "__main__":
    main()
