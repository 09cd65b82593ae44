"""The sampler: text from a character language model, one character at a time.

The model's recurrent state is carried from each character to the next, so every character
costs one step of the cell stack (O(1) in the length of the text) and memory stays flat. A
prime is read first (in chunks through the fused sequence kernels), then each new character
is drawn from ``softmax(logits / temperature)``, optionally restricted to the ``top_k`` most
likely characters or to the smallest set holding ``top_p`` of the probability (nucleus
sampling), and fed back in::

    logits = stepper.feed(prime)                 # (1, V)
    repeat length times:
        id = draw(logits)                        # argmax when greedy
        yield vocabulary.characters[id]
        logits = stepper.step(id)

Per character the Python work is a handful of tensor calls. An LSTM on the CPU steps on
:class:`charrnn.quantization.PackedLSTM`: weights packed once, each layer's input and recurrent
products fused into one; other cells on PyTorch's one-step kernels (``nn.LSTMCell``'s, see
:func:`charrnn.fused.inference_layers`). A draw is the Gumbel-max trick on noise drawn for many
positions at once (``argmax(logits + T * G)``, exactly a draw from ``softmax(logits / T)``), so
it costs an addition and an argmax.

One stream reads every weight once per character, so its speed is bound by memory bandwidth
(a 2x512 LSTM holds 13 MB of float32 weights). ``dtype=torch.bfloat16`` halves those bytes and
``dtype=torch.int8`` (LSTMs) quarters them, at a cost in loss well under 0.01 nats per character.
:func:`sample_streams` makes several samples together: the same weights then serve a whole batch
of streams per step. :func:`beam_search` finds the most likely continuation instead of drawing.

A sample can end early at a stop string (``stop=["\\n"]``), each stream of a batch on its
own; :func:`sample_scored` gives each text with its log-probability.
"""

from __future__ import annotations

import copy
import math
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from charrnn.cells import MultiRNNCell
from charrnn.checks import check_integer, check_number, check_optional, flag
from charrnn.errors import CharRNNError, SettingError
from charrnn.fused import from_step_state, inference_layers, step_layers, to_step_state
from charrnn.quantization import PRECISIONS, PackedLSTM, precision_name
from charrnn.unroll import map_state
from charrnn.vocabulary import UnknownCharacterError, Vocabulary

#: Characters of a prime fed to the model per forward call (bounds the logits kept in memory).
PRIME_CHUNK = 4096


class CharacterStepper:
    """Runs a :class:`~charrnn.model.CharLM` one character at a time, carrying its state.

    The weights are read from the model once, when the stepper is made; it sees no later
    change to them. Nothing here uses dropout: this is inference.

    An LSTM on the CPU steps on :class:`charrnn.quantization.PackedLSTM` (weights packed once,
    the layers' two products fused into one); with ``dtype=torch.int8`` on any device. Other
    cells step on PyTorch's one-step kernels (:func:`charrnn.fused.step_layers`).

    Parameters
    ----------
    model : CharLM
        Any device; the stepper computes where the model lives.
    batch_size : int
        Parallel streams (1 for a single text).
    dtype : torch.dtype, optional
        The precision of the step's matrix products (default: the model's). ``torch.bfloat16``
        halves the bytes of weights read per character, ``torch.int8`` quarters them (weights
        rounded to 8 bits per row, LSTM models only; see :mod:`charrnn.quantization`); both
        cost a little accuracy. An LSTM on the CPU keeps its cell state and logits in float32
        whatever the dtype; other cells run a bfloat16 copy of the model, state and logits
        included. A prime (:meth:`feed`) is always read in the model's own precision.

    Examples
    --------
    >>> import torch
    >>> from charrnn.model import CharLM, CharLMConfig
    >>> model = CharLM(CharLMConfig(vocab_size=5, hidden_size=8, embedding_size=4))
    >>> stepper = CharacterStepper(model)
    >>> tuple(stepper.step(torch.tensor([3])).shape)
    (1, 5)
    >>> tuple(CharacterStepper(model, dtype=torch.int8).step(torch.tensor([3])).shape)
    (1, 5)
    """

    def __init__(self, model, batch_size: int = 1, dtype: torch.dtype | None = None):
        precision = precision_name(dtype) if dtype is None or dtype in PRECISIONS.values() else None
        self.is_stack = isinstance(model.rnn, MultiRNNCell)
        layers = inference_layers(model.rnn)
        device = model.head.weight.device
        self._packed = None
        if layers is not None and layers.mode == "lstm" and precision is not None and (
                device.type == "cpu" or precision == "int8"):
            self._packed = PackedLSTM(layers.weights, model.embedding.weight, model.head.weight,
                                      model.head.bias, precision, batch_size)
        elif precision == "int8":
            check_dtype(model, dtype)
        elif dtype is not None and dtype != model.head.weight.dtype:
            model = copy.deepcopy(model).to(dtype)  # the caller's model keeps its precision
            layers = inference_layers(model.rnn)
        self.model = model
        self.batch_size = batch_size
        self.layers = layers
        with torch.no_grad():
            self.embedding_weight = model.embedding.weight.detach().clone()  # (V, E)
            self.head_weight = model.head.weight.detach().clone()  # (V, N)
            self.head_bias = model.head.bias.detach().clone()  # (V,)
        self.reset()

    def reset(self) -> None:
        """Back to the all-zero state."""
        self.set_state(self.model.zero_state(self.batch_size))

    @property
    def state(self):
        """The current recurrent state, in the model's structure (as ``CharLM.forward`` returns it)."""
        if self._packed is not None:
            return from_step_state(self._packed.get_state(), "lstm", self.is_stack)
        if self.layers is None:
            return self._hidden
        return from_step_state(self._hidden, self.layers.mode, self.is_stack)

    def set_state(self, state) -> None:
        """Continue from ``state`` (the model's structure, for ``batch_size`` streams)."""
        if self._packed is not None:
            self._packed.set_state(to_step_state(state, "lstm", self.is_stack))
            return
        dtype = self.head_weight.dtype
        state = map_state(lambda tensor: tensor.detach().to(dtype), state)
        self._hidden = state if self.layers is None else to_step_state(state, self.layers.mode, self.is_stack)

    def select(self, streams: torch.Tensor) -> None:
        """Make stream ``i`` continue from stream ``streams[i]`` (``(B,)`` long; beam search's reordering)."""
        self.set_state(map_state(lambda tensor: tensor.index_select(0, streams), self.state))

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Read one character per stream, ``ids`` ``(B,)`` long, -> the next one's logits ``(B, V)``."""
        return self._step(ids)

    def _step(self, ids: torch.Tensor) -> torch.Tensor:
        """:meth:`step` for a caller already in inference mode (entering it costs a microsecond or two)."""
        if self._packed is not None:
            return self._packed.step(ids)  # (B, V) float32
        inputs = F.embedding(ids, self.embedding_weight)  # (B, E)
        if self.layers is not None:
            outputs = step_layers(self.layers, inputs, self._hidden)  # (B, N)
        else:
            outputs = self._step_cells(inputs)
        return F.linear(outputs, self.head_weight, self.head_bias)  # (B, V)

    def _step_cells(self, inputs: torch.Tensor) -> torch.Tensor:
        """The cells' own step (TensorFlow 1's ``gru`` has no fused form), without dropout."""
        cells = list(self.model.rnn.cells) if self.is_stack else [self.model.rnn]
        layer_states = list(self._hidden) if self.is_stack else [self._hidden]
        outputs = inputs
        for layer, cell in enumerate(cells):
            outputs, layer_states[layer] = cell.step(cell.project_inputs(outputs), layer_states[layer])
        self._hidden = tuple(layer_states) if self.is_stack else layer_states[0]
        return outputs  # (B, N)

    @torch.inference_mode()
    def feed(self, ids: torch.Tensor, chunk: int = PRIME_CHUNK) -> torch.Tensor:
        """Read ``ids`` ``(B, T)`` with T >= 1 -> the logits after the last one ``(B, V)``.

        Runs the model's sequence path (fused kernels) ``chunk`` characters at a time, carrying
        the state, so a long prime costs one kernel call per chunk and little memory. A single
        row (``B`` = 1) with several streams is read once from the state of the first stream,
        and every stream continues from the result (the logits are then ``(1, V)``).
        """
        state = self.state
        shared = ids.shape[0] == 1 and self.batch_size > 1
        if shared:
            state = map_state(lambda tensor: tensor[:1], state)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, ids.shape[1], chunk):
                logits, state = self.model(ids[:, start:start + chunk], state)  # (B, t, V)
        finally:
            self.model.train(was_training)
        if shared:
            state = map_state(lambda tensor: tensor.expand(self.batch_size, *tensor.shape[1:]).contiguous(), state)
        self.set_state(state)
        return logits[:, -1]  # (B, V)


def check_dtype(model, dtype: torch.dtype | None) -> None:
    """Raise :class:`~charrnn.errors.SettingError` when ``model`` cannot step in ``dtype``
    (``torch.int8`` needs an LSTM: its step kernel is :class:`~charrnn.quantization.PackedLSTM`)."""
    if dtype != torch.int8:
        return
    layers = inference_layers(model.rnn)
    if layers is None or layers.mode != "lstm":
        cell = getattr(getattr(model, "config", None), "cell", type(model.rnn).__name__)
        raise SettingError(f"{flag('dtype')} int8 runs LSTM models only; this one is a {cell} model")


def _check_settings(length, temperature, top_k, top_p) -> None:
    """Raise :class:`~charrnn.errors.SettingError` naming the first sampling setting out of range."""
    check_integer("length", length, minimum=0)
    check_number("temperature", temperature, low=0, low_open=True)
    check_optional(check_integer, "top_k", top_k)
    check_optional(check_number, "top_p", top_p, low=0, high=1, low_open=True)


def check_stop(stop) -> tuple[str, ...]:
    """``stop`` as a tuple of strings if it is None or a sequence of non-empty strings.

    A lone string is refused rather than read as its characters (``stop="\\n"`` is a common
    slip for ``stop=["\\n"]``).
    """
    if stop is None:
        return ()
    if isinstance(stop, (str, bytes)) or not isinstance(stop, Sequence) \
            or not all(isinstance(text, str) and text for text in stop):
        raise SettingError(f"{flag('stop')} must be a sequence of non-empty strings, got {stop!r}")
    return tuple(stop)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """``logits`` ``(B, V)`` divided by ``temperature``, with the excluded characters at -inf.

    ``top_k`` keeps the ``k`` highest; ``top_p`` keeps the smallest set of highest ones whose
    probability reaches ``p`` (always at least one).
    """
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probabilities = torch.softmax(sorted_logits, dim=-1)
        # Drop a character when those ranked above it already reach top_p.
        drop_sorted = (torch.cumsum(probabilities, dim=-1) - probabilities) >= top_p  # (B, V)
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def sample(model, vocabulary: Vocabulary, prime: str = "", length: int = 500, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
           generator: torch.Generator | None = None, skip_unknown: bool = False,
           dtype: torch.dtype | None = None, stop: Sequence[str] | None = None) -> Iterator[str]:
    """Generate text from ``model``, yielding each character as soon as it is made.

    Parameters
    ----------
    model : CharLM
        Typically :func:`charrnn.checkpoint.load_model`'s ``.model``. Its train/eval mode and
        weights are left as they are.
    vocabulary : Vocabulary
        The model's.
    prime : str
        Text the model reads first; the characters yielded continue it (the prime itself is
        not yielded). Empty: the model starts after a line break (``"\\n"``) when its
        vocabulary has one, else from a character drawn uniformly.
    length : int
        How many characters to generate (>= 0).
    temperature : float
        > 0; below 1 sharpens the distribution, above 1 flattens it.
    top_k : int, optional
        Draw only among the ``top_k`` most likely characters (>= 1; 1 is greedy).
    top_p : float, optional
        Nucleus sampling: draw only among the most likely characters whose probabilities
        reach ``top_p``, in (0, 1].
    greedy : bool
        Always take the most likely character (temperature, top_k and top_p then do nothing).
    generator : torch.Generator, optional
        The source of randomness, on the model's device; seed it for reproducible text.
        Default: PyTorch's global generator.
    skip_unknown : bool
        Drop characters of the prime the vocabulary lacks instead of raising.
    dtype : torch.dtype, optional
        The precision of the step's matrix products (default: the model's): ``torch.bfloat16``,
        or ``torch.int8`` for an LSTM; see :class:`CharacterStepper`.
    stop : sequence of str, optional
        Stop strings (each non-empty): the text ends right after the first occurrence of any of
        them in the generated characters (the prime does not count), the stop string included;
        else after ``length`` characters.

    Returns
    -------
    Iterator[str]
        One character at a time (at most ``length``). The settings are checked at the call,
        before any is made.

    Raises
    ------
    CharRNNError
        A setting out of range, naming it and the value.
    UnknownCharacterError
        The prime holds characters outside the vocabulary (unless ``skip_unknown``).

    Examples
    --------
    >>> from charrnn.model import CharLM, CharLMConfig
    >>> vocabulary = Vocabulary.from_text("ab\\n")
    >>> model = CharLM(CharLMConfig(vocab_size=3, hidden_size=8, embedding_size=4))
    >>> len("".join(sample(model, vocabulary, prime="ab", length=5)))
    5
    >>> "".join(sample(model, vocabulary, length=50, stop=["b"])).count("b") <= 1
    True
    """
    streams = sample_streams(model, vocabulary, 1, prime=prime, length=length, temperature=temperature,
                             top_k=top_k, top_p=top_p, greedy=greedy, generator=generator,
                             skip_unknown=skip_unknown, dtype=dtype, stop=stop)
    return (characters[0] for characters in streams)


def _prime_ids(model, vocabulary: Vocabulary, prime: str, skip_unknown: bool) -> np.ndarray:
    """The prime's ids, once the vocabulary is checked against the model's embedding."""
    if model.embedding.num_embeddings != vocabulary.size:
        raise CharRNNError(f"the vocabulary has {vocabulary.size} characters but the model reads "
                           f"{model.embedding.num_embeddings}")
    try:
        return vocabulary.encode(prime, skip_unknown=skip_unknown)
    except UnknownCharacterError as error:
        raise UnknownCharacterError(f"prime: {error}") from None


def sample_streams(model, vocabulary: Vocabulary, num_samples: int, prime: str = "", length: int = 500,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   greedy: bool = False, generator: torch.Generator | None = None,
                   skip_unknown: bool = False, dtype: torch.dtype | None = None,
                   stop: Sequence[str] | None = None) -> Iterator[list[str]]:
    """Generate ``num_samples`` texts together, yielding one character of each per position.

    All the samples continue the same ``prime``, which is read once; from there each stream
    draws its own characters. The streams share every step of the model, which is what makes
    this faster than one sample after another: a step of 64 streams costs a few times a step
    of one. Takes :func:`sample`'s arguments, plus ``num_samples`` (>= 1).

    With ``stop``, each stream stops on its own at its first stop string; from then on its
    entries are ``""`` (so ``"".join`` of a stream's entries is its text), and generation ends
    when every stream has stopped or after ``length`` positions.

    Returns
    -------
    Iterator[list[str]]
        Up to ``length`` lists of ``num_samples`` strings: the i-th list holds the i-th
        character of every sample (``""`` for a sample already stopped).

    Examples
    --------
    >>> from charrnn.model import CharLM, CharLMConfig
    >>> vocabulary = Vocabulary.from_text("ab\\n")
    >>> model = CharLM(CharLMConfig(vocab_size=3, hidden_size=8, embedding_size=4))
    >>> columns = list(sample_streams(model, vocabulary, 4, prime="ab", length=5))
    >>> len(columns), len(columns[0])
    (5, 4)
    """
    _check_settings(length, temperature, top_k, top_p)
    check_integer("num_samples", num_samples)
    check_dtype(model, dtype)
    stop = check_stop(stop)
    prime_ids = _prime_ids(model, vocabulary, prime, skip_unknown)
    return _generate(model, vocabulary, prime_ids, int(num_samples), int(length), float(temperature),
                     top_k, top_p, greedy, generator, dtype, stop)


def sample_scored(model, vocabulary: Vocabulary, num_samples: int = 1, prime: str = "", length: int = 500,
                  **options) -> list[tuple[str, float]]:
    """``num_samples`` texts with the log-probability of each, as :func:`sample_streams` makes them.

    Takes :func:`sample_streams`' arguments. The log-probability of a text is the sum, over its
    generated characters (not the prime), of ``log p`` of each character under the distribution
    it was drawn from: after ``temperature``, ``top_k`` and ``top_p`` (the filtered softmax), in
    nats. For ``greedy`` sampling, which ignores those settings, it is the model's own
    distribution (temperature 1, nothing filtered).

    Returns
    -------
    list[tuple[str, float]]
        ``(text, log_probability)`` per sample, the prime not included.
    """
    columns = sample_streams(model, vocabulary, num_samples, prime=prime, length=length, **options)
    texts = [[] for _ in range(int(num_samples))]
    totals = [0.0] * int(num_samples)
    for column in columns:
        for stream, (character, log_probability) in enumerate(zip(column, column.log_probabilities)):
            if character:
                texts[stream].append(character)
                totals[stream] += log_probability
    return [("".join(text), total) for text, total in zip(texts, totals)]


class _Column(list):
    """One position's characters, one per stream, and (computed when asked) their log-probabilities."""

    def __init__(self, characters: list[str], logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0):
        super().__init__(characters)
        # (B, V) the logits drawn from (filtered already, or to divide by temperature), (B,) the draws
        self._logits, self._ids, self._temperature = logits, ids, temperature

    @property
    def log_probabilities(self) -> list[float]:
        """``log p`` (nats) of each stream's character under the distribution it was drawn from."""
        with torch.inference_mode():
            logits = self._logits if self._temperature == 1.0 else self._logits / self._temperature
            chosen = torch.log_softmax(logits, dim=-1).gather(-1, self._ids.view(-1, 1))  # (B, 1)
        return chosen.view(-1).tolist()


class _Draws:
    """Draws from ``softmax(logits / temperature)`` (filtered) by the Gumbel-max trick.

    ``argmax(logits / T + G)`` with ``G = -log(E)``, ``E`` standard exponential, is a draw from
    ``softmax(logits / T)``; so is ``argmax(logits + T·G)``, which spares the division. The noise
    is drawn ``block`` positions at a time, so a position costs one addition and one argmax.
    """

    #: Noise values drawn per block (positions x streams x characters).
    BLOCK_VALUES = 1 << 18

    def __init__(self, generator, num_samples: int, vocabulary_size: int, temperature: float, top_k, top_p,
                 greedy: bool, device, length: int):
        self.generator, self.temperature, self.top_k, self.top_p = generator, temperature, top_k, top_p
        self.greedy, self.device, self.remaining = greedy, device, length
        self.shape = (num_samples, vocabulary_size)
        self.filtering = not greedy and (top_k is not None or top_p is not None)
        self.block, self.position = (), 0
        self._sum = torch.empty(self.shape, device=device)  # (B, V) logits + noise, made once

    def _noise(self) -> torch.Tensor:
        """The next position's noise ``(B, V)``, scaled by the temperature unless filtering."""
        if self.position == len(self.block):
            rows = max(1, min(self.remaining, self.BLOCK_VALUES // (self.shape[0] * self.shape[1])))
            block = torch.empty((rows, *self.shape), device=self.device)
            block.exponential_(generator=self.generator).log_().neg_()  # (rows, B, V) Gumbel noise
            if not self.filtering and self.temperature != 1.0:
                block.mul_(self.temperature)
            # The positions' views made at once (unbind), not one indexing per character.
            self.block, self.position = block.unbind(0), 0
        self.position += 1
        self.remaining -= 1
        return self.block[self.position - 1]

    def __call__(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(logits drawn from, ids (B,), temperature left to apply to them)`` for ``logits`` ``(B, V)``."""
        if self.greedy:
            return logits, torch.argmax(logits, dim=-1), 1.0
        if self.filtering:
            filtered = filter_logits(logits, self.temperature, self.top_k, self.top_p)
            return filtered, self._noisy_argmax(filtered), 1.0
        return logits, self._noisy_argmax(logits), self.temperature

    def _noisy_argmax(self, logits: torch.Tensor) -> torch.Tensor:
        """``argmax(logits + noise)`` ``(B,)``, the sum in the buffer made once."""
        return torch.argmax(torch.add(logits, self._noise(), out=self._sum), dim=-1)


def _generate(model, vocabulary, prime_ids: np.ndarray, num_samples, length, temperature, top_k, top_p,
              greedy, generator, dtype, stop=()) -> Iterator[list[str]]:
    """The loop behind :func:`sample_streams` (its arguments already checked)."""
    if length == 0:
        return
    device = model.head.weight.device
    stepper = CharacterStepper(model, batch_size=num_samples, dtype=dtype)
    if len(prime_ids) == 0 and "\n" in vocabulary:
        prime_ids = np.array([vocabulary.index["\n"]])
    if len(prime_ids):
        logits = stepper.feed(torch.as_tensor(prime_ids, device=device).view(1, -1))  # (1, V)
    else:
        logits = torch.zeros(1, vocabulary.size, device=device)  # a uniform first draw
    logits = logits.float().expand(num_samples, -1)  # (B, V)
    characters = vocabulary.characters
    watch = _StopWatch(stop, num_samples)
    draw = _Draws(generator, num_samples, vocabulary.size, temperature, top_k, top_p, greedy, device, length)
    with torch.inference_mode():
        for position in range(length):
            drawn_from, next_ids, left = draw(logits)  # (B, V), (B,)
            column = [characters[index] for index in next_ids.tolist()]
            yield _Column(watch.column(column), drawn_from, next_ids, left)
            if watch.all_stopped:
                return
            if position + 1 < length:
                logits = stepper._step(next_ids)  # (B, V)
                if logits.dtype != torch.float32:
                    logits = logits.float()


class _StopWatch:
    """Which streams have met a stop string; a stopped stream's later characters become ``""``."""

    def __init__(self, stop: tuple[str, ...], num_samples: int):
        self.stop = stop
        self.keep = max((len(text) for text in stop), default=0)  # characters of tail to look at
        self.tails = [""] * num_samples
        self.stopped = [False] * num_samples

    @property
    def all_stopped(self) -> bool:
        return bool(self.stop) and all(self.stopped)

    def column(self, column: list[str]) -> list[str]:
        """``column`` with the entries of stopped streams blanked, updating who has stopped."""
        if not self.stop:
            return column
        for stream, character in enumerate(column):
            if self.stopped[stream]:
                column[stream] = ""
                continue
            tail = (self.tails[stream] + character)[-self.keep:]
            self.tails[stream] = tail
            self.stopped[stream] = any(tail.endswith(text) for text in self.stop)
        return column


#: The widest beam :func:`beam_search` takes (each beam is one stream of the model's step).
MAX_BEAM_WIDTH = 4096


def beam_search(model, vocabulary: Vocabulary, prime: str = "", length: int = 500, beam_width: int = 8,
                skip_unknown: bool = False, dtype: torch.dtype | None = None) -> list[tuple[str, float]]:
    """The most likely continuations of ``prime``, ``length`` characters each, by beam search.

    Keeps the ``beam_width`` texts of highest log-probability after each position: every beam is
    extended by every character, and the ``beam_width`` best of those ``beam_width x V`` go on
    (the beams run as parallel streams of one :class:`CharacterStepper`). Width 1 is greedy
    decoding; a wider beam can find a text that greedy decoding misses when the most likely
    next character leads to less likely ones, and is exact when it keeps every text.

    The score is the text's total log-probability under the model (temperature 1, nothing
    filtered), in nats, *not* normalised by length: every candidate has exactly ``length``
    characters, so dividing by the length would not change the ranking. It equals what
    :func:`charrnn.evaluation.evaluate` sums over the same characters read after the prime
    (an empty prime reads as ``"\\n"`` when the vocabulary has one, as in :func:`sample`).

    Parameters
    ----------
    model, vocabulary, prime, length, skip_unknown, dtype
        As for :func:`sample`.
    beam_width : int
        Texts kept at each position, in [1, :data:`MAX_BEAM_WIDTH`].

    Returns
    -------
    list[tuple[str, float]]
        ``(text, log_probability)`` of the beams at the end, most likely first (at most
        ``beam_width``; fewer when fewer texts exist), the prime not included.

    Examples
    --------
    >>> from charrnn.model import CharLM, CharLMConfig
    >>> vocabulary = Vocabulary.from_text("ab\\n")
    >>> model = CharLM(CharLMConfig(vocab_size=3, hidden_size=8, embedding_size=4))
    >>> best = beam_search(model, vocabulary, prime="ab", length=6, beam_width=1)
    >>> best[0][0] == sample_text(model, vocabulary, prime="ab", length=6, greedy=True)
    True
    >>> [len(text) for text, _ in beam_search(model, vocabulary, prime="ab", length=6, beam_width=3)]
    [6, 6, 6]
    """
    check_integer("length", length, minimum=0)
    beam_width = check_integer("beam_width", beam_width, maximum=MAX_BEAM_WIDTH)
    check_dtype(model, dtype)
    prime_ids = _prime_ids(model, vocabulary, prime, skip_unknown)
    if length == 0:
        return [("", 0.0)]
    device = model.head.weight.device
    stepper = CharacterStepper(model, batch_size=beam_width, dtype=dtype)
    if len(prime_ids) == 0 and "\n" in vocabulary:
        prime_ids = np.array([vocabulary.index["\n"]])
    with torch.inference_mode():
        if len(prime_ids):
            logits = stepper.feed(torch.as_tensor(prime_ids, device=device).view(1, -1))  # (1, V)
        else:
            logits = torch.zeros(1, vocabulary.size, device=device)  # a uniform first character
        # Every beam starts from the prime; all but the first are out of the running at first.
        scores = torch.full((beam_width,), -math.inf, device=device)  # (K,)
        scores[0] = 0.0
        logits = logits.float().expand(beam_width, -1)  # (K, V)
        history = []  # per position: (parent beam (K,), character (K,))
        for position in range(length):
            totals = scores[:, None] + torch.log_softmax(logits, dim=-1)  # (K, V)
            scores, flat = torch.topk(totals.view(-1), beam_width)  # (K,), best first
            parents, characters = flat // vocabulary.size, flat % vocabulary.size  # (K,)
            history.append((parents, characters))
            if position + 1 < length:
                stepper.select(parents)
                logits = stepper._step(characters).float()  # (K, V)
        history = [(parents.tolist(), characters.tolist()) for parents, characters in history]
        beams = []
        for beam, score in enumerate(scores.tolist()):
            if score == -math.inf:
                continue  # a copy of the prime that never got a character of its own
            ids = []
            for parents, characters in reversed(history):
                ids.append(characters[beam])
                beam = parents[beam]
            beams.append(("".join(vocabulary.characters[index] for index in reversed(ids)), score))
    return beams


def sample_text(model, vocabulary: Vocabulary, prime: str = "", length: int = 500, **options) -> str:
    """The text :func:`sample` generates, as one string (the prime not included).

    Takes the same arguments as :func:`sample`.
    """
    return "".join(sample(model, vocabulary, prime=prime, length=length, **options))


def make_generator(seed: int | None = None, device="cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``, or from the system's entropy when None."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator
