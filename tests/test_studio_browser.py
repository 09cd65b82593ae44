"""``charrnn studio`` in a real browser (Debian's chromium through Playwright) against the real
server: Play on hihello reaches ``ihello``, a run samples with the text streaming in, hostile run
names and texts stay text, the language choice is remembered, and the page asks no other host
for anything.

``CHARRNN_STUDIO_SCREENSHOTS=docs/images`` also saves the pictures of the README and of
docs/studio.md there (``studio.png``, ``studio-runs.png``).
"""

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("starlette")
pytest.importorskip("playwright")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed at /usr/bin/chromium (CI installs it)")

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from test_studio_cli import Running  # noqa: E402


def keep(shot: Path, name: str) -> None:
    """Copy a screenshot into ``$CHARRNN_STUDIO_SCREENSHOTS`` when it is set."""
    folder = os.environ.get("CHARRNN_STUDIO_SCREENSHOTS")
    if folder:
        shutil.copyfile(shot, Path(folder) / name)


ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=window.pwned=1>"]


@pytest.fixture(scope="module")
def server(run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-browser-runs")
    shutil.copytree(run_dir, root / "tiny")
    for name in HOSTILE:
        shutil.copytree(run_dir, root.joinpath(*name.split("/")))
    running = Running(runs=root)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), args=ARGS,
            headless=True, viewport={"width": 1300, "height": 1000})
        yield context
        context.close()


@pytest.fixture
def page(context, server):
    """The page, every request for anything not on the server's own address recorded and refused."""
    page = context.new_page()
    own = urlsplit(server.url).netloc
    elsewhere, errors = [], []

    def route(route):
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(server.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30_000)
    page.studio_errors = errors
    yield page
    page.close()
    assert elsewhere == [], f"the page asked other hosts: {elsewhere}"
    assert errors == []


def test_play_on_hihello_reaches_ihello(page, tmp_path):
    expect(page.locator("#prediction-text")).to_have_text("hhhhho")  # iteration 0, seed 0
    page.click("#play")
    expect(page.locator("#prediction-text")).to_have_text("ihello", timeout=60_000)
    if os.environ.get("CHARRNN_STUDIO_SCREENSHOTS"):  # the README's picture: the lecture's whole run
        expect(page.locator("#iteration")).to_have_text("2000", timeout=60_000)
    else:
        page.click("#pause")
        expect(page.locator("#pause")).to_be_disabled()
    assert page.locator("#positions .position").count() == 6
    assert page.locator("#positions .position.wrong").count() == 0
    assert page.locator("#positions .position >> nth=0").locator(".guess").count() == 5
    assert float(page.text_content("#loss")) < 0.7
    assert "for i in range(2000):" in page.text_content("#charrnn-code")
    assert "tf.contrib.rnn.BasicLSTMCell" in page.text_content("#tf-code")
    heatmap = page.locator("#heatmap").bounding_box()
    assert heatmap["width"] > 100 and heatmap["height"] > 50
    shot = tmp_path / "studio.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 30_000
    keep(shot, "studio.png")


def test_step_and_reset_and_another_example(page):
    page.click("#step")
    expect(page.locator("#iteration")).to_have_text("1")
    page.click("#step")
    expect(page.locator("#iteration")).to_have_text("2")
    page.click("#reset")
    expect(page.locator("#iteration")).to_have_text("0")
    page.check("#example-long-sentence")
    expect(page.locator("#iterations-total")).to_have_text("500")
    expect(page.locator("#positions .position")).to_have_count(179)
    expect(page.locator("#heatmap-layer-label")).to_be_visible()  # the stack's two layers, either one shown
    assert page.locator("#heatmap-layer option").count() == 2 and page.input_value("#heatmap-layer") == "1"
    page.select_option("#heatmap-layer", "0")
    page.click("#step")
    expect(page.locator("#iteration")).to_have_text("1")
    page.check("#dense")  # hihello's dense layer: the hidden size may change
    page.check("#example-hihello")
    assert page.is_disabled("#hidden-size")


def test_a_run_samples_with_the_text_streaming_in(page, tmp_path):
    page.click("#tab-runs")
    page.click("#run-list button[data-source=pretrained]")
    page.fill("#prime", "ROMEO:")
    page.fill("#length", "1500")
    page.fill("#sample-seed", "3")
    page.click("#sample-button")
    lengths = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lengths.append(len(page.text_content("#sample-text")))
        if lengths[-1] >= 1500:
            break
        time.sleep(0.05)
    assert lengths[-1] == 1500
    assert any(0 < length < 1500 for length in lengths), lengths  # seen while it was being made
    expect(page.locator("#sample-button")).to_be_enabled()
    assert page.text_content("#sample-prime") == "ROMEO:"
    page.click("#inspect-button")
    expect(page.locator("#inspect-text .ch")).to_have_count(len("ROMEO:\nWhat light through yonder window breaks?"))
    expect(page.locator("#best-units button").first).to_be_visible()
    page.hover("#inspect-text .ch >> nth=12")
    shot = tmp_path / "studio-runs.png"
    page.screenshot(path=str(shot), full_page=True)
    keep(shot, "studio-runs.png")


def test_hostile_names_and_texts_stay_text(page):
    page.click("#tab-runs")
    buttons = page.locator("#run-list button[data-source=runs]")
    expect(buttons).to_have_count(3)
    shown = [buttons.nth(index).locator("span >> nth=0").text_content() for index in range(3)]
    assert sorted(shown) == sorted(HOSTILE + ["tiny"])
    assert page.locator("#run-list script, #run-list img").count() == 0
    page.click(f"#run-list button[data-name='{HOSTILE[1]}']")
    expect(page.locator("#run-title")).to_have_text(HOSTILE[1])
    expect(page.locator("#metrics-note")).not_to_be_empty()
    text = "line <b>1</b>: the <img src=x onerror=window.pwned=1> fox\n"
    page.fill("#inspect-input", text.replace("<b>", "").replace("</b>", "").replace("<img src=x onerror=window.pwned=1>", "lazy"))
    page.click("#inspect-button")
    expect(page.locator("#inspect-text .ch")).to_have_count(len("line 1: the lazy fox\n"))
    page.hover("#inspect-text .ch >> nth=2")
    expect(page.locator("#guesses")).to_be_visible()
    assert page.locator("#guess-rows .guess").count() == 5
    page.select_option("#inspect-view", "surprise")
    assert "bits" in page.text_content("#inspect-high")
    # A text with markup, typed into the page, is recorded and shown as characters.
    page.fill("#inspect-input", "<b>li</b>")
    page.click("#inspect-button")
    expect(page.locator("#inspect-error")).to_contain_text("not in the vocabulary")
    page.studio_errors.remove("Failed to load resource: the server responded with a status of 400 (Bad Request)")
    assert page.locator("#inspect-text b, #inspect-text img").count() == 0
    assert page.evaluate("window.pwned === undefined")


def test_the_language_choice_is_remembered(page, server):
    page.select_option("#language", "ko")
    expect(page.locator("#tab-lecture")).to_have_text("강의 예제")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30_000)
    expect(page.locator("#play")).to_have_text("재생")
    page.select_option("#language", "en")
    expect(page.locator("#play")).to_have_text("Play")
