"""``charrnn eval CHECKPOINT FILE``: how well a trained model predicts a text.

A thin layer over the library: :func:`charrnn.checkpoint.load_model`,
:func:`charrnn.corpus.read_text`, :meth:`charrnn.vocabulary.Vocabulary.encode` and
:func:`charrnn.evaluation.evaluate`; a Python user makes the same four calls.
"""

from __future__ import annotations

import json
import math

import torch

from charrnn.checkpoint import load_model
from charrnn.checks import positive_int
from charrnn.commands import CHECKPOINT_HELP, add_machine_arguments
from charrnn.corpus import read_text
from charrnn.devices import num_threads, select_device
from charrnn.errors import CharRNNError
from charrnn.evaluation import evaluate
from charrnn.vocabulary import UnknownCharacterError


def add_parser(subparsers) -> None:
    """Register ``charrnn eval``."""
    parser = subparsers.add_parser(
        "eval", help="loss, bits per character and perplexity of a model on a text",
        description="Evaluate a checkpoint (or a run directory: its best checkpoint) on a text file: "
                    "the mean cross-entropy of predicting each character from the ones before it, "
                    "in nats and in bits per character, and the perplexity exp(loss). "
                    "The text is cut into --batch-size streams, "
                    "each read from the start with its state carried to its end.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    parser.add_argument("file", metavar="FILE", help="the text file to evaluate on")
    parser.add_argument("--batch-size", type=positive_int, default=32, metavar="B",
                        help="parallel streams (default: 32; 1 gives every character the whole text before it)")
    parser.add_argument("--sequence-length", type=positive_int, default=256, metavar="T",
                        help="characters per stream per forward call (default: 256)")
    parser.add_argument("--encoding", default="utf-8", help="encoding of FILE (default: utf-8)")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="drop characters the model's vocabulary lacks instead of failing")
    add_machine_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(run=run)


def run(args) -> int:
    """Evaluate and print ``loss``, ``bits per character``, ``perplexity`` and the number of characters."""
    device = select_device(args.device)
    with num_threads(args.threads):
        return _evaluate(args, device)


def _evaluate(args, device: torch.device) -> int:
    text = read_text(args.file, args.encoding)
    loaded = load_model(args.checkpoint, map_location=device)
    vocabulary = loaded.vocabulary
    unknown = vocabulary.unknown_characters(text) if args.skip_unknown else {}
    try:
        ids = vocabulary.encode(text, skip_unknown=args.skip_unknown)
    except UnknownCharacterError as error:
        raise UnknownCharacterError(f"{args.file}: {error}; pass --skip-unknown to drop them") from None
    skipped = len(text) - len(ids)
    try:
        result = evaluate(loaded.model, ids, batch_size=args.batch_size, sequence_length=args.sequence_length,
                          device=loaded.model.head.weight.device)
    except CharRNNError as error:
        raise CharRNNError(f"{args.file}: {error}") from None
    perplexity = math.exp(result.loss)  # the mean number of characters the model hesitates between
    if args.json:
        print(json.dumps({"checkpoint": str(loaded.path), "file": args.file, "loss": result.loss,
                          "bits_per_character": result.bits_per_character, "perplexity": perplexity,
                          "num_characters": result.num_characters, "skipped_characters": skipped}))
        return 0
    print(f"loss: {result.loss:.4f} nats/character")
    print(f"bits per character: {result.bits_per_character:.4f}")
    print(f"characters: {result.num_characters:,} predicted ({args.file}; checkpoint {loaded.path})")
    print(f"perplexity: {perplexity:.4f}")
    if skipped:
        listed = ", ".join(repr(char) for char in unknown)
        print(f"skipped: {skipped:,} character(s) outside the vocabulary ({listed})")
    return 0
