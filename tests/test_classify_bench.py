"""bench/bench_classify.py: its sets are built deterministically, its baseline is the full grid, and it runs."""

import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_classify


def corpus(path: Path, speakers: int = 14) -> Path:
    """A play in tinyshakespeare's layout: ``NAME:`` then lines, speeches split by blank lines."""
    rng = np.random.default_rng(0)
    speeches = []
    for k in range(speakers):
        for turn in range(3):
            lines = [f"line {k}-{turn}-{i} " + "".join(rng.choice(list("abcdefgh"), 30)) for i in range(40 - 2 * k)]
            speeches.append(f"SPEAKER {chr(65 + k)}:\n" + "\n".join(lines))
    path.write_text("\n\n".join(speeches) + "\n", encoding="utf-8")
    return path


def test_speaker_set_is_deterministic_many_class_and_100_to_1(tmp_path):
    path = corpus(tmp_path / "play.txt")
    texts, labels = bench_classify.speaker_lines(path, classes=12, largest=100, max_chars=20)
    again = bench_classify.speaker_lines(path, classes=12, largest=100, max_chars=20)
    assert (texts, labels) == again
    counts = Counter(labels)
    assert len(counts) == 12 and max(counts.values()) == 100 and min(counts.values()) == 1
    assert counts.most_common(1)[0][0] == "SPEAKER A"  # the speaker with the most lines comes first
    assert all(len(text) <= 20 for text in texts)


def test_baseline_grid_is_the_issues_sixteen_pipelines(tmp_path):
    search = bench_classify.baseline_search(3, quick=False, cache=str(tmp_path))
    grid = search.param_grid
    assert grid["tfidf__analyzer"] == ["char", "char_wb"]
    assert grid["tfidf__ngram_range"] == [(1, 4), (2, 5)]
    assert grid["lr__C"] == [1.0, 10.0] and grid["lr__class_weight"] == [None, "balanced"]
    assert search.scoring == "f1_macro" and search.cv.get_n_splits() == 3


def test_paired_difference_and_its_error():
    ours = {"folds_macro_f1": [0.80, 0.82, 0.84]}
    theirs = {"folds_macro_f1": [0.79, 0.80, 0.83]}
    difference, error = bench_classify.paired_difference(ours, theirs)
    assert difference == pytest.approx(0.04 / 3)
    assert error == pytest.approx(np.std([0.01, 0.02, 0.01], ddof=1) / np.sqrt(3))


def test_a_smoke_run_writes_results_and_a_verdict(tmp_path, capsys):
    names = tmp_path / "names"
    names.mkdir()
    rng = np.random.default_rng(1)
    (names / "female.txt").write_text("\n".join(f"{''.join(rng.choice(list('klmn'), 4))}a{i}" for i in range(60)))
    (names / "male.txt").write_text("\n".join(f"{''.join(rng.choice(list('klmn'), 4))}o{i}" for i in range(30)))
    results = tmp_path / "out.json"
    status = bench_classify.main(["--data", str(names), "--speakers", str(corpus(tmp_path / "play.txt")),
                                  "--datasets", "full", "--folds", "2", "--quick", "--epochs", "1",
                                  "--results", str(results)])
    report = json.loads(results.read_text())
    row = report["datasets"]["full"]["models"]["tuned TF-IDF + LR (inner CV per fold)"]
    assert len(row["folds_macro_f1"]) == 2 and len(row["chosen"]) == 2
    if bench_classify.BEST_SETTING.get("ngrams"):  # the best setting's two parts, scored from the same fits
        best = report["datasets"]["full"]["models"]["charrnn best setting"]
        assert set(best["parts"]) == {"RNN", "n-gram"}
        assert all(len(part["folds_macro_f1"]) == 2 for part in best["parts"].values())
        assert all("ngram_weight" in chosen for chosen in best["chosen"])
    verdict = report["verdicts"][0]
    assert status == (0 if verdict["passed"] else 1)
    assert re.search(r"\(-?\+?[0-9.]+ ± [0-9.]+, (within|beyond) noise\)", verdict["detail"]), verdict["detail"]
    out = capsys.readouterr().out
    assert "baseline chosen per fold: " in out
    if bench_classify.BEST_SETTING.get("ngrams"):
        assert "  its RNN part alone (same fits)" in out and "charrnn best chose per fold: tau" in out
