"""The character language model: embedding → cell stack → dropout → dense → logits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from charrnn.cells import CELL_TYPES, BasicLSTMCell, MultiRNNCell, make_cell
from charrnn.checks import check_choice, check_integer, check_number
from charrnn.dropout import Dropout, LockedDropout, dropout
from charrnn.errors import CharRNNError, SettingError
from charrnn.unroll import dynamic_rnn, map_state


@dataclass(kw_only=True)
class ModelSettings:
    """The shape of a character model, declared once for every model and every command.

    ``cell`` ('lstm', 'gru', 'rnn', 'gru-reset-after'), ``hidden_size`` units per layer,
    ``num_layers``, ``embedding_size``, ``dropout`` (between layers and before the output,
    in [0, 1)) and ``forget_bias`` (added to an LSTM's forget gate). The training settings
    (:class:`~charrnn.training.TrainConfig`) and the models' configurations inherit these
    fields, so each has one name, one default and one check.
    """

    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    embedding_size: int = 64
    dropout: float = 0.0
    # 0.0 rather than TensorFlow's 1.0 (which BasicLSTMCell keeps): over steps 250-300 of the
    # language model's defaults on tinyshakespeare the training loss averages 1.65 nats against 1.79,
    # and a 2-minute run ends behind; a 15-minute run gains from 1.0 (docs/training.md).
    forget_bias: float = 0.0

    def __post_init__(self):
        self.check_model_settings()

    def check_model_settings(self) -> None:
        """Raise :class:`~charrnn.errors.SettingError` naming the first model setting out of range."""
        check_choice("cell", self.cell, sorted(CELL_TYPES))
        for name in ("hidden_size", "num_layers", "embedding_size"):
            check_integer(name, getattr(self, name))
        check_number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_number("forget_bias", self.forget_bias)

    def model_settings(self) -> dict:
        """The :class:`ModelSettings` fields and their values."""
        return {field.name: getattr(self, field.name) for field in fields(ModelSettings)}

    def to_dict(self) -> dict:
        """Plain values for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None):
        """Build from a dict of field values; unknown keys are an error naming ``source`` if given."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        prefix = f"{source}: " if source else ""
        if unknown:
            raise SettingError(f"{prefix}unknown setting(s) {', '.join(unknown)}; known settings: "
                               f"{', '.join(sorted(known))}")
        try:
            return cls(**values)
        except CharRNNError as error:
            raise SettingError(f"{prefix}{error}") from None


@dataclass(kw_only=True)
class LanguageModelSettings(ModelSettings):
    """The language model's own settings, besides its :class:`ModelSettings`: a default shape of
    its own (one LSTM layer of 320 units), and the regularisers of long runs that AWD-LSTM
    brought to word models (Merity et al. 2017), each off by default.

    ``weight_dropout``: DropConnect on every hidden-to-hidden matrix, one mask per batch (the
    fused kernels run on the masked matrices). ``input_dropout``: locked (variational) dropout
    on the embeddings, one mask per stream for the whole sequence. ``locked_dropout``: make the
    dropout before the output layer (``dropout``) locked too. ``tie_weights``: the output layer
    shares the embedding's matrix (needs ``embedding_size == hidden_size``).
    """

    # One wide layer learns more per CPU-minute than two narrow ones, and on a shared host a
    # layer of 320 more than a wider one, which steps more slowly than its arithmetic says:
    # 2-minute figures of each width in docs/training.md (bench/bench_train.py --quality 2min).
    hidden_size: int = 320
    num_layers: int = 1
    weight_dropout: float = 0.0
    input_dropout: float = 0.0
    locked_dropout: bool = False
    tie_weights: bool = False

    def check_model_settings(self) -> None:
        super().check_model_settings()
        for name in ("weight_dropout", "input_dropout"):
            check_number(name, getattr(self, name), low=0.0, high=1.0, high_open=True)
        for name in ("locked_dropout", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise SettingError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise SettingError(f"--tie-weights needs --embedding-size equal to --hidden-size, got "
                               f"{self.embedding_size} and {self.hidden_size}")
        if self.weight_dropout and self.cell == "gru":
            raise SettingError("--weight-dropout needs a cell with hidden-to-hidden matrices of its own: lstm, rnn "
                               "or gru-reset-after, not TensorFlow 1's gru")

    def model_settings(self) -> dict:
        """The :class:`LanguageModelSettings` fields and their values."""
        return {field.name: getattr(self, field.name) for field in fields(LanguageModelSettings)}


@dataclass
class CharLMConfig(LanguageModelSettings):
    """What it takes to rebuild a :class:`CharLM` (saved as ``config.json``): its
    :class:`LanguageModelSettings` and ``vocab_size``."""

    vocab_size: int

    def __post_init__(self):
        check_integer("vocab_size", self.vocab_size)
        super().__post_init__()


def make_cell_stack(config: ModelSettings) -> MultiRNNCell:
    """The ``num_layers`` cells of ``config`` over its embedding, with dropout between layers.

    LSTM cells get ``config.forget_bias``.
    """
    input_sizes = [config.embedding_size] + [config.hidden_size] * (config.num_layers - 1)
    cells = [make_cell(config.cell, config.hidden_size, size) for size in input_sizes]
    for cell in cells:
        if isinstance(cell, BasicLSTMCell):
            cell.forget_bias = float(config.forget_bias)
    return MultiRNNCell(cells, dropout=config.dropout)


class _Unroll(nn.Module):
    """``dynamic_rnn`` over a stack, as a module, so that ``torch.func.functional_call`` can run
    it on masked hidden-to-hidden matrices (weight dropout) without touching the stack's own."""

    def __init__(self, rnn: MultiRNNCell):
        super().__init__()
        self.rnn = rnn

    def forward(self, inputs: torch.Tensor, state):
        return dynamic_rnn(self.rnn, inputs, initial_state=state)


class CharLM(nn.Module):
    """A character-level language model.

    ``ids`` ``(B, T)`` → embedding ``(B, T, E)`` → input dropout → stack of ``num_layers`` cells
    with ``hidden_size`` units, dropout between layers → dropout → dense → logits ``(B, T, V)``.
    An LSTM's forget gate gets ``config.forget_bias``. The regularisers of
    :class:`LanguageModelSettings` act in training only.
    The stack runs on PyTorch's fused kernels when the cell type has a fused form
    (``lstm``, ``rnn``, ``gru-reset-after``); TensorFlow 1's ``gru`` runs step by step.
    """

    #: The ``kind`` of its checkpoints, and the configuration they hold.
    KIND = "language-model"
    CONFIG = CharLMConfig

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.input_dropout = LockedDropout(config.input_dropout)
        self.rnn = make_cell_stack(config)
        self.dropout = LockedDropout(config.dropout) if config.locked_dropout else Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.head.weight = self.embedding.weight  # (V, H) both: one matrix, read both ways
        # Not a registered child: the stack's weights stay under `rnn.` in the state dict.
        object.__setattr__(self, "_unroll", _Unroll(self.rnn))

    @staticmethod
    def expected_shapes(config: CharLMConfig) -> dict[str, tuple[int, ...]]:
        """Shapes of the tensors that grow with the configuration's sizes, checked before building."""
        return {"embedding.weight": (config.vocab_size, config.embedding_size),
                "head.weight": (config.vocab_size, config.hidden_size)}

    def zero_state(self, batch_size: int, device=None):
        """The all-zero recurrent state for ``batch_size`` streams."""
        return self.rnn.zero_state(batch_size, self.head.weight.dtype, device or self.head.weight.device)

    def forward(self, ids: torch.Tensor, state=None):
        """``ids`` ``(B, T)`` and a state (zeros if None) → ``(logits (B, T, V), final_state)``."""
        embedded = self.input_dropout(self.embedding(ids))  # (B, T, E)
        if self.training and self.config.weight_dropout:
            masked = {f"rnn.{name}": dropout(weight, self.config.weight_dropout)
                      for name, weight in self.rnn.named_parameters() if name.endswith("weight_hh")}
            outputs, state = torch.func.functional_call(self._unroll, masked, (embedded, state))  # (B, T, H)
        else:
            outputs, state = dynamic_rnn(self.rnn, embedded, initial_state=state)  # (B, T, H)
        return self.head(self.dropout(outputs)), state  # (B, T, V)


def detach_state(state):
    """The same state cut from the autograd graph (truncated back-propagation through time)."""
    return map_state(torch.Tensor.detach, state)
