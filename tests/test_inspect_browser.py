"""``charrnn inspect``'s page in a real browser (Debian's chromium through Playwright): it colours the
text, recolours it on a choice, shows the guesses on hover, and asks no other host for anything."""

import contextlib
import io
import struct
from pathlib import Path

import pytest

pytest.importorskip("playwright")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (CI installs it)")

from playwright.sync_api import sync_playwright  # noqa: E402

from charrnn.cli import main  # noqa: E402

TEXT = "<b>bold</b> \"said\" (a [b]) {c}\n\tx = 1;\n"
LM = ["--hidden-size", "8", "--embedding-size", "4", "--sequence-length", "8", "--batch-size", "2",
      "--max-steps", "3", "--eval-every", "3", "--threads", "1", "--device", "cpu", "--quiet"]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    assert status == 0, err.getvalue()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect-browser")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT * 30, encoding="utf-8")
    run("train", corpus, "--out", folder / "run", *LM)
    run("inspect", folder / "run", "--text", TEXT, "--out", folder / "report", "--threads", "1", "--device", "cpu")
    return folder / "report" / "inspect.html"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def opened(browser, report):
    """The page, opened from its file, with every request for anything but a file:// URL recorded (and refused)."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    elsewhere, errors = [], []

    def route(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    yield page, elsewhere, errors
    page.close()


def backgrounds(page) -> list[str]:
    return page.eval_on_selector_all("#text .ch", "spans => spans.map(s => getComputedStyle(s).backgroundColor)")


def test_the_page_colours_recolours_and_fetches_nothing_else(opened, tmp_path):
    page, elsewhere, errors = opened
    assert page.locator("#text .ch").count() == len(TEXT)
    first = backgrounds(page)
    assert len(set(first)) > 3 and "rgba(0, 0, 0, 0)" not in first  # every character coloured, not all alike
    assert page.locator("#legend-low").text_content() and page.locator("#legend-high").text_content()

    units = page.eval_on_selector_all("#unit option", "options => options.map(o => o.value)")
    other = next(value for value in units if value != page.input_value("#unit"))
    page.select_option("#unit", other)
    assert backgrounds(page) != first

    page.select_option("#kind", "forget")
    assert page.locator("#legend-low").text_content() == "0"
    page.select_option("#view", "surprise")
    surprise = backgrounds(page)
    assert surprise != first and len(set(surprise)) > 3
    assert "bits" in page.locator("#legend-high").text_content()
    assert page.is_disabled("#unit")

    assert page.is_hidden("#guesses")
    page.hover("#text .ch >> nth=3")
    assert page.is_visible("#guesses")
    assert page.locator("#guesses .row").count() == 5
    widths = page.eval_on_selector_all("#guesses .fill", "bars => bars.map(b => b.getBoundingClientRect().width)")
    assert widths == sorted(widths, reverse=True) and widths[0] > 0

    button = page.locator("#features button:not([disabled])").first
    label = button.text_content()  # "layer L K unit U: ..."
    button.click()
    assert page.input_value("#view") == "unit"
    assert f"unit {page.input_value('#unit')}:" in label and f"layer {page.input_value('#layer')} " in label

    shot = tmp_path / "inspect.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and width >= 1000 and height >= 600 and len(data) > 20_000
    assert errors == [] and elsewhere == []
