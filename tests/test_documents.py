"""``--documents-per-line`` (issue 14): each line its own text, read from a fresh state."""

import random

import numpy as np
import torch

from charrnn.checkpoint import load_model
from charrnn.files import load_tensors
from charrnn.training import train
from charrnn.training.documents import PADDING, document_batch, document_pieces
from conftest import run_cli

NAMES = ["Anna", "Bella", "Clara", "Dora", "Emma", "Flora", "Greta", "Hanna", "Ida", "Julia", "Karla", "Lena",
         "Mona", "Nora", "Olga", "Paula", "Rosa", "Sara", "Tina", "Vera", "Wanda", "Xena", "Yara", "Zora"]


def _names_file(path, count=1500):
    chooser = random.Random(0)
    path.write_text("".join(chooser.choice(NAMES) + "\n" for _ in range(count)), encoding="utf-8")
    return path


def test_each_line_is_a_padded_row_that_starts_after_a_line_break():
    ids = np.array([5, 6, 9, 9, 7, 9, 1, 2, 3], dtype=np.uint8)  # "ab\n\nc\nxyz" with 9 the line break
    starts, lengths = document_pieces(ids, newline=9, max_length=8)
    assert starts.tolist() == [0, 4, 6] and lengths.tolist() == [3, 2, 3]  # the empty line is no document
    x, y = document_batch(ids, starts, lengths, newline=9)
    assert x.tolist() == [[9, 5, 6], [9, 7, 0], [9, 1, 2]]
    assert y.tolist() == [[5, 6, 9], [7, 9, PADDING], [1, 2, 3]]  # the last line has no line break


def test_a_names_model_starts_every_line_from_a_fresh_state(tmp_path, capsys):
    corpus = _names_file(tmp_path / "names.txt")
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--documents-per-line",
                           "--max-steps", "300", "--hidden-size", "48", "--embedding-size", "16", "--batch-size", "16",
                           "--sequence-length", "16", "--threads", "1", "--quiet")
    assert code == 0, err
    loaded = load_model(tmp_path / "run")
    newline = loaded.vocabulary.index["\n"]
    with torch.no_grad():
        first = loaded.model(torch.tensor([[newline]]))[0][0, -1].softmax(-1)  # from the zero state
    capitals = [loaded.vocabulary.index[name[0]] for name in NAMES]
    assert first[capitals].sum() > 0.95  # a line starts with a name's capital
    code, out, _ = run_cli(capsys, "sample", tmp_path / "run", "--num-samples", "6", "--stop-at-newline",
                           "--length", "20", "--seed", "0", "--separator", "", "--temperature", "0.5")
    samples = [line for line in out.splitlines() if line]
    assert code == 0 and len(samples) == 6 and all(sample[0].isupper() for sample in samples), out
    assert sum(sample in NAMES for sample in samples) >= 4


def test_the_loss_of_a_document_does_not_depend_on_its_neighbours(tmp_path):
    from charrnn.corpus import prepare_corpus
    from charrnn.training import TrainConfig, language_model_trainer

    corpus = prepare_corpus([_names_file(tmp_path / "names.txt", 200)], tmp_path / "data")
    settings = TrainConfig(hidden_size=16, embedding_size=8, batch_size=4, sequence_length=16, documents_per_line=True,
                           device="cpu", num_threads=1, max_steps=1)
    trainer = language_model_trainer(settings, corpus)
    task, model = trainer.task, trainer.model.eval()
    x, y = task.next_batch()
    together = task.loss(model, (x, y))
    losses, counts = [], []
    for row in range(len(x)):
        width = int((y[row] != PADDING).sum())
        logits, _ = model(x[row:row + 1, :width])
        losses.append(torch.nn.functional.cross_entropy(logits[0], y[row, :width], reduction="sum"))
        counts.append(width)
    assert torch.allclose(together, sum(losses) / sum(counts), atol=1e-5)


def test_a_documents_run_resumes_bitwise(tmp_path):
    corpus = _names_file(tmp_path / "names.txt", 600)
    settings = {"hidden_size": 16, "embedding_size": 8, "batch_size": 8, "sequence_length": 16, "num_threads": 1,
                "device": "cpu", "max_steps": 40, "eval_every": 10, "documents_per_line": True}
    train(settings, [corpus], tmp_path / "whole", progress=False)
    train(settings, [corpus], tmp_path / "parts", progress=False,
          callback=lambda trainer: trainer.request_stop() if trainer.step == 17 else None)
    assert train(None, (), tmp_path / "parts", resume=True, progress=False).step == 40
    whole, parts = (load_tensors(tmp_path / name / "checkpoints" / "latest" / "model.safetensors")
                    for name in ("whole", "parts"))
    assert all(torch.equal(whole[name], parts[name]) for name in whole)


def test_a_text_without_line_breaks_is_refused_in_one_line(tmp_path, capsys):
    corpus = tmp_path / "one.txt"
    corpus.write_text("abc " * 500, encoding="utf-8")
    code, _, err = run_cli(capsys, "train", corpus, "--out", tmp_path / "run", "--documents-per-line")
    assert code == 2 and "--documents-per-line: the corpus has no line breaks" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
