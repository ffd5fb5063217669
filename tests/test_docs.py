"""The manual: it builds with ``mkdocs build --strict``, its CLI reference is generated from the
argument parser, every ``forensight`` command it shows parses, and the built site renders and
navigates in headless Chromium (Debian's ``chromium`` through Playwright for Python).

The site is built once per module into a temporary folder (about 10 s) and served on 127.0.0.1 by
a thread; the browser test saves screenshots of the home page and a how-to page to
``FORENSIGHT_SHOT_DIR`` (default: the test's temporary folder).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_chromium

from forensight.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMAND_FILES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _hooks():
    spec = importlib.util.spec_from_file_location("forensight_docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subcommands() -> dict:
    import argparse

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


# ---- the CLI reference cannot drift --------------------------------------------------------------

def test_cli_reference_is_generated_from_the_parser() -> None:
    hooks = _hooks()
    text = hooks.cli_reference()
    for name, sub in _subcommands().items():
        assert f"## forensight {name}\n" in text, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in text, f"forensight {name} {flag} missing from the CLI reference"
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert hooks.MARKER in page
    assert hooks.on_page_markdown(page, None, None, None).count("## forensight ") == len(_subcommands())


# ---- every command the manual and README show parses ---------------------------------------------

def documented_commands(path: Path) -> list[tuple[int, str]]:
    """``(line, command)`` for each ``forensight ...`` command in the fenced shell blocks of ``path``
    (continuation lines joined; ``a && b`` split; redirections and pipes cut off)."""
    out: list[tuple[int, str]] = []
    in_block, lang = False, ""
    pending, start = "", 0
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            in_block, lang = (not in_block), fence.group(1)
            continue
        if not in_block or lang not in ("bash", "sh", "shell", ""):
            continue
        if pending:
            pending += " " + line.strip()
        else:
            pending, start = line.strip(), no
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        for part in pending.split("&&"):
            part = re.split(r"\s[>|]\s?", part.strip())[0]
            part = re.sub(r"^(srun|nice -n \d+)\s+", "", part)
            if part.startswith("forensight "):
                out.append((start, part))
        pending = ""
    return out


def test_documented_commands_parse(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    seen, bad = 0, []
    for path in COMMAND_FILES:
        for line, command in documented_commands(path):
            argv = shlex.split(re.sub(r"\$\{?\w+\}?", "0", command), comments=True)[1:]
            seen += 1
            try:
                parser.parse_args(argv)
            except SystemExit:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {command}\n    {capsys.readouterr().err.strip()}")
    assert seen >= 30, f"only {seen} commands found: is the extraction broken?"
    assert not bad, "documented commands that the CLI rejects:\n" + "\n".join(bad)


def test_command_extraction(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("text `forensight nope` inline\n```bash\nforensight a --x 1 \\\n    --y 2   # c\n"
                  "pip install -e . && forensight demo\nforensight detect v.mp4 --json > s.json\n```\n"
                  "```python\nforensight.load_detector('x')\n```\n", encoding="utf-8")
    assert documented_commands(md) == [(3, "forensight a --x 1 --y 2   # c"), (5, "forensight demo"),
                                       (6, "forensight detect v.mp4 --json")]


# ---- the built site -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(out)], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False)
    assert p.returncode == 0, p.stderr[-4000:]
    return out


def test_site_has_every_page_and_the_generated_references(site: Path) -> None:
    for page in ("index.html", "getting-started/index.html", "tutorial/index.html", "guide/detect/index.html",
                 "results/study/index.html", "reference/cli/index.html", "reference/api/index.html",
                 "design/index.html"):
        assert (site / page).is_file(), page
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert all(f"forensight {name}" in cli for name in _subcommands())
    assert "--shard" in cli and "--main-face-only" in cli
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "load_detector" in api and "run_preprocess" in api and "PreprocessConfig" in api


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()



def test_site_renders_and_navigates_in_chromium(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("FORENSIGHT_SHOT_DIR", tmp_path))
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=require_chromium(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{served}/")
            expect(page).to_have_title(re.compile("Forensight"))
            expect(page.locator("article h1")).to_have_text(re.compile("Forensight"))
            image = page.locator("article img").first  # the report screenshot loaded and has a size
            expect(image).to_be_visible()
            assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 100
            page.screenshot(path=str(shots / "docs_home.png"))

            page.locator("nav.md-nav--primary a", has_text="Detect and read a report").first.click()
            page.wait_for_url(re.compile(r"/guide/detect/$"))
            expect(page.locator("article h1")).to_contain_text("Detect and read a report")
            expect(page.locator("article pre code").first).to_contain_text("forensight detect")
            page.screenshot(path=str(shots / "docs_detect.png"), full_page=False)

            page.locator("article a", has_text="command line reference").first.click()
            page.wait_for_url(re.compile(r"/reference/cli/"))
            expect(page.locator("article h2", has_text="forensight detect").first).to_be_visible()
        finally:
            browser.close()
    assert not errors, errors
    assert (shots / "docs_home.png").stat().st_size > 10_000 and (shots / "docs_detect.png").stat().st_size > 10_000


def test_api_reference_turns_rst_roles_and_literal_blocks_into_markdown() -> None:
    spec = importlib.util.spec_from_file_location("forensight_griffe_rst", ROOT / "scripts" / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Uses :func:`forensight.scoring.forward_batch` and :class:`~x.Y`.\n\nUsage::\n\n    det.predict(v)\n\nEnd."
    assert module.rst_to_markdown(text) == ("Uses ``forensight.scoring.forward_batch`` and ``x.Y``.\n\nUsage:\n\n"
                                            "```python\ndet.predict(v)\n```\n\nEnd.")
