"""Classifier checkpoints: a folder of ``config.json``, ``vocab.json``, ``labels.json`` and
``model.safetensors``, the language model's format plus the class names. No pickle: loading
never runs code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from charrnn.classification.model import CharClassifier, ClassifierConfig
from charrnn.classification.predict import TextClassifier
from charrnn.files import CheckpointError, atomic_write, load_tensors, read_json, save_tensors, write_json
from charrnn.errors import CharRNNError
from charrnn.vocabulary import Vocabulary

#: Written in the safetensors metadata, so a language-model checkpoint is told apart.
KIND = "charrnn-classifier"


def save_classifier(classifier: TextClassifier, folder: str | os.PathLike) -> Path:
    """Write ``classifier`` into ``folder`` (created if needed); each file is written atomically."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CharRNNError(f"{folder}: exists and is not a folder") from None
    save_tensors(folder / "model.safetensors", classifier.model.state_dict(), metadata={"kind": KIND})
    atomic_write(folder / "vocab.json", classifier.vocabulary.to_json() + "\n")
    write_json(folder / "labels.json", {"labels": [str(label) for label in classifier.classes]})
    write_json(folder / "config.json", classifier.model.config.to_dict())
    return folder


def load_classifier(folder: str | os.PathLike, device: str | torch.device = "cpu") -> TextClassifier:
    """Read a folder written by :func:`save_classifier`; any defect is a :class:`CheckpointError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    if not (folder / "labels.json").is_file():
        raise CheckpointError(f"{folder}: not a classifier checkpoint (no labels.json; "
                              "it may be a language model)")
    labels = read_json(folder / "labels.json")
    classes = labels.get("labels") if isinstance(labels, dict) else None
    if not isinstance(classes, list) or not all(isinstance(label, str) for label in classes):
        raise CheckpointError(f"{folder / 'labels.json'}: expected {{\"labels\": [names...]}}")
    settings = read_json(folder / "config.json")
    if not isinstance(settings, dict):
        raise CheckpointError(f"{folder / 'config.json'}: expected a JSON object")
    try:
        config = ClassifierConfig.from_dict(settings)
    except (CharRNNError, TypeError) as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
    try:
        vocabulary = Vocabulary.from_json((folder / "vocab.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{folder / 'vocab.json'}: file not found") from None
    except (ValueError, UnicodeDecodeError, AttributeError) as error:
        raise CheckpointError(f"{folder / 'vocab.json'}: not a charrnn vocabulary ({error})") from None
    if vocabulary.size != config.vocab_size or len(classes) != config.num_classes:
        raise CheckpointError(f"{folder}: config.json expects {config.vocab_size} characters and "
                              f"{config.num_classes} classes, vocab.json has {vocabulary.size} and "
                              f"labels.json {len(classes)}")
    model = CharClassifier(config)
    try:
        model.load_state_dict(load_tensors(folder / "model.safetensors"))
    except RuntimeError as error:
        raise CheckpointError(f"{folder / 'model.safetensors'}: does not fit config.json "
                              f"({str(error).splitlines()[0]})") from None
    model.to(device).eval()
    return TextClassifier(model, vocabulary, classes)
