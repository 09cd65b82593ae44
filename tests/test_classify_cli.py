"""``charrnn classify train|predict`` end to end, the data loaders, and their errors."""

import json

import numpy as np
import pytest

from charrnn.classification import load_dataset, load_table
from charrnn.classification.metrics import (
    classification_scores,
    format_confusion,
    summarize_folds,
)
from charrnn.cli import main

FAST = ["--epochs", "3", "--hidden-size", "8", "--embedding-size", "4", "--batch-size", "16",
        "--learning-rate", "0.02", "--device", "cpu", "--quiet"]


def write_names(folder, rng, per_class=None):
    """Three classes told apart by their last letter, 40:20:8, with one text in two classes."""
    folder.mkdir()
    per_class = per_class or {"ana": 40, "bob": 20, "cyx": 8}
    for label, count in per_class.items():
        lines = {"".join(rng.choice(list("klmnop"), rng.integers(2, 6))) + label[-1] for _ in range(count * 3)}
        lines = sorted(lines)[:count]
        (folder / f"{label}.txt").write_text("\n".join(lines + ["shared"]) + "\n\n", encoding="utf-8")
    return folder


def run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_train_with_cross_validation_then_predict(tmp_path, capsys):
    data = write_names(tmp_path / "names", np.random.default_rng(0))
    out = tmp_path / "model"
    status, stdout, _ = run(["classify", "train", str(data), "--out", str(out), "--cv", "3",
                             "--class-weight", "balanced", *FAST], capsys)
    assert status == 0
    assert "stratified 3-fold cross-validation" in stdout
    assert "1 text occurs more than once (2 extra copies), 1 of them under different labels" in stdout
    assert "macro f1" in stdout and "balanced accuracy" in stdout and "± " in stdout
    assert "true \\ predicted" in stdout
    assert "saved model: trained on all 71 texts (after cross-validation)" in stdout
    for name in ("config.json", "vocab.json", "labels.json", "model.safetensors", "evaluation.json",
                 "report.txt", "confusion.txt", "confusion.png"):
        assert (out / name).is_file(), name
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert len(evaluation["folds"]) == 3
    assert evaluation["duplicates"]["conflicting_texts"] == 1
    assert np.sum(evaluation["summary"]["confusion"]) == 71  # every text tested once
    assert json.loads((out / "labels.json").read_text()) == {"labels": ["ana", "bob", "cyx"]}

    queries = tmp_path / "queries.txt"
    queries.write_text("kolx\n\nmena\n", encoding="utf-8")
    status, stdout, stderr = run(["classify", "predict", str(out), "pona", "kélb", "--file", str(queries),
                                  "--top-k", "2"], capsys)
    assert status == 0
    lines = stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pona", "kélb", "kolx", "mena"]
    for line in lines:
        fields = line.split("\t")
        assert len(fields) == 3
        probabilities = [float(field.split(" ")[1]) for field in fields[1:]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert {field.split(" ")[0] for field in fields[1:]} <= {"ana", "bob", "cyx"}
    assert "never seen in training" in stderr and "'é'" in stderr


def test_train_with_hold_out(tmp_path, capsys):
    data = write_names(tmp_path / "names", np.random.default_rng(1))
    out = tmp_path / "model"
    status, stdout, _ = run(["classify", "train", str(data), "--out", str(out), "--test-size", "0.25",
                             "--balanced-sampler", "--cell", "gru-reset-after", *FAST], capsys)
    assert status == 0
    assert "stratified hold-out, test size 0.25" in stdout
    assert "saved model: trained on the hold-out's train side" in stdout
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert len(evaluation["folds"]) == 1
    assert evaluation["model"]["cell"] == "gru-reset-after"
    assert evaluation["training"]["balanced_sampler"] is True


def test_train_from_csv_and_tsv(tmp_path, capsys):
    rows = [("anna", "f"), ("maria", "f"), ("elena", "f"), ("bob", "m"), ("john", "m"), ("peter", "m")] * 2
    rows = [(f"{text}{i}", label) for i, (text, label) in enumerate(rows)]
    csv_path = tmp_path / "names.csv"
    csv_path.write_text("name,gender,extra\n" + "".join(f'"{t}",{g},x\n' for t, g in rows), encoding="utf-8")
    data = load_dataset(csv_path, text_column="name", label_column="gender")
    assert data.classes == ["f", "m"] and len(data) == 12
    tsv_path = tmp_path / "names.tsv"
    tsv_path.write_text("\ufefftext\tlabel\n" + "".join(f"{t}\t{g}\n" for t, g in rows), encoding="utf-8")
    assert load_table(tsv_path).texts == data.texts
    status, stdout, _ = run(["classify", "train", str(csv_path), "--text-column", "name", "--label-column",
                             "gender", "--out", str(tmp_path / "m"), "--cv", "2", *FAST], capsys)
    assert status == 0 and "2-fold" in stdout


@pytest.mark.parametrize("make, argv_tail, message", [
    (lambda p: p.mkdir(), [], "no <label>.txt files in this folder"),
    (lambda p: p.write_text("text,label\nab,x\n"), ["--text-column", "name"],
     "no column named 'name'; the header has 'text', 'label'"),
    (lambda p: p.write_text("text,category\nab,x\n"), [], "no column named 'label'"),
    (lambda p: p.write_bytes(b"text,label\n\xff\xfe,x\n"), [], "not UTF-8 text"),
])
def test_bad_data_is_one_clear_line(tmp_path, capsys, make, argv_tail, message):
    path = tmp_path / ("data" if not argv_tail and message.startswith("no <label>") else "data.csv")
    make(path)
    status, stdout, stderr = run(["classify", "train", str(path), "--out", str(tmp_path / "o"), *argv_tail, *FAST],
                                 capsys)
    assert status == 2
    assert stderr.startswith("charrnn: error: ") and message in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_class_smaller_than_folds(tmp_path, capsys):
    data = write_names(tmp_path / "names", np.random.default_rng(2), {"ana": 30, "bob": 3})
    status, _, stderr = run(["classify", "train", str(data), "--cv", "5", "--out", str(tmp_path / "o"), *FAST],
                            capsys)
    assert status == 2
    assert "class 'bob' has only 4 examples, fewer than the 5 that 5-fold cross-validation needs" in stderr


def test_other_errors(tmp_path, capsys):
    status, _, stderr = run(["classify", "train", str(tmp_path / "absent"), *FAST], capsys)
    assert status == 2 and "no such file or folder" in stderr
    one_class = tmp_path / "one"
    one_class.mkdir()
    (one_class / "only.txt").write_text("a\nb\n")
    status, _, stderr = run(["classify", "train", str(one_class), *FAST], capsys)
    assert status == 2 and "at least 2 classes, found 'only'" in stderr
    status, _, stderr = run(["classify", "predict", str(tmp_path / "absent"), "x"], capsys)
    assert status == 2 and "no such checkpoint folder" in stderr
    with pytest.raises(SystemExit):
        main(["classify", "train", str(one_class), "--cv", "3", "--test-size", "0.2"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["classify", "train", str(one_class), "--cv", "1"])
    assert stopped.value.code == 2
    assert "classify train: --cv must be an integer >= 2, got 1" in capsys.readouterr().err


def test_scores_match_hand_counts():
    scores = classification_scores([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0], 2)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["recall"] == pytest.approx([3 / 4, 1 / 2])
    assert scores["precision"] == pytest.approx([3 / 4, 1 / 2])
    assert scores["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert scores["macro_f1"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert scores["confusion"] == [[3, 1], [1, 1]]
    summary = summarize_folds([scores, classification_scores([0, 1], [0, 1], 2)])
    assert summary["accuracy"]["mean"] == pytest.approx((4 / 6 + 1) / 2)
    assert summary["accuracy"]["std"] == pytest.approx((1 - 4 / 6) / 2)
    assert summary["confusion"] == [[4, 1], [1, 2]]
    assert format_confusion(summary["confusion"], ["f", "m"]).splitlines()[1].split() == ["f", "4", "1"]
    # a class never predicted scores 0 rather than raising
    assert classification_scores([0, 1], [0, 0], 2)["precision"][1] == 0.0


def test_bidirectional_pooled_training_then_csv_predictions(tmp_path, capsys):
    import csv

    data = write_names(tmp_path / "names", np.random.default_rng(3))
    out = tmp_path / "model"
    status, stdout, _ = run(["classify", "train", str(data), "--out", str(out), "--bidirectional", "--pooling",
                             "final+max", "--validation-fraction", "0.2", "--logit-adjustment", "post-hoc",
                             "--ensemble", "2", *FAST], capsys)
    assert status == 0
    config = json.loads((out / "config.json").read_text())["model"]
    assert (config["bidirectional"], config["pooling"], config["ensemble"]) == (True, "final+max", 2)
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["training"]["validation_fraction"] == 0.2

    batch = tmp_path / "batch.txt"
    batch.write_text("kolx\n\nmena\n" + "pokb\n" * 5, encoding="utf-8")
    csv_path = tmp_path / "labels.csv"
    status, _, stderr = run(["classify", "predict", str(out), "first, with a comma", "--file", str(batch),
                             "--output", str(csv_path)], capsys)
    assert status == 0 and "8 texts labelled" in stderr
    rows = list(csv.reader(csv_path.open(encoding="utf-8", newline="")))
    assert rows[0] == ["text", "label", "p_ana", "p_bob", "p_cyx"]
    assert [row[0] for row in rows[1:4]] == ["first, with a comma", "kolx", "mena"]
    for row in rows[1:]:
        probabilities = [float(value) for value in row[2:]]
        assert abs(sum(probabilities) - 1) < 1e-4
        assert row[1] == ["ana", "bob", "cyx"][int(np.argmax(probabilities))]
    status, stdout, _ = run(["classify", "predict", str(out), "mena", "--output", "-"], capsys)
    assert status == 0 and stdout.splitlines()[0].startswith("text,label,p_ana")
    assert len(stdout.splitlines()) == 2


def test_csv_predictions_stream_a_chunk_at_a_time():
    from charrnn.classification import train_classifier
    from charrnn.classification.predict import write_predictions_csv
    from charrnn.classification.train import TrainingOptions

    classifier = train_classifier(["ab", "ba", "aab", "bba"], ["a", "b", "a", "b"], hidden_size=4, embedding_size=2,
                                  options=TrainingOptions(epochs=1, device="cpu"))
    pulled = []

    def texts():
        for number in range(25):
            pulled.append(number)
            yield "ab" * (number % 3 + 1)

    class Recorder:
        def __init__(self):
            self.rows_seen_at_pull = []  # how many texts had been read when each row was written

        def write(self, text):
            self.rows_seen_at_pull.append(len(pulled))

    handle = Recorder()
    assert write_predictions_csv(classifier, texts(), handle, chunk_size=10) == 25
    # The header before any text is read; then rows 1-10 after 10 texts, 11-20 after 20, and the rest.
    assert handle.rows_seen_at_pull == [0] + [10] * 10 + [20] * 10 + [25] * 5


def test_bad_new_flags_are_one_line(tmp_path, capsys):
    data = write_names(tmp_path / "names", np.random.default_rng(4))
    with pytest.raises(SystemExit) as stopped:
        main(["classify", "train", str(data), "--pooling", "median"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == ("charrnn: error: classify train: --pooling must be one of final, mean, max or "
                                       "several joined by '+' (e.g. final+max), got 'median'\n")
    status, _, stderr = run(["classify", "predict", str(tmp_path / "nothing"), "--file", str(tmp_path / "absent.txt"),
                             "--output", str(tmp_path / "o.csv")], capsys)
    assert status == 2 and len(stderr.strip().splitlines()) == 1


def test_label_file_from_python(tmp_path):
    import csv

    from charrnn.classification import TrainingOptions, label_file, train_classifier

    classifier = train_classifier(["ab", "ba", "aab", "bba"], ["a", "b", "a", "b"], hidden_size=4, embedding_size=2,
                                  options=TrainingOptions(epochs=1, device="cpu"))
    source = tmp_path / "in.txt"
    source.write_text("ab\n\n  ba  \n" * 3, encoding="utf-8")
    assert label_file(classifier, source, tmp_path / "out.csv", chunk_size=2) == 6
    rows = list(csv.reader((tmp_path / "out.csv").open(encoding="utf-8", newline="")))
    assert rows[0] == ["text", "label", "p_a", "p_b"] and [row[0] for row in rows[1:]] == ["ab", "ba"] * 3
