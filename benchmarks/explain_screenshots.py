"""Screenshots of the evidence maps where people look (for docs/guide/explanations.md), in headless Chromium.

1. ``detect --explain --report``: the HTML report's most-attended frames with their evidence
   maps (``explain_report.png``, the "Most-attended frames" card);
2. ``forensight serve``: the page with "show where in the face" ticked, then the job page with the
   embedded report (``serve_explain.png``).

    python benchmarks/explain_screenshots.py --model RUN_OR_MODEL_PT --video FAKE.mp4 --out docs/

Playwright drives Debian's ``chromium`` (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import ServerProcess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--video", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--skip-report", action="store_true", help="only the web app screenshot")
    a = ap.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install chromium (Debian)")
    from playwright.sync_api import expect, sync_playwright

    from forensight.detect import detect_batch, load_detector

    work = Path(tempfile.mkdtemp(prefix="forensight-shots-"))
    if not a.skip_report:
        det = load_detector(a.model, device="cpu", explain="top", top_k=4)
        out = detect_batch([a.video], det, report=work / "report")
        page_file = work / "report" / out.pages[0]
    a.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            if not a.skip_report:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(page_file.resolve().as_uri())
                card = page.locator("section.card", has=page.locator(".evidence-legend"))
                expect(card.locator("img.evidence")).to_have_count(len(out.results[0].top_frames))
                card.screenshot(path=str(a.out / "explain_report.png"))
            srv = ServerProcess(work / "data", [a.model], workers=1, queue_size=4).start(ready_timeout_s=900)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1500})
                page.goto(f"{srv.url}/")
                page.check("#explain-check")
                page.set_input_files("#file-input", str(a.video))
                page.click("#upload-button")
                page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{16}$"), timeout=60_000)
                expect(page.locator("#verdict")).to_have_text(re.compile(r"^(FAKE|REAL) "), timeout=900_000)
                report = page.frame_locator("#report")
                expect(report.locator("img.evidence").first).to_be_visible(timeout=60_000)
                report.locator(".evidence-legend").scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                page.screenshot(path=str(a.out / "serve_explain.png"))
            finally:
                srv.stop()
        finally:
            browser.close()
    print(f"wrote {a.out / 'explain_report.png'} and {a.out / 'serve_explain.png'}")


if __name__ == "__main__":
    main()
