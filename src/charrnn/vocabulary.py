"""Character vocabulary: text ⇄ integer ids, and one-hot vectors.

The lecture builds its vocabulary with ``list(set(text))``, whose order changes from one
Python process to the next (string hashing is salted). Here the characters are sorted, so
the same text always gives the same ids.
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

import numpy as np
import torch

from charrnn.errors import CharRNNError
from charrnn.files import CheckpointError, atomic_write, read_json

#: The vocabulary's file in a checkpoint, a run or a prepared corpus.
VOCABULARY_FILE = "vocab.json"


class UnknownCharacterError(CharRNNError, ValueError):
    """A text holds characters that the vocabulary does not know."""


class Vocabulary:
    """A sorted set of characters with their ids.

    Parameters
    ----------
    characters : iterable of str
        Any iterable of single characters (duplicates are dropped).

    Examples
    --------
    >>> vocab = Vocabulary.from_text("hihello")
    >>> vocab.characters
    ['e', 'h', 'i', 'l', 'o']
    >>> vocab.encode("hell").tolist()
    [1, 0, 3, 3]
    >>> vocab.decode([2, 1])
    'ih'
    """

    def __init__(self, characters: Iterable[str]):
        unique = sorted(set(characters))
        for char in unique:
            if not isinstance(char, str) or len(char) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {char!r}")
        self.characters: list[str] = unique
        self.index: dict[str, int] = {char: i for i, char in enumerate(unique)}

    @classmethod
    def from_text(cls, text: str) -> "Vocabulary":
        """Build the vocabulary of every distinct character in ``text``."""
        return cls(text)

    def __len__(self) -> int:
        return len(self.characters)

    def __contains__(self, char: str) -> bool:
        return char in self.index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.characters == other.characters

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self.characters)!r})"

    @property
    def size(self) -> int:
        """Number of characters (the one-hot depth and the number of classes)."""
        return len(self.characters)

    def unknown_characters(self, text: str) -> dict[str, int]:
        """Each character of ``text`` missing from the vocabulary, with its first offset."""
        unknown: dict[str, int] = {}
        for offset, char in enumerate(text):
            if char not in self.index and char not in unknown:
                unknown[char] = offset
        return unknown

    def encode(self, text: str, skip_unknown: bool = False) -> np.ndarray:
        """Ids of the characters of ``text`` as an int64 array.

        Raises :class:`UnknownCharacterError` naming every unknown character and where it
        first occurs, unless ``skip_unknown`` drops them.
        """
        index = self.index
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError:
            pass
        if skip_unknown:
            return np.fromiter((index[c] for c in text if c in index), dtype=np.int64)
        unknown = self.unknown_characters(text)
        listed = ", ".join(f"{char!r} at offset {offset}" for char, offset in unknown.items())
        raise UnknownCharacterError(
            f"{len(unknown)} character(s) not in the vocabulary: {listed}"
        )

    def decode(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> str:
        """The text spelled by ``ids``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        elif isinstance(ids, np.ndarray):
            ids = ids.tolist()
        characters = self.characters
        return "".join(characters[i] for i in ids)

    def one_hot(self, text: str) -> torch.Tensor:
        """One-hot rows of ``text``: a float tensor of shape ``(len(text), size)``."""
        return one_hot(torch.from_numpy(self.encode(text)), self.size)

    def to_json(self) -> str:
        """The vocabulary as JSON: ``{"characters": [...]}``, in id order."""
        return json.dumps({"characters": self.characters}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> "Vocabulary":
        """Rebuild a vocabulary written by :meth:`to_json`; anything else is a ``ValueError``."""
        try:
            loaded = json.loads(data)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        return cls._from_characters(loaded.get("characters") if isinstance(loaded, dict) else None)

    @classmethod
    def _from_characters(cls, characters) -> "Vocabulary":
        if (not isinstance(characters, list) or not characters
                or not all(isinstance(char, str) and len(char) == 1 for char in characters)
                or characters != sorted(set(characters))):
            raise ValueError('expected {"characters": [...]}, a sorted list of distinct single characters')
        return cls(characters)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` (a ``vocab.json``), atomically."""
        atomic_write(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a ``vocab.json``; a missing or damaged file is a :class:`~charrnn.files.CheckpointError`."""
        values = read_json(path)
        try:
            return cls._from_characters(values.get("characters") if isinstance(values, dict) else None)
        except ValueError as error:
            raise CheckpointError(f"{path}: {error}") from None


def one_hot(ids: torch.Tensor, depth: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``tf.one_hot``: ids of any shape ``S`` become a float tensor of shape ``S + (depth,)``."""
    return torch.nn.functional.one_hot(torch.as_tensor(ids, dtype=torch.long), depth).to(dtype)
