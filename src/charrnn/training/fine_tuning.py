"""Fine-tuning: a new run that starts from a trained language model (``charrnn train --init-from``).

The new run takes the trained model's shape (cell, sizes, layers; its dropout and forget bias
unless the run sets them, its forget bias over a preset's) and its weights. Its vocabulary is
the old one extended by the new text's characters, so ids move (a vocabulary is kept sorted):
every row of the embedding and of the output layer is carried to its character's new id, and
the rows of characters the old model never saw start as the model's "average character"
(:func:`transplant`). The optimizer and the schedule start afresh; ``--resume`` still means the
same run on the same corpus.
"""

from __future__ import annotations

import torch

from charrnn.checkpoint import VOCAB_FILE, read_checkpoint_config, resolve_checkpoint
from charrnn.checks import flag
from charrnn.errors import CharRNNError, SettingError
from charrnn.model import CharLM
from charrnn.vocabulary import Vocabulary

#: What fine-tuning may not change: the weights' shapes depend on it.
SHAPE_FIELDS = ("cell", "hidden_size", "num_layers", "embedding_size", "tie_weights")
#: What a fine-tuned run takes from the trained model unless its own settings say otherwise.
INHERITED_FIELDS = (*SHAPE_FIELDS, "dropout", "forget_bias")
#: Of those, what a preset does not change (the weights were trained to compute with it); a flag
#: or a settings file still does.
OVER_PRESETS = ("forget_bias",)
#: The tensors whose rows are characters.
_CHARACTER_ROWS = ("embedding.weight", "head.weight", "head.bias")


def source_settings(init_from: str) -> dict:
    """The model settings a run fine-tuned from ``init_from`` inherits (:data:`INHERITED_FIELDS`).

    ``init_from`` is what :func:`~charrnn.checkpoint.resolve_checkpoint` takes: a checkpoint
    folder, a run folder (its best checkpoint) or a pretrained model's name.
    """
    try:
        config, _ = read_checkpoint_config(resolve_checkpoint(init_from), CharLM)
    except CharRNNError as error:
        raise CharRNNError(f"--init-from: {error}", exit_code=error.exit_code) from None
    return {name: getattr(config, name) for name in INHERITED_FIELDS}


def check_same_shape(settings, inherited: dict) -> None:
    """Refuse settings that would change the shape of the model being fine-tuned, in one line."""
    for name in SHAPE_FIELDS:
        if getattr(settings, name) != inherited[name]:
            raise SettingError(
                f"--init-from {settings.init_from}: the model has {flag(name)} {inherited[name]}, and a fine-tuned "
                f"model keeps its shape; drop {flag(name)} {getattr(settings, name)} (or the preset or file "
                f"setting it)")


def source_vocabulary(init_from: str) -> Vocabulary:
    """The vocabulary of the model that ``init_from`` names."""
    return Vocabulary.load(resolve_checkpoint(init_from) / VOCAB_FILE)


@torch.no_grad()
def transplant(target: CharLM, target_vocabulary: Vocabulary, source: CharLM,
               source_vocabulary: Vocabulary) -> list[str]:
    """Give ``target`` the weights of ``source``, a model of the same shape over another vocabulary.

    The recurrent layers are copied as they are. A character of both vocabularies keeps its
    embedding row, its output row and its output bias, at its id in ``target_vocabulary``. A
    character new to ``target`` gets the mean of the old embedding rows and of the old output
    rows, and the lowest old output bias: the model reads it as an average character and first
    predicts it as rarely as its rarest known one, and training moves it from there. Characters
    of ``source`` that ``target`` lacks are dropped.

    Returns the new characters, in id order.
    """
    source_state = source.state_dict()
    target_state = target.state_dict()
    shared = {name for name in source_state if name not in _CHARACTER_ROWS}
    for name in shared:
        target_state[name].copy_(source_state[name])
    kept = [char for char in target_vocabulary.characters if char in source_vocabulary]
    new = [char for char in target_vocabulary.characters if char not in source_vocabulary]
    to_rows = torch.tensor([target_vocabulary.index[char] for char in kept], dtype=torch.long)
    from_rows = torch.tensor([source_vocabulary.index[char] for char in kept], dtype=torch.long)
    new_rows = torch.tensor([target_vocabulary.index[char] for char in new], dtype=torch.long)
    for name in _CHARACTER_ROWS:
        old, fresh = source_state[name], target_state[name]  # (V_old, ...) and (V_new, ...)
        fresh[to_rows] = old[from_rows].to(fresh.dtype)
        if len(new):
            fill = old.min() if name == "head.bias" else old.mean(dim=0)
            fresh[new_rows] = fill.to(fresh.dtype)
    return new
