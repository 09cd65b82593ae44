"""The lecture's examples, end to end, each ending with a verdict.

Every example is a function ``example_<name>(options, say) -> ExampleResult`` where ``say``
prints a line (``print`` by default); :func:`run_lecture` runs several in order. The code
follows the lecture's TensorFlow 1 programs line by line, with charrnn's building blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from charrnn.cells import MultiRNNCell, make_cell
from charrnn.layers import Dense
from charrnn.losses import sequence_loss
from charrnn.devices import num_threads
from charrnn.optim import make_optimizer
from charrnn.unroll import dynamic_rnn
from charrnn.vocabulary import Vocabulary, one_hot
from charrnn.windows import sliding_windows, text_from_windows

LONG_SEQUENCE = " if you want you"
LONG_SENTENCE = ("if you want to build a ship, don't drum up people together to "
                 "collect wood and don't assign them tasks and work, but rather "
                 "teach them to long for the endless immensity of the sea.")

# The lecture's hand-written one-hot rows for 'hello' with the vocabulary [h, e, l, o].
HELLO_ONE_HOT = {"h": [1, 0, 0, 0], "e": [0, 1, 0, 0], "l": [0, 0, 1, 0], "o": [0, 0, 0, 1]}

# What the lecture printed for its stratified splits (scikit-learn 0.19 at the time).
LECTURE_KFOLD_TEST = [[2, 5, 8], [1, 4, 6], [0, 3, 7]]
LECTURE_SHUFFLE_SPLIT = [([1, 5, 4, 2, 7, 6], [3, 8, 0]), ([8, 6, 5, 7, 1, 0], [3, 2, 4]),
                         ([8, 7, 4, 2, 1, 5], [6, 3, 0])]
LECTURE_TRAIN_TEST_SPLIT = ([1, 5, 4, 2, 7, 6], [3, 8, 0])
# The same K-fold call with scikit-learn >= 0.20.
CURRENT_KFOLD_TEST = [[2, 5, 7], [1, 4, 6], [0, 3, 8]]


@dataclass
class LectureOptions:
    """Settings shared by the examples; None means the lecture's own value."""

    seed: int = 0
    every: int | None = None
    cell: str | None = None
    dense: bool = False
    iterations: int | None = None
    optimizer: str = "tf-adam"
    kfold: str = "current"


@dataclass
class ExampleResult:
    """What an example found: whether it reached the lecture's outcome, and why."""

    name: str
    passed: bool
    verdict: str
    details: dict = field(default_factory=dict)


Say = Callable[[str], None]


def _hello_batch(words: list[str]) -> torch.Tensor:
    return torch.tensor([[HELLO_ONE_HOT[c] for c in word] for word in words], dtype=torch.float32)


def _cell(options: LectureOptions, default: str, num_units: int):
    return make_cell(options.cell or default, num_units)


def _shape_example(name: str, words: list[str], options: LectureOptions, say: Say) -> ExampleResult:
    torch.manual_seed(options.seed)
    hidden_size = 2
    cell = _cell(options, "rnn", hidden_size)
    x_data = _hello_batch(words)  # (B, T, 4)
    say(f"x_data {tuple(x_data.shape)}  # {', '.join(words)}")
    say(str(x_data.numpy()))
    with torch.no_grad():
        outputs, _ = dynamic_rnn(cell, x_data)  # (B, T, 2)
    say(f"outputs {tuple(outputs.shape)}")
    say(str(outputs.numpy()))
    expected = (len(words), len(words[0]), hidden_size)
    passed = tuple(outputs.shape) == expected
    return ExampleResult(name, passed, f"outputs {tuple(outputs.shape)}, expected {expected}",
                         {"outputs": outputs})


def example_cell(options: LectureOptions, say: Say = print) -> ExampleResult:
    """``BasicRNNCell(2)`` on one one-hot input: output_size 2, state_size 2, outputs (1, 1, 2)."""
    torch.manual_seed(options.seed)
    cell = _cell(options, "rnn", 2)
    say(f"output_size {cell.output_size}, state_size {cell.state_size}")
    x_data = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])  # (1, 1, 4)
    say(f"x_data {tuple(x_data.shape)}: {x_data.tolist()}")
    with torch.no_grad():
        outputs, _ = dynamic_rnn(cell, x_data)
    say(f"outputs {tuple(outputs.shape)}: {outputs.numpy()}")
    passed = cell.output_size == 2 and tuple(outputs.shape) == (1, 1, 2)
    return ExampleResult("cell", passed, f"output_size {cell.output_size}, state_size {cell.state_size}, "
                         f"outputs {tuple(outputs.shape)}, expected 2, 2, (1, 1, 2)")


def example_unroll(options: LectureOptions, say: Say = print) -> ExampleResult:
    """'hello' as five one-hot steps ``(1, 5, 4)`` unrolled into outputs ``(1, 5, 2)``."""
    return _shape_example("unroll", ["hello"], options, say)


def example_batch(options: LectureOptions, say: Say = print) -> ExampleResult:
    """'hello', 'eolll', 'lleel' as a batch ``(3, 5, 4)`` unrolled into ``(3, 5, 2)``."""
    return _shape_example("batch", ["hello", "eolll", "lleel"], options, say)


class LectureModel(nn.Module):
    """The lecture's network: a cell (or stack) unrolled by ``dynamic_rnn``, optionally a dense layer.

    Without the dense layer the cell's outputs are the logits, as in the lecture's hihello.
    """

    def __init__(self, cell, input_size: int, num_classes: int | None = None):
        super().__init__()
        self.cell = cell
        self.cell.build(input_size)
        self.dense = Dense(num_classes, input_size=cell.output_size) if num_classes else None

    def forward(self, x_one_hot: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` one-hot inputs -> ``(B, T, classes)`` logits."""
        outputs, _ = dynamic_rnn(self.cell, x_one_hot)  # (B, T, hidden_size)
        return outputs if self.dense is None else self.dense(outputs)


def fit(model: LectureModel, x_one_hot: torch.Tensor, targets: torch.Tensor, iterations: int,
        learning_rate: float, optimizer_name: str, every: int, describe: Callable[[torch.Tensor], str],
        say: Say) -> tuple[float, torch.Tensor]:
    """The lecture's loop: Adam on ``sequence_loss`` with unit weights, printing every ``every``.

    Each printed line holds the iteration, the loss before the update, and the argmax
    prediction after it, as the lecture's ``sess.run`` pair does. Returns the last loss and
    the final prediction ``(B, T)``.
    """
    optimizer = make_optimizer(optimizer_name, model.parameters(), learning_rate)
    weights = torch.ones(targets.shape)
    loss = torch.tensor(float("nan"))
    for iteration in range(iterations):
        loss = sequence_loss(model(x_one_hot), targets, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if every and (iteration % every == 0 or iteration == iterations - 1):
            with torch.no_grad():
                prediction = model(x_one_hot).argmax(dim=2)
            say(f"{iteration} loss: {loss.item():.6g} prediction: {describe(prediction)}")
    with torch.no_grad():
        prediction = model(x_one_hot).argmax(dim=2)  # (B, T)
    return loss.item(), prediction


def example_hihello(options: LectureOptions, say: Say = print) -> ExampleResult:
    """Teach 'hihell' -> 'ihello' with ``BasicLSTMCell(5)``, Adam 0.1, 2000 iterations.

    The lecture uses the LSTM's outputs directly as logits. They lie in (-1, 1), so the loss
    cannot fall below ``-log(e / (e + 4/e)) ≈ 0.433``; the lecture's printed 1.58e-05 must
    have come from a model with a projection, which ``options.dense`` adds.
    """
    torch.manual_seed(options.seed)
    idx2char = ["h", "i", "e", "l", "o"]  # the lecture's own order
    x_data = torch.tensor([[0, 1, 0, 2, 3, 3]])  # hihell
    y_data = torch.tensor([[1, 0, 2, 3, 3, 4]])  # ihello
    num_classes = hidden_size = len(idx2char)
    x_one_hot = one_hot(x_data, num_classes)  # (1, 6, 5)
    cell = _cell(options, "lstm", hidden_size)
    model = LectureModel(cell, num_classes, num_classes if options.dense else None)
    iterations = options.iterations or 2000

    def describe(prediction):
        return f"{prediction.tolist()} true Y: {y_data.tolist()} str: {''.join(idx2char[i] for i in prediction[0])}"

    loss, prediction = fit(model, x_one_hot, y_data, iterations, 0.1, options.optimizer,
                           options.every or 200, describe, say)
    text = "".join(idx2char[i] for i in prediction[0])
    floor = "" if options.dense else (
        " (without a dense layer the loss cannot go below 0.433: LSTM outputs lie in (-1, 1); "
        "the lecture's 1.58e-05 needs --dense)")
    return ExampleResult("hihello", text == "ihello",
                         f"predicts {text!r} (expected 'ihello'), final loss {loss:.4g}{floor}",
                         {"prediction": text, "loss": loss})


def _train_on_text(windows_x: torch.Tensor, windows_y: torch.Tensor, vocabulary: Vocabulary,
                   cell, iterations: int, options: LectureOptions, say: Say, default_every: int,
                   describe: Callable[[torch.Tensor], str]):
    x_one_hot = one_hot(windows_x, vocabulary.size)  # (B, T, V)
    model = LectureModel(cell, vocabulary.size, vocabulary.size)
    return fit(model, x_one_hot, windows_y, iterations, 0.1, options.optimizer,
               options.every or default_every, describe, say)


def example_long_sequence(options: LectureOptions, say: Say = print) -> ExampleResult:
    """``' if you want you'``: LSTM (hidden = vocabulary size) + dense, 50 iterations."""
    torch.manual_seed(options.seed)
    vocabulary = Vocabulary.from_text(LONG_SEQUENCE)
    ids = torch.from_numpy(vocabulary.encode(LONG_SEQUENCE))
    x_data, y_data = ids[:-1].unsqueeze(0), ids[1:].unsqueeze(0)  # (1, 15) each
    cell = _cell(options, "lstm", vocabulary.size)
    _, prediction = _train_on_text(x_data, y_data, vocabulary, cell,
                                   options.iterations or 50, options, say, 5,
                                   lambda p: repr(vocabulary.decode(p[0])))
    text = vocabulary.decode(prediction[0])
    expected = LONG_SEQUENCE[1:]
    return ExampleResult("long-sequence", text == expected, f"predicts {text!r} (expected {expected!r})",
                         {"prediction": text})


def example_long_sentence(options: LectureOptions, say: Say = print) -> ExampleResult:
    """The 180-character sentence: windows of 10, a 2-layer LSTM stack + dense, 500 iterations."""
    torch.manual_seed(options.seed)
    sequence_length = 10
    vocabulary = Vocabulary.from_text(LONG_SENTENCE)
    x_windows, y_windows = sliding_windows(vocabulary.encode(LONG_SENTENCE), sequence_length)  # (170, 10)
    say(f"{len(x_windows)} windows of {sequence_length}, e.g. 0 {vocabulary.decode(x_windows[0])!r} -> "
        f"{vocabulary.decode(y_windows[0])!r}, {len(x_windows) - 1} {vocabulary.decode(x_windows[-1])!r} -> "
        f"{vocabulary.decode(y_windows[-1])!r}")
    hidden_size = vocabulary.size
    kind = options.cell or "lstm"
    cell = MultiRNNCell([make_cell(kind, hidden_size) for _ in range(2)])

    def reconstruct(prediction):
        return text_from_windows([vocabulary.decode(row) for row in prediction])

    _, prediction = _train_on_text(x_windows, y_windows, vocabulary, cell,
                                   options.iterations or 500, options, say, 50,
                                   lambda p: repr(reconstruct(p)[:60] + "..."))
    text = reconstruct(prediction)
    expected = LONG_SENTENCE[1:]
    mismatches = [i for i, (a, b) in enumerate(zip(text, expected)) if a != b]
    say(text)
    # The first window has seen only "i", which cannot tell its next character apart.
    passed = len(text) == len(expected) and all(i == 0 for i in mismatches)
    return ExampleResult("long-sentence", passed,
                         f"reconstructed {len(text)} characters, {len(mismatches)} differ from the sentence "
                         f"(allowed: the first only){'' if not mismatches else ' at ' + str(mismatches[:10])}",
                         {"prediction": text})


def stratified_splits(kfold: str = "current") -> dict:
    """The lecture's three stratified splits of its 9-sample, 1:2 imbalanced data.

    ``kfold='current'`` uses today's ``StratifiedKFold``; ``'sklearn-0.19'`` reproduces the
    folds the lecture printed. Returns lists of ``(train, test)`` index lists.
    """
    # Imported here: scikit-learn takes a second to import, and only this example needs it.
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit, train_test_split

    from charrnn.splits import Sklearn019StratifiedKFold

    seed, splits = 0, 3
    X = np.array([-5, -3, -1, 1, 3, 5, 7, 9, 11])
    Y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    if kfold == "current":
        kfold_splitter = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    elif kfold == "sklearn-0.19":
        kfold_splitter = Sklearn019StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    else:
        raise ValueError(f"kfold must be 'current' or 'sklearn-0.19', got {kfold!r}")
    shuffle_splitter = StratifiedShuffleSplit(n_splits=splits, random_state=seed, test_size=0.3)
    train, test = train_test_split(np.arange(X.shape[0]), shuffle=True, stratify=Y, test_size=0.3,
                                   random_state=seed)
    as_lists = lambda pairs: [(a.tolist(), b.tolist()) for a, b in pairs]  # noqa: E731
    return {"kfold": (repr(kfold_splitter), as_lists(kfold_splitter.split(X, Y))),
            "shuffle_split": (repr(shuffle_splitter), as_lists(shuffle_splitter.split(X, Y))),
            "train_test_split": (train.tolist(), test.tolist())}


def example_stratified(options: LectureOptions, say: Say = print) -> ExampleResult:
    """StratifiedKFold, StratifiedShuffleSplit and stratified train_test_split, as printed."""
    splits = stratified_splits(options.kfold)
    for key in ("kfold", "shuffle_split"):
        description, pairs = splits[key]
        say(description)
        say("=" * 60)
        for train, test in pairs:
            say(f"train index: {np.array(train)}")
            say(f"test index: {np.array(test)}")
            say("-" * 60)
    train, test = splits["train_test_split"]
    say(f"train_test_split train index: {np.array(train)}")
    say(f"train_test_split test index: {np.array(test)}")
    expected_kfold = LECTURE_KFOLD_TEST if options.kfold == "sklearn-0.19" else CURRENT_KFOLD_TEST
    kfold_ok = [test for _, test in splits["kfold"][1]] == expected_kfold
    shuffle_ok = splits["shuffle_split"][1] == [(list(a), list(b)) for a, b in LECTURE_SHUFFLE_SPLIT]
    split_ok = (train, test) == tuple(map(list, LECTURE_TRAIN_TEST_SPLIT))
    kfold_note = ("K-fold equals the lecture's (scikit-learn 0.19 algorithm)" if options.kfold == "sklearn-0.19"
                  else "K-fold is today's scikit-learn (the lecture's 0.19 folds: --kfold sklearn-0.19)")
    return ExampleResult("stratified", kfold_ok and shuffle_ok and split_ok,
                         f"{kfold_note}: {'ok' if kfold_ok else 'DIFFERS'}; shuffle split equals the "
                         f"lecture's: {shuffle_ok}; train_test_split equals the lecture's: {split_ok}",
                         {"splits": splits})


EXAMPLES: dict[str, Callable[[LectureOptions, Say], ExampleResult]] = {
    "cell": example_cell,
    "unroll": example_unroll,
    "batch": example_batch,
    "hihello": example_hihello,
    "long-sequence": example_long_sequence,
    "long-sentence": example_long_sentence,
    "stratified": example_stratified,
}


def run_lecture(names: list[str] | None = None, options: LectureOptions | None = None,
                say: Say = print) -> list[ExampleResult]:
    """Run the named examples (all when ``names`` is empty) and print a verdict line for each."""
    options = options or LectureOptions()
    names = names or list(EXAMPLES)
    unknown = [name for name in names if name not in EXAMPLES]
    if unknown:
        raise ValueError(f"unknown example {unknown[0]!r}; expected one of {', '.join(EXAMPLES)}")
    results = []
    with num_threads(1):  # the lecture's models are tiny: threads cost more than they give
        for name in names:
            say(f"== {name} ==")
            result = EXAMPLES[name](options, say)
            say(f"verdict: {name}: {'PASS' if result.passed else 'FAIL'} - {result.verdict}")
            results.append(result)
    return results
