"""The performance page's table is generated from the benchmarks' JSON and cannot drift from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import report


def test_docs_performance_table_matches_the_json() -> None:
    for path, detail in report.PAGES.items():
        page = path.read_text()
        expected = report.replace_block(page, report.render(report.load_results(), detail))
        assert page == expected, f"{path.name} is out of date: run `python benchmarks/report.py`"
    assert report.main(["--check"]) == 0
    readme = report.README.read_text()
    assert report.START in readme and "| detail |" not in readme.split(report.START)[1].split(report.END)[0]


def _doc(name: str, commit: str, date: str, value: float, carried: bool = False) -> dict:
    d = {"benchmark": name, "date": date, "commit": commit, "load": {"before": [0.5, 0.5, 0.5]},
         "figures": [{"id": f"{name}.x", "label": f"{name} figure", "value": value, "unit": "x", "target": "<= 1x"}]}
    if carried:
        d |= {"carried": True, "source": "README"}
    return d


def test_a_changed_figure_fails_the_check_and_the_report_fixes_it(tmp_path: Path) -> None:
    res = tmp_path / "results"
    res.mkdir()
    (res / "a.json").write_text(json.dumps(_doc("a", "abc", "2026-12-07T10:00:00Z", 0.21)))
    page = tmp_path / "perf.md"
    page.write_text(f"# Performance\n\nintro\n\n{report.START}\nold\n{report.END}\n\nhand-written text\n")
    args = ["--page", str(page), "--results", str(res)]
    assert report.main([*args, "--check"]) == 1
    assert report.main(args) == 0 and report.main([*args, "--check"]) == 0
    text = page.read_text()
    assert "**0.21** x" in text and "0.21" in text and text.startswith("# Performance\n\nintro") and text.endswith("hand-written text\n")
    (res / "a.json").write_text(json.dumps(_doc("a", "abc", "2026-12-07T10:00:00Z", 0.25)))
    assert report.main([*args, "--check"]) == 1  # the JSON moved on: the page no longer matches


def test_figures_not_measured_at_the_latest_commit_are_marked_with_date_and_commit() -> None:
    block = report.render([_doc("new", "c2", "2026-12-07T10:00:00Z", 1.0),
                           _doc("old", "c1", "2026-12-02T10:00:00Z", 2.0),
                           _doc("readme", "c0", "2026-12-01", 3.0, carried=True)])
    rows = {line.split("|")[1].strip(): line for line in block.splitlines() if line.startswith("| `")}
    assert "not re-measured" not in rows["`new`"] and "c2" in rows["`new`"]
    assert "**not re-measured** since 2026-12-02, `c1`" in rows["`old`"]
    assert "**not re-measured** (carried from README): 2026-12-01, `c0`" in rows["`readme`"]
    assert "busy machine" not in block
    busy = _doc("busy", "c2", "2026-12-07T11:00:00Z", 4.38) | {"load": {"before": [15.3, 18, 25]},
                                                               "machine": {"cores": 2}}
    assert "**busy machine**: load above its 2 cores" in report.render([busy])


def test_malformed_results_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"benchmark": "x"}')
    with pytest.raises(ValueError, match="bad.json: missing"):
        report.load_results(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        report.load_results(tmp_path)
