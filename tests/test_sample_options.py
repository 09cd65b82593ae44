"""``charrnn sample``'s options (prime notes, checkpoint notes, stop strings, temperatures,
separators, --output, --json), ``charrnn eval``'s perplexity, and the library's ``stop``."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.errors import SettingError
from charrnn.model import CharLM, CharLMConfig
from charrnn.sampling import make_generator, sample_scored, sample_streams, sample_text
from charrnn.vocabulary import Vocabulary
from conftest import SAMPLE_TEXT as TEXT  # the text of the shared run_dir fixture
from conftest import run_cli as _run


# -- 1. --skip-unknown says what it dropped -------------------------------------------------------
def test_skip_unknown_names_the_dropped_characters_once(run_dir, capsys):
    code, out, err = _run(capsys, "sample", run_dir, "--prime", "the ZOZ", "--skip-unknown", "--length", "5",
                          "--num-samples", "3", "--batch-size", "1", "--seed", "2")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == ("charrnn: note: dropped 3 character(s) the model does not know from the prime: "
                        "'Z' (x2), 'O' (x1)")
    assert len(lines) == 2 and lines[1].startswith("charrnn: note: loaded ")  # once, for all three samples
    assert out.startswith("the ") and out.count("the ") == 3  # the prime really used, echoed
    code, out, _ = _run(capsys, "sample", run_dir, "--prime", "the ZOZ", "--skip-unknown", "--length", "5",
                        "--json", "--seed", "2")
    assert code == 0 and json.loads(out)["prime"] == "the "


# -- 2. which checkpoint was loaded ----------------------------------------------------------------
def test_sample_names_the_checkpoint_with_its_step_and_loss(run_dir, capsys):
    code, _, err = _run(capsys, "sample", run_dir, "--length", "3")
    assert code == 0
    assert err.startswith(f"charrnn: note: loaded {run_dir / 'checkpoints' / 'best'} (step ")
    assert "validation loss " in err and err.count("\n") == 1


def test_a_run_without_best_falls_back_to_latest_and_says_so(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "checkpoints" / "best")
    code, _, err = _run(capsys, "sample", copy, "--length", "3")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == f"charrnn: note: {copy}: the run has no checkpoints/best yet; fell back to latest"
    assert lines[1].startswith(f"charrnn: note: loaded {copy / 'checkpoints' / 'latest'} (step 12")
    bare = tmp_path / "bare"
    shutil.copytree(run_dir / "checkpoints" / "latest", bare)
    (bare / "trainer.json").unlink(missing_ok=True)
    code, _, err = _run(capsys, "sample", bare, "--length", "3")
    assert code == 0 and err == f"charrnn: note: loaded {bare}\n"


# -- 3. eval's perplexity --------------------------------------------------------------------------
def test_eval_reports_perplexity(run_dir, tmp_path, capsys):
    text_file = tmp_path / "held_out.txt"
    text_file.write_text(TEXT[:400], encoding="utf-8")
    code, out, _ = _run(capsys, "eval", run_dir, text_file, "--json")
    result = json.loads(out)
    assert code == 0 and result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    code, out, _ = _run(capsys, "eval", run_dir, text_file)
    assert code == 0 and f"perplexity: {result['perplexity']:.4f}\n" in out


# -- 4. stop strings -------------------------------------------------------------------------------
def _tiny():
    vocabulary = Vocabulary.from_text("ab\n")
    torch.manual_seed(0)
    return CharLM(CharLMConfig(vocab_size=3, hidden_size=8, embedding_size=4)), vocabulary


def test_stop_ends_each_stream_after_its_first_stop_string():
    model, vocabulary = _tiny()
    free = list(sample_streams(model, vocabulary, 8, prime="b", length=40, generator=make_generator(5)))
    stopped = list(sample_streams(model, vocabulary, 8, prime="b", length=40, stop=["ab", "\n"],
                                  generator=make_generator(5)))
    for stream in range(8):
        whole = "".join(column[stream] for column in free)
        text = "".join(column[stream] for column in stopped)
        ends = [whole.find(s) + len(s) for s in ("ab", "\n") if s in whole]
        assert text == whole[:min(ends, default=40)]  # the prime "b" does not count
    assert len(stopped) == max(len("".join(column[s] for column in stopped)) for s in range(8))
    assert sample_text(model, vocabulary, length=0, stop=["a"]) == ""


@pytest.mark.parametrize("stop", ["\n", [""], [3], ("a", None)])
def test_stop_is_checked(stop):
    model, vocabulary = _tiny()
    with pytest.raises(SettingError, match="--stop must be a sequence of non-empty strings"):
        sample_streams(model, vocabulary, 1, stop=stop)


def test_stop_flags(run_dir, capsys):
    loaded = load_model(run_dir)
    whole = sample_text(loaded.model, loaded.vocabulary, prime="line", length=300, generator=make_generator(1))

    def until(stop):
        ends = [whole.index(text) + len(text) for text in stop if text in whole]
        return whole[:min(ends, default=len(whole))]

    argv = ["sample", run_dir, "--prime", "line", "--length", "300", "--seed", "1"]
    code, out, _ = _run(capsys, *argv, "--stop-at-newline")
    assert code == 0 and out == "line" + until(["\n"]) + "\n"
    code, out, _ = _run(capsys, *argv, "--stop", "o", "--stop", "e")
    assert code == 0 and out == "line" + until(["o", "e"]) + "\n" and len(out) < 300
    code, _, err = _run(capsys, "sample", run_dir, "--stop", "")
    assert code == 2 and err.startswith("charrnn: error: --stop must be")


# -- 5. temperatures, separators, --output, --json -------------------------------------------------
def test_several_temperatures_are_labelled(run_dir, capsys):
    code, out, _ = _run(capsys, "sample", run_dir, "--prime", "the", "--length", "20", "--seed", "1",
                        "--temperature", "0.5", "1.0")
    assert code == 0
    first, second = out.split("\n--- sample 2 ---\n--- temperature 1 ---\n")
    assert first.startswith("--- temperature 0.5 ---\nthe") and len(first) == len("--- temperature 0.5 ---\n") + 23
    assert second.startswith("the") and len(second) == 24


def test_a_separator_line_between_samples(run_dir, capsys):
    code, out, _ = _run(capsys, "sample", run_dir, "--length", "10", "--num-samples", "3", "--seed", "1",
                        "--separator", "--- sample {number} ---", "--batch-size", "2")
    assert code == 0
    parts = out.split("\n--- sample 2 ---\n")
    assert len(parts) == 2 and len(parts[0]) == 10
    assert [len(p) for p in parts[1].split("\n--- sample 3 ---\n")] == [10, 11]


def test_output_writes_the_file_not_stdout(run_dir, tmp_path, capsys):
    argv = ["sample", run_dir, "--length", "30", "--num-samples", "2", "--seed", "7"]
    _, expected, _ = _run(capsys, *argv)
    target = tmp_path / "out.txt"
    code, out, _ = _run(capsys, *argv, "--output", target)
    assert code == 0 and out == "" and target.read_text(encoding="utf-8") == expected
    failing = tmp_path / "bad.txt"
    code, out, _ = _run(capsys, *argv, "--output", failing, "--prime", "ZZ")
    assert code == 2 and out == "" and not failing.exists()


def test_json_lines_with_log_probabilities(run_dir, capsys):
    code, out, _ = _run(capsys, "sample", run_dir, "--prime", "the", "--length", "25", "--num-samples", "2",
                        "--seed", "3", "--json", "--temperature", "0.8", "--top-k", "5")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2
    for record in records:
        assert set(record) == {"text", "prime", "temperature", "top_k", "top_p", "seed", "checkpoint",
                               "log_probability", "characters"}
        assert record["prime"] == "the" and record["temperature"] == 0.8 and record["top_k"] == 5
        assert record["seed"] == 3 and record["characters"] == len(record["text"]) == 25
        assert record["log_probability"] < 0 and record["checkpoint"].endswith("best")
    # The same texts as the plain output, and a greedy text's log-probability under the model.
    _, plain, _ = _run(capsys, "sample", run_dir, "--prime", "the", "--length", "25", "--num-samples", "2",
                       "--seed", "3", "--temperature", "0.8", "--top-k", "5")
    assert plain == "the" + records[0]["text"] + "\n--- sample 2 ---\nthe" + records[1]["text"] + "\n"
    loaded = load_model(run_dir)
    [(text, log_probability)] = sample_scored(loaded.model, loaded.vocabulary, 1, prime="the", length=10,
                                              greedy=True)
    with torch.no_grad():
        logits, _ = loaded.model(torch.as_tensor(loaded.vocabulary.encode("the" + text)).view(1, -1))
    expected = torch.log_softmax(logits[0, 2:-1], -1).gather(
        -1, torch.as_tensor(loaded.vocabulary.encode(text)).view(-1, 1)).sum()
    assert log_probability == pytest.approx(float(expected), abs=1e-4)
