"""``charrnn inspect`` (issue 10): the report's files, a page that escapes every text, and one-line errors."""

import contextlib
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from charrnn.cli import main
from charrnn.inspection import FEATURES, Recording

#: Text that would break a page that took it as markup, or a tag that took it as a string.
HOSTILE = "<script>alert(1)</script> & \"quotes\" 'single' \t tab \n newline 😀 한국어"
LM = ["--hidden-size", "8", "--num-layers", "2", "--embedding-size", "4", "--sequence-length", "8", "--batch-size", "2",
      "--max-steps", "2", "--eval-every", "2", "--threads", "1", "--device", "cpu", "--quiet"]
MACHINE = ["--threads", "1", "--device", "cpu"]
VOID = {"meta", "img", "br", "input", "link", "hr", "wbr"}


def run(*argv):
    """Run ``charrnn`` in this process: ``(status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main([str(arg) for arg in argv])
        except SystemExit as stop:  # argparse's errors
            status = stop.code
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny LSTM run whose vocabulary holds every character of :data:`HOSTILE`, and its report."""
    folder = tmp_path_factory.mktemp("inspect")
    corpus = folder / "corpus.txt"
    corpus.write_text((HOSTILE + " the end.\n") * 20, encoding="utf-8")
    status, _, err = run("train", corpus, "--out", folder / "run", *LM)
    assert status == 0, err
    status, out, err = run("inspect", folder / "run", "--text", HOSTILE, "--out", folder / "report",
                           "--feature", "tags=<[^>]*>", *MACHINE)
    assert status == 0, err
    return folder, out, err


class Spans(HTMLParser):
    """The text of each ``<span class="ch">``, and every tag left open or closed out of order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.spans, self.in_span = [], [], [], False

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        self.stack.append(tag)
        classes = (dict(attrs).get("class") or "").split()
        if tag == "span" and "ch" in classes:
            self.in_span = True
            self.spans.append("")

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        self.in_span = False

    def handle_data(self, data):
        if self.in_span:
            self.spans[-1] += data


def page(folder):
    return (folder / "report" / "inspect.html").read_text(encoding="utf-8")


def test_inspect_writes_every_file_and_prints_a_summary(trained):
    folder, out, _ = trained
    report = folder / "report"
    for name in ("inspect.html", "units.png", "saturation.png", "units.json", "recording.safetensors"):
        assert (report / name).is_file(), name
    for name in ("units.png", "saturation.png"):
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    assert not list(report.glob(".*"))  # no temporary left behind
    assert "in_quotes: layer " in out and "tags: layer " in out and str(report) in out
    summary_line = next(line for line in out.splitlines() if line.strip().startswith("digit:"))
    assert summary_line.count("layer ") == 3  # the top 3 units


def test_the_page_escapes_the_text_and_fetches_nothing(trained):
    html = page(trained[0])
    assert "<script>alert" not in html and "alert(1)</script>" not in html
    assert "&lt;" in html and "&amp;" in html and "&#34;" in html and "&#39;" in html
    assert "http://" not in html and "https://" not in html
    assert html.count("<script") == 2  # the JSON island and the page's own script, nothing else
    parser = Spans()
    parser.feed(html)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    assert parser.spans == list(HOSTILE)  # one span per character, each exactly that character
    assert 'class="ch nl"' in html and 'class="ch tab"' in html  # marked ↵ and → by the style sheet


def test_the_json_island_holds_the_recording(trained):
    folder = trained[0]
    html = page(folder)
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.DOTALL)
    assert match and "<" not in match.group(1) and ">" not in match.group(1) and "&" not in match.group(1)
    data = json.loads(match.group(1))
    recording = Recording.load(folder / "report" / "recording.safetensors")
    assert recording.text == HOSTILE
    assert len(data["layers"]) == recording.num_layers
    for layer, values in enumerate(recording.layers):
        assert set(data["layers"][layer]["kinds"]) == set(values)
        for kind, matrix in values.items():
            units = np.array(data["layers"][layer]["kinds"][kind]["units"])  # (N, T)
            np.testing.assert_allclose(units, matrix.T, atol=6e-4)
            assert data["layers"][layer]["kinds"][kind]["range"] == ([0, 1] if kind in
                                                                     ("input", "forget", "output") else [-1, 1])
    surprise = np.array([np.nan if value is None else value for value in data["surprise"]])
    np.testing.assert_allclose(surprise[:-1], recording.surprise_bits[:-1], atol=6e-4)
    assert np.isnan(surprise[-1])
    for t in (0, 5, len(recording) - 1):
        guesses = recording.guesses(t)
        assert [char for char, _ in data["top"][t]] == [char for char, _ in guesses]
        np.testing.assert_allclose([p for _, p in data["top"][t]], [p for _, p in guesses], atol=1e-4)
    assert "tags" in data["best"] and data["best"]["in_quotes"]


def test_units_json_holds_every_feature_and_the_positions(trained):
    folder = trained[0]
    summary = json.loads((folder / "report" / "units.json").read_text(encoding="utf-8"))
    assert set(summary["features"]) == set(FEATURES) | {"tags"}
    assert summary["features"]["upper_case"] == {"units": [], "note": "constant on this text: nothing to score"}
    best = summary["features"]["in_quotes"]["units"]
    assert len(best) == 5 and best[0]["measure"] == "AUC" and 0.5 <= best[0]["score"] <= 1
    assert [u["score"] for u in best] == sorted((u["score"] for u in best), reverse=True)
    assert summary["features"]["line_position"]["units"][0]["measure"] == "|r|"
    positions = summary["positions"]
    assert "".join(position["character"] for position in positions) == HOSTILE
    assert len(positions[0]["top"]) == 5 and positions[-1]["surprise"] is None
    assert summary["loss"] == pytest.approx(np.mean([p["surprise"] for p in positions[:-1]]), abs=1e-4)


def test_a_regex_feature_is_scored_on_the_characters_it_matches(trained):
    folder = trained[0]
    summary = json.loads((folder / "report" / "units.json").read_text(encoding="utf-8"))
    recording = Recording.load(folder / "report" / "recording.safetensors")
    unit = summary["features"]["tags"]["units"][0]
    values = recording.layers[unit["layer"]][unit["kind"]][:, unit["unit"]]
    inside = np.zeros(len(HOSTILE), dtype=bool)
    for match in re.finditer("<[^>]*>", HOSTILE):
        inside[match.start():match.end()] = True
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(inside, values)
    assert unit["auc"] == pytest.approx(max(auc, 1 - auc), abs=1e-4)


def test_layer_kind_default_out_and_skip_unknown(trained, tmp_path, monkeypatch):
    folder = trained[0]
    monkeypatch.chdir(tmp_path)
    status, out, err = run("inspect", folder / "run", "--text", "the end.Z", "--skip-unknown",
                           "--layer", "0", "--kind", "forget", *MACHINE)
    assert status == 0, err
    assert "(1 outside the vocabulary skipped)" in out
    report = tmp_path / "inspect-run"
    assert (report / "inspect.html").is_file()
    html = (report / "inspect.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="data">(.*?)</script>', html, re.DOTALL).group(1))
    assert data["initial"]["layer"] == 0 and data["initial"]["kind"] == "forget"
    assert Recording.load(report / "recording.safetensors").text == "the end."


def test_a_model_without_gates_gets_a_note_instead_of_saturation(trained, tmp_path):
    folder = trained[0]
    status, _, err = run("train", folder / "corpus.txt", "--out", tmp_path / "rnn", *LM, "--cell", "rnn",
                         "--num-layers", "1")
    assert status == 0, err
    status, out, err = run("inspect", tmp_path / "rnn", "--text", "the end.", "--out", tmp_path / "report",
                           *MACHINE)
    assert status == 0, err
    assert not (tmp_path / "report" / "saturation.png").exists()
    assert "note: no saturation.png: the model's cells (rnn) have no gates" in out
    assert "no saturation.png" in (tmp_path / "report" / "inspect.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("flags, message", [
    (["--text", ""], "--text is empty"),
    (["--text", "abcZ"], "--skip-unknown"),
    (["--text", "abc", "--feature", "tags"], "--feature must be NAME=REGEX, got 'tags'"),
    (["--text", "abc", "--feature", "open=("], "--feature open: '(' is not a regular expression"),
    (["--text", "abc", "--layer", "2"], "--layer must be from 0 to 1 (the model has 2 layers), got 2"),
    (["--text", "abc", "--kind", "reset"], "--kind must be one of h, c, input, forget, output, candidate"),
    (["--text", "abc", "--file", "x.txt"], "not allowed with argument"),
])
def test_errors_are_one_line_with_exit_status_2(trained, tmp_path, flags, message):
    folder = trained[0]
    status, out, err = run("inspect", folder / "run", *flags, "--out", tmp_path / "report", *MACHINE)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("charrnn: error: ") and message in err, err
    assert not (tmp_path / "report").exists()


def test_a_missing_checkpoint_is_one_line(tmp_path):
    status, _, err = run("inspect", tmp_path / "nowhere", "--text", "abc", *MACHINE)
    assert status == 2 and err.count("\n") == 1 and "no such checkpoint" in err


def test_a_page_over_its_budget_drops_kinds_then_characters_and_says_so(trained, tmp_path):
    from charrnn.inspect_report import write_report

    recording = Recording.load(trained[0] / "report" / "recording.safetensors")
    units = sum(values["h"].shape[1] for values in recording.layers)
    report = write_report(recording, tmp_path / "small", max_page_values=units * 10)
    html = (tmp_path / "small" / "inspect.html").read_text(encoding="utf-8")
    assert f"the page shows the first 10 of {len(recording)} characters" in html
    assert "layer 0 c left off the page" in html
    parser = Spans()
    parser.feed(html)
    assert parser.spans == list(HOSTILE[:10])
    assert Recording.load(report.out_dir / "recording.safetensors").text == HOSTILE  # the file keeps it all
