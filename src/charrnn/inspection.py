"""What a model learned: its units' values on a text, its guesses, and units that track a feature.

The library core of ``charrnn inspect`` (issue 10). Three steps, each a plain function:

- :func:`record` runs a text through a :class:`~charrnn.model.CharLM` once and keeps, per
  character and per layer, the output ``h``, an LSTM's memory ``c`` and every gate after its
  nonlinearity, and the model's top-5 guesses for the next character with the surprise of the
  one that came (Karpathy's RNN post, 2015);
- :func:`saturation` counts how often each gate unit sits near 0 or near 1 (Karpathy, Johnson
  & Fei-Fei, "Visualizing and Understanding Recurrent Networks", 2015);
- :func:`score_units` measures how well each unit tracks a per-character feature of the text
  (:data:`FEATURES`: inside quotes, bracket depth, line position, ...), and :func:`best_units`
  ranks them.

Everything that comes out is a NumPy array. Shapes: ``T`` characters, ``N`` units per layer,
``V`` characters in the vocabulary, ``K = min(5, V)`` guesses.

Examples
--------
>>> import torch
>>> from charrnn.model import CharLM, CharLMConfig
>>> from charrnn.vocabulary import Vocabulary
>>> vocabulary = Vocabulary.from_text('ab "c"\\n')
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = CharLM(CharLMConfig(vocab_size=vocabulary.size, hidden_size=8, num_layers=2, embedding_size=4))
>>> recording = record(model, vocabulary, 'ab "c" a\\nb')
>>> recording.kinds(0)
['h', 'c', 'input', 'forget', 'output', 'candidate']
>>> recording.layers[1]["forget"].shape, recording.top_ids.shape, recording.surprise.shape
((10, 8), (10, 5), (10,))
>>> FEATURES["in_quotes"]('ab "c" a').tolist()
[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
>>> scores = score_units(recording, {"in_quotes": FEATURES["in_quotes"]})
>>> best = best_units(scores, "in_quotes", top=1)[0]
>>> (best.feature, best.kind in ("h", "c"), 0.5 <= best.auc <= 1.0)
('in_quotes', True, True)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.cells import (
    CELL_TYPES,
    BasicLSTMCell,
    GRUCell,
    LSTMStateTuple,
    MultiRNNCell,
    ResetAfterGRUCell,
)
from charrnn.checks import check_integer, check_number
from charrnn.errors import CharRNNError, SettingError
from charrnn.files import CheckpointError, load_tensors, save_tensors
from charrnn.vocabulary import UnknownCharacterError

#: The longest text :func:`record` takes by default. A recording keeps ``T x layers x kinds x N``
#: float32 values: an LSTM has 6 kinds (``h``, ``c`` and four gates), so 100,000 characters
#: through a 2 x 256 LSTM hold 1.2 GB, through a 2 x 512 one 2.5 GB (GRU: 4 kinds, RNN: 1).
MAX_CHARACTERS = 100_000
#: How many guesses for the next character are kept per position.
TOP_K = 5
#: Every kind a layer may have: the output, an LSTM's memory, the gates and the candidate.
ALL_KINDS = ("h", "c", "input", "forget", "output", "candidate", "reset", "update")
#: The kinds that are gates (sigmoid values in (0, 1)), whose saturation means something.
GATE_KINDS = ("input", "forget", "output", "reset", "update")


# -- recording -----------------------------------------------------------------------------------
@dataclass
class Recording:
    """A model's units and guesses over one text (made by :func:`record`).

    Attributes
    ----------
    text : str
        The text recorded (without the unknown characters ``skip_unknown`` dropped), ``T`` long.
    characters : list of str
        The vocabulary's characters in id order (``V``): ``characters[top_ids[t, k]]`` is the
        ``k``-th guess after character ``t``.
    ids : int64 array ``(T,)``
        The text's ids.
    cell_types : list of str
        Each layer's cell, bottom first (``'lstm'``, ``'gru'``, ``'gru-reset-after'``, ``'rnn'``).
    layers : list of dict
        Per layer, kind -> float32 ``(T, N)``: the value after reading character ``t``. Kinds:
        ``h`` (the output, every cell); an LSTM's ``c`` and its gates ``input`` σ(i),
        ``forget`` σ(f + forget_bias), ``output`` σ(o) and ``candidate`` tanh(g); a GRU's
        (either kind) ``reset`` σ(r), ``update`` σ(u) and ``candidate`` tanh(·).
    top_ids : int64 array ``(T, K)``
        After character ``t``, the ``K`` most likely next characters, most likely first.
    top_probabilities : float32 array ``(T, K)``
        Their probabilities (descending; a row sums to at most 1).
    surprise : float32 array ``(T,)``
        ``-ln p(text[t + 1])`` in nats, the surprise of the character that came next. The last
        character has no next one: its entry is NaN (``np.nanmean`` is the text's loss).
    """

    text: str
    characters: list[str]
    ids: np.ndarray
    cell_types: list[str]
    layers: list[dict[str, np.ndarray]]
    top_ids: np.ndarray
    top_probabilities: np.ndarray
    surprise: np.ndarray

    def __len__(self) -> int:
        return len(self.text)

    @property
    def num_layers(self) -> int:
        """How many layers were recorded."""
        return len(self.layers)

    @property
    def surprise_bits(self) -> np.ndarray:
        """:attr:`surprise` in bits ``(T,)``: nats divided by ln 2."""
        return self.surprise / np.float32(math.log(2))

    def kinds(self, layer: int) -> list[str]:
        """The kinds recorded for ``layer`` (0 is the bottom), e.g. ``['h', 'reset', 'update', 'candidate']``."""
        check_integer("layer", layer, minimum=0, maximum=self.num_layers - 1, as_flag=False)
        return list(self.layers[layer])

    def guesses(self, position: int) -> list[tuple[str, float]]:
        """After character ``position``, the ``K`` guesses as ``(character, probability)`` pairs."""
        check_integer("position", position, minimum=0, maximum=len(self) - 1, as_flag=False)
        return [(self.characters[index], float(probability))
                for index, probability in zip(self.top_ids[position], self.top_probabilities[position])]

    def save(self, path) -> None:
        """Write the recording to ``path`` as one safetensors file, atomically.

        Tensors ``layers.{l}.{kind}``, ``ids``, ``top_ids``, ``top_probabilities`` and
        ``surprise``; the text, the characters, the cell types and each layer's kinds are JSON
        strings in the file's metadata. Any safetensors reader opens it; :meth:`load` reads it back.
        """
        tensors = {f"layers.{layer}.{kind}": torch.from_numpy(values)
                   for layer, kinds in enumerate(self.layers) for kind, values in kinds.items()}
        tensors.update(ids=torch.from_numpy(self.ids), top_ids=torch.from_numpy(self.top_ids),
                       top_probabilities=torch.from_numpy(self.top_probabilities),
                       surprise=torch.from_numpy(self.surprise))
        metadata = {"format": "charrnn-recording", "text": json.dumps(self.text),
                    "characters": json.dumps(self.characters), "cell_types": json.dumps(self.cell_types),
                    "kinds": json.dumps([list(kinds) for kinds in self.layers])}
        save_tensors(path, tensors, metadata=metadata)

    @classmethod
    def load(cls, path) -> Recording:
        """Read a file written by :meth:`save`; anything else is a :class:`~charrnn.files.CheckpointError`."""
        tensors, metadata = load_tensors(path, with_metadata=True)
        try:
            if metadata.get("format") != "charrnn-recording":
                raise ValueError("not a charrnn recording")
            text, characters, cell_types, kinds = (json.loads(metadata[key])
                                                   for key in ("text", "characters", "cell_types", "kinds"))
            tensors = {name: tensor.numpy() for name, tensor in tensors.items()}
            layers = [{kind: tensors[f"layers.{layer}.{kind}"] for kind in layer_kinds}
                      for layer, layer_kinds in enumerate(kinds)]
            return cls(text, characters, tensors["ids"], cell_types, layers, tensors["top_ids"],
                       tensors["top_probabilities"], tensors["surprise"])
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise CheckpointError(f"{path}: not a charrnn recording ({str(error)[:200]})") from None


def record(model, vocabulary, text: str, skip_unknown: bool = False,
           max_characters: int = MAX_CHARACTERS) -> Recording:
    """Run ``text`` through ``model`` once and record its units and guesses (see :class:`Recording`).

    The model starts from the zero state and reads one character at a time, carrying its state
    as the sampler does; it runs in eval mode (no dropout) under ``torch.inference_mode``, and
    its train/eval mode is restored afterwards. The gates are computed from each cell's own
    weights with the cell's own ``step`` arithmetic, layer after layer (each layer over the
    whole text: the same numbers as interleaving the layers step by step).

    Parameters
    ----------
    model : CharLM
        On any device; the arrays come back on the CPU in float32.
    vocabulary : Vocabulary
        The model's.
    text : str
        ``T`` characters, 1 <= ``T`` <= ``max_characters``.
    skip_unknown : bool
        Drop characters the vocabulary lacks (as :meth:`Vocabulary.encode` does) instead of raising.
    max_characters : int
        The longest text taken (default :data:`MAX_CHARACTERS`, which says what memory it costs).

    Raises
    ------
    CharRNNError
        An empty text, a text longer than ``max_characters``, or a vocabulary of another size.
    UnknownCharacterError
        Characters outside the vocabulary (each named), unless ``skip_unknown``.
    """
    max_characters = check_integer("max_characters", max_characters)
    if not isinstance(text, str):
        raise SettingError(f"text must be a str, got {type(text).__name__}")
    if len(text) > max_characters:
        raise CharRNNError(f"the text has {len(text):,} characters; record takes at most {max_characters:,} "
                           "(it keeps T x layers x kinds x units floats): cut it, or raise max_characters")
    if model.embedding.num_embeddings != vocabulary.size:
        raise CharRNNError(f"the vocabulary has {vocabulary.size} characters but the model reads "
                           f"{model.embedding.num_embeddings}")
    try:
        ids = vocabulary.encode(text, skip_unknown=skip_unknown)  # (T,)
    except UnknownCharacterError as error:
        raise UnknownCharacterError(f"text: {error}") from None
    if len(ids) == 0:
        raise CharRNNError("nothing to record: the text is empty" + (
            " once the characters outside the vocabulary are dropped" if text else ""))
    if skip_unknown and len(ids) < len(text):
        text = vocabulary.decode(ids)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            layers, top_ids, top_probabilities, surprise = _run(model, ids)
    finally:
        model.train(was_training)
    cells = list(model.rnn.cells) if isinstance(model.rnn, MultiRNNCell) else [model.rnn]
    return Recording(text=text, characters=list(vocabulary.characters), ids=ids,
                     cell_types=[_cell_type(cell) for cell in cells], layers=layers, top_ids=top_ids,
                     top_probabilities=top_probabilities, surprise=surprise)


def _cell_type(cell) -> str:
    names = {cell_class: name for name, cell_class in CELL_TYPES.items()}
    return names.get(type(cell), type(cell).__name__)


def _run(model, ids: np.ndarray):
    """The recording's arrays (under inference mode): layers, top ids, top probabilities, surprise."""
    weight = model.head.weight
    tensor_ids = torch.as_tensor(ids, device=weight.device)  # (T,)
    outputs = model.embedding(tensor_ids).to(weight.dtype)  # (T, E)
    cells = list(model.rnn.cells) if isinstance(model.rnn, MultiRNNCell) else [model.rnn]
    layers = []
    for cell in cells:
        values = _record_layer(cell, cell.project_inputs(outputs))  # kind -> (T, N)
        outputs = values["h"]  # the next layer's input (no dropout in eval mode)
        layers.append({kind: tensor.float().cpu().numpy() for kind, tensor in values.items()})
    log_probabilities = F.log_softmax(model.head(outputs).float(), dim=-1)  # (T, V)
    top = torch.topk(log_probabilities, min(TOP_K, log_probabilities.shape[-1]), dim=-1)  # (T, K)
    surprise = torch.full((len(ids),), math.nan)  # (T,)
    surprise[:-1] = -log_probabilities[:-1].gather(1, tensor_ids[1:, None]).squeeze(1).cpu()
    return (layers, top.indices.cpu().numpy(), top.values.exp().cpu().numpy(), surprise.numpy())


def _lstm_step(cell: BasicLSTMCell, projected: torch.Tensor, state):
    """:meth:`BasicLSTMCell.step`, keeping its gates: -> new state, ``(6, N)`` h, c, i, f, o, g."""
    c, h = state
    i, f, g, o = torch.addmm(projected, h, cell.weight_hh.t()).chunk(4, dim=1)  # each (1, N)
    input_gate, forget, output = torch.sigmoid(i), torch.sigmoid(f + cell.forget_bias), torch.sigmoid(o)
    candidate = torch.tanh(g)
    c = c * forget + input_gate * candidate
    h = torch.tanh(c) * output
    return LSTMStateTuple(c, h), torch.cat([h, c, input_gate, forget, output, candidate])


def _gru_step(cell: GRUCell, projected: torch.Tensor, h: torch.Tensor):
    """:meth:`GRUCell.step` (TensorFlow 1's: the reset gate before the product) -> h, ``(4, N)``."""
    d, n = cell.input_size, cell.num_units
    gate_x, candidate_x = projected.split([2 * n, n], dim=1)
    reset, update = torch.sigmoid(torch.addmm(gate_x, h, cell.gate_kernel[d:])).chunk(2, dim=1)
    candidate = torch.tanh(torch.addmm(candidate_x, reset * h, cell.candidate_kernel[d:]))
    h = update * h + (1 - update) * candidate
    return h, torch.cat([h, reset, update, candidate])


def _reset_after_gru_step(cell: ResetAfterGRUCell, projected: torch.Tensor, h: torch.Tensor):
    """:meth:`ResetAfterGRUCell.step` (cuDNN's: the reset gate after the product) -> h, ``(4, N)``."""
    n = cell.num_units
    a_r, a_u, a_c = projected.split(n, dim=1)
    g_r, g_u, g_c = torch.addmm(cell.recurrent_bias, h, cell.weight_hh.t()).split(n, dim=1)
    reset, update = torch.sigmoid(a_r + g_r), torch.sigmoid(a_u + g_u)
    candidate = torch.tanh(a_c + reset * g_c)
    h = update * h + (1 - update) * candidate
    return h, torch.cat([h, reset, update, candidate])


def _any_step(cell, projected: torch.Tensor, state):
    """Any other cell (the plain RNN, or one of the user's): its own step; h, and c if its state has one."""
    h, state = cell.step(projected, state)
    return state, torch.cat([h, state.c]) if isinstance(state, LSTMStateTuple) else h


#: Per cell class: the kinds it records and its step that keeps them.
_RECORDERS = [(BasicLSTMCell, ("h", "c", "input", "forget", "output", "candidate"), _lstm_step),
              (GRUCell, ("h", "reset", "update", "candidate"), _gru_step),
              (ResetAfterGRUCell, ("h", "reset", "update", "candidate"), _reset_after_gru_step)]


def _record_layer(cell, projected: torch.Tensor) -> dict[str, torch.Tensor]:
    """One layer over all ``T`` steps from its projected inputs ``(T, k·N)``: kind -> ``(T, N)``."""
    state = cell.zero_state(1, projected.dtype, projected.device)
    kinds, step = ("h", "c") if isinstance(state, LSTMStateTuple) else ("h",), _any_step
    for cell_class, cell_kinds, cell_step in _RECORDERS:
        if isinstance(cell, cell_class):
            kinds, step = cell_kinds, cell_step
            break
    values = projected.new_empty(len(kinds), projected.shape[0], cell.num_units)  # (kinds, T, N)
    for t, row in enumerate(projected.split(1)):  # each (1, k·N)
        state, values[:, t] = step(cell, row, state)
    return dict(zip(kinds, values))


# -- gate saturation ------------------------------------------------------------------------------
def saturation(recording: Recording, low: float = 0.1, high: float = 0.9) -> dict:
    """Per gate, the fraction of time steps each unit is left- and right-saturated.

    As in Karpathy, Johnson & Fei-Fei (2015): a gate is left-saturated when below ``low`` and
    right-saturated when above ``high``. A forget gate right-saturated most of the time is a
    unit that remembers; one left-saturated, a unit that forgets at once.

    Returns
    -------
    dict
        ``(layer, gate) -> (left (N,), right (N,))``, fractions in [0, 1], for each gate kind
        (:data:`GATE_KINDS`) the recording has; empty for a plain RNN.
    """
    low = check_number("low", low, low=0.0, high=1.0)
    high = check_number("high", high, low=0.0, high=1.0)
    if not low < high:
        raise SettingError(f"low must be below high, got low={low!r} and high={high!r}")
    result = {}
    for layer, kinds in enumerate(recording.layers):
        for gate in GATE_KINDS:
            if gate in kinds:
                values = kinds[gate]  # (T, N)
                result[layer, gate] = ((values < low).mean(axis=0), (values > high).mean(axis=0))
    return result


# -- features of a text ---------------------------------------------------------------------------
# Each feature gives, per character, a property of the text after reading that character, so it
# lines up with the state recorded at that character.
def _flags(text: str, test: Callable[[str], bool]) -> np.ndarray:
    return np.fromiter((test(char) for char in text), dtype=bool, count=len(text))


def in_quotes(text: str) -> np.ndarray:
    """1 inside double quotes ``(T,)``: the opening quote counts as inside, the closing one as outside."""
    return (np.cumsum(_flags(text, '"'.__eq__)) % 2).astype(np.float64)


def bracket_depth(text: str) -> np.ndarray:
    """Nesting depth of ``()``, ``[]`` and ``{}`` together ``(T,)``, counting the bracket just read.

    A closing bracket with none open is ignored (the depth never goes below 0).
    """
    steps = _flags(text, "([{".__contains__).astype(np.int64) - _flags(text, ")]}".__contains__)
    walk = np.cumsum(steps)  # the depth without the floor at 0; the floor lifts it by its lowest point
    return (walk - np.minimum(np.minimum.accumulate(walk), 0)).astype(np.float64)


def _since_last(boundary: np.ndarray) -> np.ndarray:
    """Characters since the last ``True`` at or before each position (the start counts as one)."""
    positions = np.arange(len(boundary))
    return (positions - np.maximum.accumulate(np.where(boundary, positions, -1))).astype(np.float64)


def line_position(text: str) -> np.ndarray:
    """Characters since the last newline, this one included ``(T,)``: 0 on a newline, 1 on a line's first."""
    return _since_last(_flags(text, "\n".__eq__))


def word_position(text: str) -> np.ndarray:
    """Position in the word, 1 on its first character ``(T,)``; 0 outside words (a word: letters, digits, ``_``)."""
    return _since_last(~_flags(text, lambda char: char.isalnum() or char == "_"))


#: How many columns a tab adds to :func:`indentation` (a space adds 1).
TAB_WIDTH = 4


def indentation(text: str) -> np.ndarray:
    """The current line's leading whitespace width, as read so far ``(T,)``: a space adds 1, a tab 4.

    Only spaces and tabs at the start of a line count, and the width grows as they are read:
    on the line's ``k``-th leading space the value is ``k`` (it cannot know yet whether more
    follow); from the line's first other character to its end it stays at the whole width.
    A newline is 0 (a new line begins with none read yet, as :func:`line_position` is 0 there).
    A line of only spaces and tabs grows to its width, and its newline is 0.

    >>> indentation("a\\n  b(\\n\\tc\\n").tolist()
    [0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 0.0, 4.0, 4.0, 0.0]
    """
    values = np.zeros(len(text))
    width, leading = 0, True
    for position, char in enumerate(text):
        if char == "\n":
            width, leading = 0, True
        elif leading and char in " \t":
            width += 1 if char == " " else TAB_WIDTH
        else:
            leading = False
        values[position] = width
    return values


def line_start(text: str) -> np.ndarray:
    """1 on the first character of each line ``(T,)`` (the text's first, and each one after a newline)."""
    flags = np.zeros(len(text))
    if len(text):
        flags[0] = 1.0
        flags[1:] = _flags(text[:-1], "\n".__eq__)
    return flags


def _per_character(test: Callable[[str], bool], doc: str) -> Callable[[str], np.ndarray]:
    def feature(text: str) -> np.ndarray:
        return _flags(text, test).astype(np.float64)

    feature.__doc__ = doc
    return feature


def regex_feature(pattern: str, flags: int = 0) -> Callable[[str], np.ndarray]:
    """A feature that is 1 on every character inside a match of ``pattern`` ``(T,)``, else 0.

    Matches are found by ``re.finditer`` (they do not overlap; an empty match marks nothing).

    >>> regex_feature(r"\\d+")("ab 12 c3").tolist()
    [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    """
    try:
        compiled = re.compile(pattern, flags)
    except re.error as error:
        raise SettingError(f"pattern {pattern!r} is not a regular expression: {error}") from None

    def feature(text: str) -> np.ndarray:
        inside = np.zeros(len(text) + 1)
        for match in compiled.finditer(text):
            inside[match.start()] += 1
            inside[match.end()] -= 1
        return np.cumsum(inside)[:-1]

    feature.__doc__ = f"1 inside a match of {pattern!r}."
    return feature


#: The built-in features, name -> function ``text -> float64 (T,)``.
FEATURES: dict[str, Callable[[str], np.ndarray]] = {
    "in_quotes": in_quotes,
    "bracket_depth": bracket_depth,
    "line_position": line_position,
    "word_position": word_position,
    "line_start": line_start,
    "indentation": indentation,
    "whitespace": _per_character(str.isspace, "1 on whitespace (spaces, tabs, newlines)."),
    "upper_case": _per_character(str.isupper, "1 on an upper-case letter."),
    "digit": _per_character(str.isdigit, "1 on a digit."),
    "sentence_end": _per_character(".!?".__contains__, "1 on '.', '!' or '?'."),
}


# -- unit scores ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitScore:
    """How well one unit tracks one feature.

    Attributes
    ----------
    feature : str
    layer : int
    kind : str
        ``'h'``, ``'c'`` or a gate.
    unit : int
    correlation : float
        ``|r|``, Pearson's correlation between the unit's value and the feature (0 for a unit
        that never changes).
    auc : float or None
        For a binary feature, the ROC AUC of the unit's value as a one-unit classifier of it,
        as ``max(AUC, 1 - AUC)`` in [0.5, 1]; None for a graded feature.
    direction : int
        +1 when the unit rises with the feature, -1 when it falls, 0 for no relation.
    """

    feature: str
    layer: int
    kind: str
    unit: int
    correlation: float
    auc: float | None
    direction: int

    @property
    def score(self) -> float:
        """What ranks units: the AUC for a binary feature, ``|r|`` for a graded one."""
        return self.correlation if self.auc is None else self.auc


def score_units(recording: Recording, features: dict | None = None, kinds=("h", "c"),
                chunk: int = 256) -> list[UnitScore]:
    """Score every unit of ``kinds`` in every layer against every feature of the recorded text.

    Two measures, because features come in two sorts. For a graded feature (bracket depth,
    line position) ``|r|`` asks whether the unit moves in step with it. For a binary one
    (inside quotes or not) the ROC AUC asks how well a threshold on the unit separates the two
    sets, without choosing the threshold and whatever the unit's scale or shape (a unit that
    jumps to 0.3 inside quotes tracks them perfectly, at r well below 1); ``max(AUC, 1 - AUC)``
    counts a unit that tracks by going low as well as one going high. Binary features get ``|r|``
    too (the point-biserial correlation).

    Parameters
    ----------
    recording : Recording
    features : dict, optional
        Name -> function ``text -> (T,)`` (default :data:`FEATURES`). A feature whose values are
        all 0 or 1 is binary. A feature constant over the text tells nothing: it is left out.
    kinds : sequence of str
        What to score (:data:`ALL_KINDS`); a layer without one of them (a GRU has no ``c``)
        is scored on the others.
    chunk : int
        Units ranked at once (bounds memory: ``T x chunk`` floats).

    Returns
    -------
    list of UnitScore
        One per feature, layer, kind and unit, in that order. The AUC equals
        ``sklearn.metrics.roc_auc_score`` (ties get half credit), computed from ranks for all
        units at once.
    """
    features = dict(FEATURES if features is None else features)
    chunk = check_integer("chunk", chunk)
    kinds = tuple(kinds)
    present = {kind for layer in recording.layers for kind in layer}
    columns = [(layer, kind) for layer, values in enumerate(recording.layers) for kind in kinds if kind in values]
    if not columns or not set(kinds) <= present | set(ALL_KINDS):
        raise SettingError(f"kinds must be among {', '.join(sorted(present))}, got {list(kinds)!r}")
    units = np.concatenate([recording.layers[layer][kind] for layer, kind in columns], axis=1)  # (T, M)
    units = units.astype(np.float64)
    targets = _feature_matrix(recording.text, features)  # name -> (T,)
    names = list(targets)
    if not names:
        return []
    matrix = np.stack([targets[name] for name in names], axis=1)  # (T, F)
    signed = _correlations(units, matrix)  # (M, F)
    binary = [index for index, name in enumerate(names) if np.isin(targets[name], (0.0, 1.0)).all()]
    auc = np.full(signed.shape, np.nan)
    if binary:
        # SciPy (a dependency of scikit-learn) loads in half a second: here, not at every command's start.
        from scipy.stats import rankdata

        positives = matrix[:, binary]  # (T, b) of 0 and 1
        counts = positives.sum(axis=0)  # (b,)
        for start in range(0, units.shape[1], chunk):
            ranks = rankdata(units[:, start:start + chunk], axis=0)  # (T, c), ties averaged
            rank_sums = ranks.T @ positives  # (c, b)
            auc[start:start + chunk, binary] = ((rank_sums - counts * (counts + 1) / 2)
                                                / (counts * (len(units) - counts)))
    scores = []
    offsets = np.cumsum([0] + [recording.layers[layer][kind].shape[1] for layer, kind in columns])
    for f, name in enumerate(names):
        for (layer, kind), start, stop in zip(columns, offsets[:-1], offsets[1:]):
            for unit, column in enumerate(range(start, stop)):
                value = auc[column, f]
                scores.append(UnitScore(name, layer, kind, unit, float(abs(signed[column, f])),
                                        None if np.isnan(value) else float(max(value, 1.0 - value)),
                                        int(np.sign(signed[column, f]))))
    return scores


def _feature_matrix(text: str, features: dict) -> dict[str, np.ndarray]:
    """Each feature's values on ``text`` ``(T,)``, the constant ones left out."""
    targets = {}
    for name, feature in features.items():
        values = np.asarray(feature(text), dtype=np.float64)
        if values.shape != (len(text),):
            raise CharRNNError(f"feature {name!r} gave shape {list(values.shape)}, expected [{len(text)}] "
                               "(one value per character)")
        if not np.isfinite(values).all():
            raise CharRNNError(f"feature {name!r} gave values that are not finite numbers")
        if np.ptp(values) > 0:
            targets[name] = values
    return targets


def _correlations(units: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Pearson's r of each unit ``(T, M)`` with each feature ``(T, F)`` -> ``(M, F)``; 0 for a constant unit."""
    centred_units = units - units.mean(axis=0)
    centred_features = features - features.mean(axis=0)
    norms = np.sqrt((centred_units ** 2).sum(axis=0))  # (M,)
    norms[np.ptp(units, axis=0) == 0] = 0.0  # exactly constant: no relation, whatever rounding left
    products = centred_units.T @ centred_features  # (M, F)
    scale = np.outer(norms, np.sqrt((centred_features ** 2).sum(axis=0)))  # (M, F)
    result = np.zeros_like(products)
    np.divide(products, scale, out=result, where=scale > 0)
    return np.clip(result, -1.0, 1.0)


def best_units(scores: list[UnitScore], feature: str, top: int = 5) -> list[UnitScore]:
    """The ``top`` units that track ``feature`` best, by :attr:`UnitScore.score`, best first."""
    top = check_integer("top", top)
    chosen = [score for score in scores if score.feature == feature]
    if not chosen:
        known = sorted({score.feature for score in scores})
        raise SettingError(f"feature must be one of {', '.join(known) or '(none scored)'}, got {feature!r}")
    chosen.sort(key=lambda score: (-score.score, score.layer, score.kind, score.unit))
    return chosen[:top]
