"""``charrnn sample`` and ``charrnn eval`` on a tiny run made by the trainer."""

from __future__ import annotations

import json
import math

import pytest

from charrnn.checkpoint import load_model
from charrnn.evaluation import evaluate
from charrnn.sampling import sample_text
from conftest import SAMPLE_TEXT as TEXT  # the text of the shared run_dir fixture
from conftest import run_cli as _run


def _split(out: str, count: int, length: int) -> list[str]:
    """The ``count`` samples of ``length`` characters in ``out``, checking the separator lines
    between them (``--- sample N ---``) and the final line break (a sample may hold blank lines)."""
    samples, rest = [], out
    for number in range(2, count + 1):
        separator = f"\n--- sample {number} ---\n"
        assert rest[length:length + len(separator)] == separator
        samples.append(rest[:length])
        rest = rest[length + len(separator):]
    assert len(rest) == length + 1 and rest.endswith("\n")
    return samples + [rest[:length]]


def _loaded_note(err: str) -> bool:
    """Whether stderr is the one note naming the checkpoint sample loaded."""
    return err.count("\n") == 1 and err.startswith("charrnn: note: loaded ")


# -- sample -------------------------------------------------------------------------------------
def test_sample_prints_the_prime_and_its_continuation(run_dir, capsys):
    code, out, err = _run(capsys, "sample", run_dir, "--prime", "the ", "--length", "80", "--seed", "3")
    assert code == 0 and _loaded_note(err)
    assert out.startswith("the ") and out.endswith("\n")
    assert len(out) == len("the ") + 80 + 1
    assert set(out) <= set(TEXT)


def test_sample_is_reproducible_with_a_seed_and_separates_samples(run_dir, capsys):
    argv = ["sample", run_dir, "--length", "50", "--num-samples", "3", "--seed", "11"]
    _, first, _ = _run(capsys, *argv)
    _, again, _ = _run(capsys, *argv)
    assert first == again
    samples = _split(first, 3, 50)
    assert len(set(samples)) > 1


def test_samples_made_in_batches_are_all_printed_in_order(run_dir, capsys):
    argv = ["sample", run_dir, "--prime", "the ", "--length", "30", "--num-samples", "5", "--seed", "4"]
    code, batched, err = _run(capsys, *argv, "--batch-size", "2")
    assert code == 0 and _loaded_note(err)
    samples = _split(batched, 5, 34)
    assert all(text.startswith("the ") for text in samples) and len(set(samples)) > 1
    assert _run(capsys, *argv, "--batch-size", "2")[1] == batched
    # Greedy samples are all the same, however they are batched, and in bfloat16 too.
    greedy = ["sample", run_dir, "--prime", "the ", "--length", "30", "--num-samples", "3", "--greedy"]
    one_by_one = _run(capsys, *greedy, "--batch-size", "1")[1]
    assert len(set(_split(one_by_one, 3, 34))) == 1
    assert _run(capsys, *greedy)[1] == one_by_one
    code, out, _ = _run(capsys, *greedy, "--dtype", "bfloat16")
    assert code == 0 and len(_split(out, 3, 34)) == 3


def test_sample_greedy_matches_the_library_on_a_checkpoint_folder(run_dir, capsys):
    latest = run_dir / "checkpoints" / "latest"
    loaded = load_model(latest)
    expected = sample_text(loaded.model, loaded.vocabulary, prime="line", length=40, greedy=True)
    code, out, _ = _run(capsys, "sample", latest, "--prime", "line", "--length", "40", "--greedy")
    assert code == 0 and out == "line" + expected + "\n"


def test_sample_reads_a_prime_file(run_dir, tmp_path, capsys):
    prime = tmp_path / "prime.txt"
    prime.write_text("the lazy", encoding="utf-8")
    code, out, _ = _run(capsys, "sample", run_dir, "--prime-file", prime, "--length", "10", "--seed", "1")
    assert code == 0 and out.startswith("the lazy") and len(out) == len("the lazy") + 11


def test_sample_names_unknown_prime_characters(run_dir, tmp_path, capsys):
    code, out, err = _run(capsys, "sample", run_dir, "--prime", "the ZOO")
    assert code == 2 and out == ""
    assert err == ("charrnn: error: prime: 2 character(s) not in the vocabulary: 'Z' at offset 4, "
                   "'O' at offset 5; pass --skip-unknown to drop them\n")
    prime = tmp_path / "bad.txt"
    prime.write_text("ZZ top", encoding="utf-8")
    code, _, err = _run(capsys, "sample", run_dir, "--prime-file", prime)
    assert code == 2 and err.startswith(f"charrnn: error: {prime}: prime: 1 character(s)")
    code, out, _ = _run(capsys, "sample", run_dir, "--prime", "the ZOO", "--skip-unknown", "--length", "5")
    assert code == 0 and out.startswith("the ") and len(out) == len("the ") + 6  # the prime really used


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "0"], "--temperature must be a number > 0, got 0.0"),
    (["--top-k", "0"], "sample: --top-k must be a positive integer, got 0"),
    (["--top-p", "1.5"], r"--top-p must be a number in (0, 1], got 1.5"),
    (["--length", "-3"], "sample: --length must be an integer >= 0, got -3"),
    (["--num-samples", "0"], "sample: --num-samples must be a positive integer, got 0"),
    (["--batch-size", "0"], "sample: --batch-size must be a positive integer, got 0"),
    (["--temperature", "warm"], "sample: argument --temperature: invalid float value: 'warm'"),
])
def test_sample_refuses_bad_values_in_one_line(run_dir, capsys, flags, message):
    code, out, err = _run(capsys, "sample", run_dir, *flags)
    assert code == 2 and out == ""
    assert err == f"charrnn: error: {message}\n"


def test_sample_names_a_missing_checkpoint(tmp_path, capsys):
    code, _, err = _run(capsys, "sample", tmp_path / "nowhere")
    assert code == 2 and err == (f"charrnn: error: {tmp_path / 'nowhere'}: no such checkpoint, run directory or "
                                f"pretrained model (pretrained: shakespeare; `charrnn models` lists them)\n")


# -- eval ------------------------------------------------------------------------------------------
def test_eval_prints_nats_and_bits_matching_the_library(run_dir, tmp_path, capsys):
    text_file = tmp_path / "held_out.txt"
    text_file.write_text(TEXT[:900], encoding="utf-8")
    code, out, err = _run(capsys, "eval", run_dir, text_file, "--batch-size", "4", "--sequence-length", "32")
    assert code == 0 and err == ""
    lines = out.splitlines()
    loss = float(lines[0].split()[1])
    bits = float(lines[1].split()[-1])
    assert lines[0].endswith("nats/character")
    assert bits == pytest.approx(loss / math.log(2), abs=2e-4)
    loaded = load_model(run_dir)
    expected = evaluate(loaded.model, loaded.vocabulary.encode(TEXT[:900]), batch_size=4, sequence_length=32)
    assert loss == pytest.approx(expected.loss, abs=1e-4)
    assert f"characters: {expected.num_characters:,} predicted" in lines[2]
    assert 0 < loss < math.log(loaded.vocabulary.size) + 0.5  # a trained model: better than chance-ish


def test_eval_json_and_a_checkpoint_folder(run_dir, tmp_path, capsys):
    text_file = tmp_path / "held_out.txt"
    text_file.write_text(TEXT[:500], encoding="utf-8")
    code, out, _ = _run(capsys, "eval", run_dir / "checkpoints" / "latest", text_file, "--json", "--batch-size", "1")
    assert code == 0
    result = json.loads(out)
    assert result["num_characters"] == 499  # one stream: every character but the first is predicted
    assert result["bits_per_character"] == pytest.approx(result["loss"] / math.log(2))
    assert result["checkpoint"].endswith("latest")


def test_eval_names_unknown_characters_or_skips_them(run_dir, tmp_path, capsys):
    text_file = tmp_path / "odd.txt"
    text_file.write_text("the quick brown fox Jumps over the lazy dog.\n" * 3, encoding="utf-8")
    code, out, err = _run(capsys, "eval", run_dir, text_file)
    assert code == 2 and out == ""
    assert err == (f"charrnn: error: {text_file}: 1 character(s) not in the vocabulary: 'J' at offset 20; "
                   f"pass --skip-unknown to drop them\n")
    code, out, _ = _run(capsys, "eval", run_dir, text_file, "--skip-unknown", "--json")
    assert code == 0 and json.loads(out)["skipped_characters"] == 3


@pytest.mark.parametrize("content, flags, message", [
    (b"\xff\xfe bad", [], "not valid utf-8 text: byte 0xff at byte offset 0"),
    (b"t", [], "cannot evaluate a text of 1 character(s)"),
    (b"the fox", ["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
])
def test_eval_refuses_bad_input_in_one_line(run_dir, tmp_path, capsys, content, flags, message):
    text_file = tmp_path / "input.txt"
    text_file.write_bytes(content)
    code, out, err = _run(capsys, "eval", run_dir, text_file, *flags)
    assert code == 2 and out == ""
    assert err.startswith("charrnn: error: ") and message in err and err.count("\n") == 1
