"""The report as a reader sees it: headless Chromium opens the page (``srlib.browser``).

Small pages prove the check fails on each fault alone and passes a good page; a micro
report built here (the grid of ``test_ablate.py``) must pass it. Where Chromium cannot be
had, these tests skip and say why.
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import pytest
from conftest import write_micro_grid

from srlib import browser

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "reports" / "screenshots"


def check(html: Path, png: Path, **kwargs) -> dict:
    """``browser.check_page``, skipping the test where Chromium is absent or won't start."""
    try:
        return browser.check_page(html, png, **kwargs)
    except browser.BrowserUnavailable as err:
        pytest.skip(f"no browser: {err}")


def png_uri(width: int = 40, height: int = 30) -> str:
    """A small real PNG as a data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def page(tmp_path: Path, body: str, name: str = "page.html") -> Path:
    """``body`` in a plain HTML page (the report's kind: text, a figure, a table)."""
    html = tmp_path / name
    html.write_text(f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title>
<style>body {{ margin: 20px; font-family: sans-serif; }}
img {{ max-width: 100%; }} .scroll {{ overflow-x: auto; }}</style></head><body>
<h1>A report</h1><p>Some text.</p><img alt="a figure" src="{png_uri()}">
<table><tr><th>variant</th><th>PSNR</th></tr><tr><td>bicubic</td><td>30.1</td></tr></table>
{body}</body></html>""")
    return html


# each fault alone, in an otherwise good page: (body, what the problem line says)
FAULTS = {
    "missing image": ('<img alt="gone" src="no-such-figure.png">', "broken image"),
    "broken data uri": ('<img alt="bad" src="data:image/png;base64,iVBORw0KGgo=">',
                        "broken image"),
    "console.error": ("<script>console.error('the figure failed')</script>",
                      "console error: console.error: the figure failed"),
    "uncaught exception": ("<script>undefinedFunction()</script>", "undefinedFunction"),
    "wide table": ('<table class="results" style="width: 2000px"><tr><td>x</td></tr></table>',
                   "table.results"),
    "wide figure": (f'<img alt="wide" style="max-width: none; width: 1600px" src="{png_uri()}">',
                    "past the page's edge: img"),
    "table that scrolls sideways": ('<div class="scroll"><table style="width: 1900px">'
                                    "<tr><td>x</td></tr></table></div>",
                                    "scrolls sideways: div.scroll"),
}


def test_a_good_page_passes_and_is_photographed(tmp_path):
    from PIL import Image

    shot = tmp_path / "shots" / "good.png"
    found = check(page(tmp_path, "<p>The end.</p>"), shot)
    assert found["ok"], browser.summary(found)
    assert found["problems"] == [] and found["console_errors"] == []
    assert len(found["images"]) == 1 and found["images"][0]["natural"] == [40, 30]
    assert found["viewport"] == 1280 and found["page"] <= 1280
    assert found["external"] == [] and "Chrom" in found["browser"]
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.width == 1280 and im.height >= found["page_height"]


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_each_fault_fails_the_check(tmp_path, fault):
    body, says = FAULTS[fault]
    found = check(page(tmp_path, body), tmp_path / "shot.png")
    assert not found["ok"]
    assert any(says in p for p in found["problems"]), browser.summary(found)
    assert (tmp_path / "shot.png").is_file()  # a failing page is still photographed


def test_a_page_wider_than_the_window_is_measured_at_the_given_width(tmp_path):
    body = '<div style="width: 1000px">fits at 1280, not at 800</div>'
    html = page(tmp_path, body)
    assert check(html, tmp_path / "wide.png")["ok"]
    found = check(html, tmp_path / "narrow.png", width=800)
    assert not found["ok"] and found["viewport"] == 800 and found["page"] > 800
    assert any("div" in p for p in found["problems"]), browser.summary(found)


def test_the_page_stays_off_the_network(tmp_path):
    """A CDN script is blocked and listed (not self-contained), its own load failure is not
    a console error; what breaks without it is."""
    body = ('<script src="https://cdn.example.invalid/lib.js"></script>'
            "<script>if (typeof lib === 'undefined') console.error('lib is missing')</script>")
    found = check(page(tmp_path, body), tmp_path / "shot.png")
    assert found["external"] == ["https://cdn.example.invalid/lib.js"]
    assert found["console_errors"] == ["console.error: lib is missing"], browser.summary(found)


def test_unavailable_browser_and_missing_page_say_why(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no page at"):
        browser.check_page(tmp_path / "none.html", tmp_path / "x.png")
    monkeypatch.setenv("CHROMIUM", "no-such-chromium-binary")
    with pytest.raises(browser.BrowserUnavailable, match="no-such-chromium-binary"):
        browser.check_page(page(tmp_path, ""), tmp_path / "x.png")
    assert browser.main([str(page(tmp_path, "")), "--screenshot", str(tmp_path / "x.png")]) == 2
    monkeypatch.setenv("CHROMIUM", "false")  # starts, and exits at once
    with pytest.raises(browser.BrowserUnavailable, match="chromium exited"):
        browser.check_page(page(tmp_path, ""), tmp_path / "x.png")


# ---- the real report: a micro grid (as in test_ablate.py) through the runner ---------------

@pytest.fixture(scope="module")
def micro_report(tmp_path_factory) -> Path:
    """``index.html`` of a micro grid (bicubic, two trained variants, one that fails)."""
    try:  # no need to build what cannot be looked at
        browser.require_chromium()
    except browser.BrowserUnavailable as err:
        pytest.skip(f"no browser: {err}")
    from srlib.ablate import main

    root = tmp_path_factory.mktemp("browser-micro")
    cfg = write_micro_grid(root)
    assert main([str(cfg), "--out", str(root / "reports")]) == 0
    return root / "reports" / "index.html"


def test_the_report_as_a_reader_sees_it(micro_report, tmp_path):
    shot = tmp_path / "index-1280.png"
    found = check(micro_report, shot, width=1280)
    with_copy = keep_screenshot(shot)
    print(browser.summary(found) + (f"\ncopied to {with_copy}" if with_copy else ""))
    assert found["ok"], browser.summary(found)
    assert len(found["images"]) >= 3  # the figures are there, embedded
    assert all(i["src"].startswith("data:image/png;base64,") for i in found["images"])
    assert found["text"] > 1000 and found["page_height"] > 2000


def keep_screenshot(shot: Path) -> Path | None:
    """A copy in ``reports/screenshots/`` (git-ignored) where it can be written."""
    try:
        SCREENSHOTS.mkdir(exist_ok=True)
        return Path(shutil.copyfile(shot, SCREENSHOTS / shot.name))
    except OSError:
        return None
