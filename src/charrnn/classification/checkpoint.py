"""Classifier checkpoints: charrnn's one checkpoint format (see :mod:`charrnn.checkpoint`),
``kind`` ``"classifier"``, with the class names in ``labels.json``, and, for a classifier
blended with an n-gram model, that model's terms and settings in ``ngrams.json`` and its idf,
coefficients and intercepts in ``ngrams.safetensors``. No pickle: loading never runs code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from charrnn.checkpoint import (
    CONFIG_FILE,
    LABELS_FILE,
    NGRAM_FILES,
    NGRAMS,
    load_checkpoint,
    save_checkpoint,
)
from charrnn.classification.model import CharClassifier
from charrnn.classification.ngrams import NgramModel
from charrnn.classification.predict import TextClassifier
from charrnn.files import CheckpointError, load_tensors, read_json


def save_classifier(classifier: TextClassifier, folder: str | os.PathLike) -> Path:
    """Write ``classifier`` into the checkpoint folder ``folder``, whole or not at all."""
    extra_json = {LABELS_FILE.removesuffix(".json"): {"labels": [str(label) for label in classifier.classes]}}
    extra_tensors = None
    if classifier.ngrams is not None and classifier.model.config.ngram_weight > 0:
        extra_json[NGRAMS] = classifier.ngrams.to_json()
        extra_tensors = {NGRAMS: classifier.ngrams.tensors()}
    return save_checkpoint(folder, classifier.model, classifier.vocabulary, classifier.model.config,
                           extra_tensors=extra_tensors, extra_json=extra_json)


def load_classifier(folder: str | os.PathLike, device: str | torch.device = "cpu") -> TextClassifier:
    """Read a folder written by :func:`save_classifier`; any defect is a :class:`CheckpointError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such checkpoint folder")
    loaded = load_checkpoint(folder, CharClassifier, device)
    labels = read_json(folder / LABELS_FILE)
    classes = labels.get("labels") if isinstance(labels, dict) else None
    if (not isinstance(classes, list) or not all(isinstance(label, str) for label in classes)
            or len(classes) != loaded.config.num_classes):
        raise CheckpointError(f"{folder / LABELS_FILE}: expected {{\"labels\": [names...]}} with the "
                              f"{loaded.config.num_classes} classes of {folder / CONFIG_FILE}")
    ngrams = None
    if loaded.config.ngram_weight > 0:
        json_file, tensor_file = (loaded.path / name for name in NGRAM_FILES)
        ngrams = NgramModel.from_saved(read_json(json_file), load_tensors(tensor_file), loaded.config.num_classes,
                                       json_file, tensor_file)
    return TextClassifier(loaded.model, loaded.vocabulary, classes, ngrams)
