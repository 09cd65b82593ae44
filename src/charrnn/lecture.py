"""The lecture's examples, end to end, each ending with a verdict.

Every example is a function ``example_<name>(options, say) -> ExampleResult`` where ``say``
prints a line (``print`` by default); :func:`run_lecture` runs several in order. The code
follows the lecture's TensorFlow 1 programs line by line, with charrnn's building blocks.

The three examples that train (:data:`TRAINING_EXAMPLES`: hihello, ``' if you want you'``, the
long sentence) share one loop, :class:`LectureTraining`, which takes one iteration per
:meth:`~LectureTraining.step`: ``charrnn lecture`` runs it through :func:`fit`, and
``charrnn studio`` drives the same object from its page, so both give the same numbers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from charrnn.cells import CELL_TYPES, MultiRNNCell, make_cell
from charrnn.checks import check_choice, check_integer, check_number, flag
from charrnn.errors import SettingError
from charrnn.layers import Dense
from charrnn.losses import sequence_loss
from charrnn.devices import num_threads
from charrnn.optim import make_optimizer
from charrnn.unroll import dynamic_rnn
from charrnn.vocabulary import Vocabulary, one_hot
from charrnn.windows import sliding_windows

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
        return self.run(x_one_hot)[1]

    def run(self, x_one_hot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, C)`` one-hot inputs -> the (top) cell's outputs ``(B, T, hidden_size)`` and the logits."""
        outputs, _ = dynamic_rnn(self.cell, x_one_hot)  # (B, T, hidden_size)
        return outputs, (outputs if self.dense is None else self.dense(outputs))


@dataclass(frozen=True)
class TrainingExample:
    """One of the lecture's training examples: its data and the lecture's own settings for it.

    ``inputs`` and ``targets`` are ``(B, T)`` ids (``targets`` one step ahead); ``characters``
    maps an id to its character (hihello keeps the lecture's own order ``h, i, e, l, o``).
    """

    name: str
    inputs: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T)
    characters: tuple[str, ...]
    cell: str
    hidden_size: int
    num_layers: int
    dense: bool
    iterations: int
    every: int
    learning_rate: float = 0.1

    @property
    def num_classes(self) -> int:
        """How many characters the example tells apart (its one-hot width)."""
        return len(self.characters)

    def positions(self) -> list[tuple[int, int]]:
        """``(row, t)`` of each character of the text, in reading order: the first row whole, then
        the last step of each later row (for the sentence's overlapping windows; one row otherwise)."""
        rows, steps = self.inputs.shape
        return [(0, t) for t in range(steps)] + [(row, steps - 1) for row in range(1, rows)]

    def read(self, ids: torch.Tensor) -> str:
        """The text that ``(B, T)`` ids spell, read as :meth:`positions` orders them."""
        return "".join(self.characters[int(ids[row, t])] for row, t in self.positions())


def hihello_example() -> TrainingExample:
    """'hihell' -> 'ihello': ``BasicLSTMCell(5)``, its outputs the logits, Adam 0.1, 2000 iterations."""
    return TrainingExample("hihello", inputs=torch.tensor([[0, 1, 0, 2, 3, 3]]),  # hihell
                           targets=torch.tensor([[1, 0, 2, 3, 3, 4]]),  # ihello
                           characters=("h", "i", "e", "l", "o"),  # the lecture's own order
                           cell="lstm", hidden_size=5, num_layers=1, dense=False, iterations=2000, every=200)


def long_sequence_example() -> TrainingExample:
    """``' if you want you'``: LSTM (hidden = vocabulary size) + dense, 50 iterations."""
    vocabulary = Vocabulary.from_text(LONG_SEQUENCE)
    ids = torch.from_numpy(vocabulary.encode(LONG_SEQUENCE))
    return TrainingExample("long-sequence", inputs=ids[:-1].unsqueeze(0), targets=ids[1:].unsqueeze(0),  # (1, 15)
                           characters=tuple(vocabulary.characters), cell="lstm", hidden_size=vocabulary.size,
                           num_layers=1, dense=True, iterations=50, every=5)


def long_sentence_example(sequence_length: int = 10) -> TrainingExample:
    """The 180-character sentence: windows of 10, a 2-layer LSTM stack + dense, 500 iterations."""
    vocabulary = Vocabulary.from_text(LONG_SENTENCE)
    x_windows, y_windows = sliding_windows(vocabulary.encode(LONG_SENTENCE), sequence_length)  # (170, 10)
    return TrainingExample("long-sentence", inputs=x_windows, targets=y_windows,
                           characters=tuple(vocabulary.characters), cell="lstm", hidden_size=vocabulary.size,
                           num_layers=2, dense=True, iterations=500, every=50)


#: The examples that train, by name.
TRAINING_EXAMPLES: dict[str, Callable[[], TrainingExample]] = {
    "hihello": hihello_example,
    "long-sequence": long_sequence_example,
    "long-sentence": long_sentence_example,
}


@dataclass(frozen=True)
class LectureSettings:
    """What a learner may change in a training example; None means the lecture's own value."""

    seed: int = 0
    cell: str | None = None
    hidden_size: int | None = None
    learning_rate: float | None = None
    optimizer: str = "tf-adam"
    dense: bool | None = None


# The model is drawn from PyTorch's global generator (the cells take no generator of their own):
# one build at a time, on a forked generator state, so that builds in several threads (the
# studio's jobs) each see exactly their seed, and the caller's generator is left as it was.
_BUILD_LOCK = threading.Lock()


class LectureTraining:
    """The lecture's training loop, one iteration at a time.

    Adam on ``sequence_loss`` with unit weights, as the lecture's ``sess.run([loss, train])``:
    :meth:`step` runs one iteration and returns the loss before the update. ``charrnn lecture``
    (through :func:`fit`) and ``charrnn studio`` both drive this object, so the same seed and
    settings give the same numbers in both.
    """

    def __init__(self, model: LectureModel, x_one_hot: torch.Tensor, targets: torch.Tensor,
                 learning_rate: float, optimizer_name: str):
        self.model = model
        self.x_one_hot = x_one_hot  # (B, T, C)
        self.targets = targets  # (B, T)
        self.weights = torch.ones(targets.shape)  # (B, T)
        self.optimizer = make_optimizer(optimizer_name, model.parameters(), learning_rate)
        self.iteration = 0
        self.example: TrainingExample | None = None

    @classmethod
    def for_example(cls, example: TrainingExample, settings: LectureSettings = LectureSettings()) -> LectureTraining:
        """The model of ``example`` drawn from ``settings.seed``, ready to train.

        Raises :class:`~charrnn.errors.SettingError` for a setting out of range, among them a
        hidden size other than the number of characters without the dense layer (the cell's
        outputs are then the logits).
        """
        kind = check_choice("cell", settings.cell or example.cell, sorted(CELL_TYPES))
        hidden_size = check_integer("hidden_size", example.hidden_size if settings.hidden_size is None
                                    else settings.hidden_size)
        learning_rate = check_number("learning_rate", example.learning_rate if settings.learning_rate is None
                                     else settings.learning_rate, low=0, low_open=True)
        optimizer = check_choice("optimizer", settings.optimizer, ["adam", "tf-adam"])
        dense = example.dense if settings.dense is None else bool(settings.dense)
        if not dense and hidden_size != example.num_classes:
            raise SettingError(f"without the dense layer the cell's outputs are the logits: {flag('hidden_size')} "
                               f"must be {example.num_classes} (the number of characters), got {hidden_size}")
        seed = check_integer("seed", settings.seed, minimum=-2**63, maximum=2**64 - 1)  # torch.manual_seed's range
        with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if example.num_layers == 1:
                cell = make_cell(kind, hidden_size)
            else:
                cell = MultiRNNCell([make_cell(kind, hidden_size) for _ in range(example.num_layers)])
            model = LectureModel(cell, example.num_classes, example.num_classes if dense else None)
        training = cls(model, one_hot(example.inputs, example.num_classes), example.targets, learning_rate,
                       optimizer)
        training.example = example
        return training

    def step(self) -> torch.Tensor:
        """One iteration: the loss (a 0-d tensor, before the update), then the update."""
        loss = sequence_loss(self.model(self.x_one_hot), self.targets, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.iteration += 1
        return loss.detach()

    @torch.no_grad()
    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (top) cell's outputs ``(B, T, hidden_size)`` and the logits ``(B, T, classes)`` now."""
        return self.model.run(self.x_one_hot)

    def predict(self) -> torch.Tensor:
        """The argmax prediction ``(B, T)`` now, as the lecture's ``tf.argmax(outputs, axis=2)``."""
        return self.outputs()[1].argmax(dim=2)


def fit(model: LectureModel, x_one_hot: torch.Tensor, targets: torch.Tensor, iterations: int,
        learning_rate: float, optimizer_name: str, every: int, describe: Callable[[torch.Tensor], str],
        say: Say) -> tuple[float, torch.Tensor]:
    """The lecture's loop: Adam on ``sequence_loss`` with unit weights, printing every ``every``.

    Each printed line holds the iteration, the loss before the update, and the argmax
    prediction after it, as the lecture's ``sess.run`` pair does. Returns the last loss and
    the final prediction ``(B, T)``.
    """
    return train_and_print(LectureTraining(model, x_one_hot, targets, learning_rate, optimizer_name),
                           iterations, every, describe, say)


def train_and_print(training: LectureTraining, iterations: int, every: int,
                    describe: Callable[[torch.Tensor], str], say: Say) -> tuple[float, torch.Tensor]:
    """Run ``iterations`` of ``training``, printing a line every ``every`` as :func:`fit` does."""
    loss = torch.tensor(float("nan"))
    for iteration in range(iterations):
        loss = training.step()
        if every and (iteration % every == 0 or iteration == iterations - 1):
            say(f"{iteration} loss: {loss.item():.6g} prediction: {describe(training.predict())}")
    return loss.item(), training.predict()


def _settings(options: LectureOptions, name: str) -> LectureSettings:
    """The command line's options as one training example's settings (``--dense`` is hihello's)."""
    return LectureSettings(seed=options.seed, cell=options.cell, optimizer=options.optimizer,
                           dense=options.dense if name == "hihello" else None)


def _train_example(name: str, options: LectureOptions, say: Say, describe) -> tuple[TrainingExample, float,
                                                                                   torch.Tensor]:
    example = TRAINING_EXAMPLES[name]()
    training = LectureTraining.for_example(example, _settings(options, name))
    loss, prediction = train_and_print(training, options.iterations or example.iterations,
                                       options.every or example.every, lambda p: describe(example, p), say)
    return example, loss, prediction


def example_hihello(options: LectureOptions, say: Say = print) -> ExampleResult:
    """Teach 'hihell' -> 'ihello' with ``BasicLSTMCell(5)``, Adam 0.1, 2000 iterations.

    The lecture uses the LSTM's outputs directly as logits. They lie in (-1, 1), so the loss
    cannot fall below ``-log(e / (e + 4/e)) ≈ 0.433``; the lecture's printed 1.58e-05 must
    have come from a model with a projection, which ``options.dense`` adds.
    """
    def describe(example, prediction):
        return (f"{prediction.tolist()} true Y: {example.targets.tolist()} str: "
                f"{''.join(example.characters[i] for i in prediction[0])}")

    example, loss, prediction = _train_example("hihello", options, say, describe)
    text = example.read(prediction)
    floor = "" if options.dense else (
        " (without a dense layer the loss cannot go below 0.433: LSTM outputs lie in (-1, 1); "
        "the lecture's 1.58e-05 needs --dense)")
    return ExampleResult("hihello", text == "ihello",
                         f"predicts {text!r} (expected 'ihello'), final loss {loss:.4g}{floor}",
                         {"prediction": text, "loss": loss})


def example_long_sequence(options: LectureOptions, say: Say = print) -> ExampleResult:
    """``' if you want you'``: LSTM (hidden = vocabulary size) + dense, 50 iterations."""
    example, _, prediction = _train_example("long-sequence", options, say,
                                            lambda example, p: repr(example.read(p)))
    text = example.read(prediction)
    expected = LONG_SEQUENCE[1:]
    return ExampleResult("long-sequence", text == expected, f"predicts {text!r} (expected {expected!r})",
                         {"prediction": text})


def example_long_sentence(options: LectureOptions, say: Say = print) -> ExampleResult:
    """The 180-character sentence: windows of 10, a 2-layer LSTM stack + dense, 500 iterations."""
    example = long_sentence_example()
    x_windows, y_windows = example.inputs, example.targets  # (170, 10)
    decode = lambda row: "".join(example.characters[i] for i in row.tolist())  # noqa: E731
    say(f"{len(x_windows)} windows of {x_windows.shape[1]}, e.g. 0 {decode(x_windows[0])!r} -> "
        f"{decode(y_windows[0])!r}, {len(x_windows) - 1} {decode(x_windows[-1])!r} -> "
        f"{decode(y_windows[-1])!r}")
    _, _, prediction = _train_example("long-sentence", options, say,
                                      lambda example, p: repr(example.read(p)[:60] + "..."))
    text = example.read(prediction)
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
