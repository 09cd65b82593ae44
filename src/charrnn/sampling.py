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

Per character the Python work is a handful of tensor calls: the stack runs on PyTorch's
one-step kernels (``nn.LSTMCell``'s) with weights converted once, see
:func:`charrnn.fused.inference_layers`.

One stream reads every weight once per character, so its speed is bound by memory bandwidth
(a 2x512 LSTM holds 13 MB of float32 weights). :func:`sample_streams` makes several samples
together: the same weights then serve a whole batch of streams per step, and with
``dtype=torch.bfloat16`` the matrix products run at the CPU's bfloat16 rate.

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
from charrnn.unroll import map_state
from charrnn.vocabulary import UnknownCharacterError, Vocabulary

#: Characters of a prime fed to the model per forward call (bounds the logits kept in memory).
PRIME_CHUNK = 4096


class CharacterStepper:
    """Runs a :class:`~charrnn.model.CharLM` one character at a time, carrying its state.

    The weights are read from the model once, when the stepper is made; it sees no later
    change to them. Nothing here uses dropout: this is inference.

    Parameters
    ----------
    model : CharLM
        Any device; the stepper computes where the model lives.
    batch_size : int
        Parallel streams (1 for a single text).
    dtype : torch.dtype, optional
        The precision to compute in (default: the model's). ``torch.bfloat16`` runs a copy of
        the model in bfloat16, weights and state: several times faster for many streams on a
        CPU with bfloat16 instructions, at a small cost in accuracy. Logits come back in it.

    Examples
    --------
    >>> import torch
    >>> from charrnn.model import CharLM, CharLMConfig
    >>> model = CharLM(CharLMConfig(vocab_size=5, hidden_size=8, embedding_size=4))
    >>> stepper = CharacterStepper(model)
    >>> tuple(stepper.step(torch.tensor([3])).shape)
    (1, 5)
    """

    def __init__(self, model, batch_size: int = 1, dtype: torch.dtype | None = None):
        if dtype is not None and dtype != model.head.weight.dtype:
            model = copy.deepcopy(model).to(dtype)  # the caller's model keeps its precision
        self.model = model
        self.batch_size = batch_size
        self.is_stack = isinstance(model.rnn, MultiRNNCell)
        self.layers = inference_layers(model.rnn)
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
        if self.layers is None:
            return self._hidden
        return from_step_state(self._hidden, self.layers.mode, self.is_stack)

    def set_state(self, state) -> None:
        """Continue from ``state`` (the model's structure, for ``batch_size`` streams)."""
        dtype = self.head_weight.dtype
        state = map_state(lambda tensor: tensor.detach().to(dtype), state)
        self._hidden = state if self.layers is None else to_step_state(state, self.layers.mode, self.is_stack)

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Read one character per stream, ``ids`` ``(B,)`` long, -> the next one's logits ``(B, V)``."""
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
        The precision to compute in (default: the model's); see :class:`CharacterStepper`.
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
    stop = check_stop(stop)
    if model.embedding.num_embeddings != vocabulary.size:
        raise CharRNNError(f"the vocabulary has {vocabulary.size} characters but the model reads "
                           f"{model.embedding.num_embeddings}")
    try:
        prime_ids = vocabulary.encode(prime, skip_unknown=skip_unknown)
    except UnknownCharacterError as error:
        raise UnknownCharacterError(f"prime: {error}") from None
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

    def __init__(self, characters: list[str], filtered: torch.Tensor, ids: torch.Tensor):
        super().__init__(characters)
        self._filtered, self._ids = filtered, ids  # (B, V) the logits drawn from, (B,) the draws

    @property
    def log_probabilities(self) -> list[float]:
        """``log p`` (nats) of each stream's character under the distribution it was drawn from."""
        with torch.inference_mode():
            chosen = torch.log_softmax(self._filtered, dim=-1).gather(-1, self._ids.view(-1, 1))  # (B, 1)
        return chosen.view(-1).tolist()


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
    logits = logits.expand(num_samples, -1)  # (B, V)
    characters = vocabulary.characters
    watch = _StopWatch(stop, num_samples)
    with torch.inference_mode():
        for position in range(length):
            if greedy:
                filtered = logits.float()
                next_ids = torch.argmax(logits, dim=-1)  # (B,)
            else:
                filtered = filter_logits(logits.float(), temperature, top_k, top_p)
                next_ids = torch.multinomial(torch.softmax(filtered, dim=-1), 1,
                                             generator=generator).view(num_samples)  # (B,)
            yield _Column(watch.column([characters[index] for index in next_ids.tolist()]), filtered, next_ids)
            if watch.all_stopped:
                return
            if position + 1 < length:
                logits = stepper.step(next_ids)


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
