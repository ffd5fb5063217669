"""The one list of reason codes: every code the package can end a video or job with is in it, and the
manual's table is generated from it (so neither can drift)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forensight.reasons import REASONS, describe, markdown_page

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "forensight"

#: Where a reason code is given in the code: ``PreprocessError("code"``, ``reason="code"``,
#: ``_failed(res, "code"``, ``store.fail(job, claim, "code"`` / ``release(pid, n, "code"``.
_PATTERNS = (
    re.compile(r'PreprocessError\(\s*"([a-z_]+)"'),
    re.compile(r'\breason="([a-z_]+)"'),
    re.compile(r'_failed\(\w+, "([a-z_]+)"'),
    re.compile(r'\.fail\(job\.id, claim, "([a-z_]+)"'),
    re.compile(r'\.release\(\w+\.pid, [\w.]+, "([a-z_]+)"'),
    re.compile(r'max_attempts\), max_attempts, "([a-z_]+)"'),
    re.compile(r'write_failure\(\w+, "([a-z_]+)"'),
    re.compile(r'"failed", "([a-z_]+)"'),
)


def _codes_in_source() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        for pat in _PATTERNS:
            for m in pat.finditer(text):
                found.setdefault(m.group(1), []).append(path.relative_to(ROOT).as_posix())
    return found


def test_every_reason_the_code_gives_is_listed() -> None:
    found = _codes_in_source()
    assert len(found) >= 15, f"the scan of the source found too few codes ({sorted(found)}): patterns broken?"
    missing = {code: where for code, where in found.items() if code not in REASONS}
    assert not missing, f"reason codes used in the code but not in forensight.reasons.REASONS: {missing}"


def test_every_listed_reason_is_used_somewhere() -> None:
    text = "\n".join(p.read_text() for p in SRC.rglob("*.py") if p.name != "reasons.py")
    unused = [code for code in REASONS if f'"{code}"' not in text]
    assert not unused, f"listed but never given by the code: {unused}"


def test_each_reason_says_what_it_means_and_what_to_do() -> None:
    for r in REASONS.values():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", r.code)
        assert len(r.meaning) > 20 and len(r.action) > 10, r.code
        assert r.where and set(r.where) <= {"preprocess", "detect", "serve", "robustness"}, r.code
    assert describe("no_face").code == "no_face"
    with pytest.raises(KeyError, match="unknown reason code 'nope'"):
        describe("nope")


def test_the_manual_page_is_generated_from_the_list() -> None:
    page = (ROOT / "docs" / "reference" / "reasons.md").read_text()
    assert page == markdown_page(), ("docs/reference/reasons.md is out of date: regenerate it with "
                                     "`python -m forensight.reasons > docs/reference/reasons.md`")
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(REASONS)
