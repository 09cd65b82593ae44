"""``charrnn sample CHECKPOINT``: generate text from a trained model, streaming it to stdout.

A thin layer over :func:`charrnn.checkpoint.load_model` and :func:`charrnn.sampling.sample`.
"""

from __future__ import annotations

import sys
import time

import torch

from charrnn.checkpoint import load_model
from charrnn.corpus import read_text
from charrnn.errors import CharRNNError
from charrnn.sampling import make_generator, sample
from charrnn.vocabulary import UnknownCharacterError

#: Seconds between flushes of stdout while a line is being made (a line break always flushes).
FLUSH_INTERVAL = 0.05


def add_parser(subparsers) -> None:
    """Register ``charrnn sample``."""
    parser = subparsers.add_parser(
        "sample", help="generate text from a trained model",
        description="Generate text from a checkpoint (or a run directory: its best checkpoint), "
                    "streaming it as it is made. The prime is printed first, then its continuation.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a run directory or a checkpoint folder")
    primes = parser.add_mutually_exclusive_group()
    primes.add_argument("--prime", default="", metavar="TEXT", help="text to start from (default: none)")
    primes.add_argument("--prime-file", metavar="FILE", help="read the prime from a text file")
    parser.add_argument("--encoding", default="utf-8", help="encoding of --prime-file (default: utf-8)")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="drop prime characters the model's vocabulary lacks instead of failing")
    parser.add_argument("--length", type=int, default=500, metavar="N",
                        help="characters to generate per sample (default: 500)")
    parser.add_argument("--temperature", type=float, default=1.0, metavar="T",
                        help="> 0; lower is more conservative, higher more varied (default: 1.0)")
    parser.add_argument("--top-k", type=int, metavar="K", help="draw only among the K most likely characters")
    parser.add_argument("--top-p", type=float, metavar="P",
                        help="draw only among the most likely characters holding probability P, in (0, 1]")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely character")
    parser.add_argument("--num-samples", type=int, default=1, metavar="N",
                        help="samples to generate, separated by a blank line (default: 1)")
    parser.add_argument("--seed", type=int, metavar="S", help="random seed, for reproducible samples")
    parser.add_argument("--device", default="cpu", help="where to run the model: cpu (default), cuda, mps")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads (default: PyTorch's; 1 is fastest on a busy machine)")
    parser.set_defaults(run=run)


def _check(args) -> None:
    if args.num_samples < 1:
        raise CharRNNError(f"--num-samples must be an integer >= 1, got {args.num_samples}")
    if args.threads is not None and args.threads < 1:
        raise CharRNNError(f"--threads must be an integer >= 1, got {args.threads}")


def _write_stream(characters, out) -> None:
    """Write characters as they come, flushing at each line break and every FLUSH_INTERVAL."""
    last_flush = time.monotonic()
    for character in characters:
        out.write(character)
        now = time.monotonic()
        if character == "\n" or now - last_flush >= FLUSH_INTERVAL:
            out.flush()
            last_flush = now
    out.flush()


def run(args) -> int:
    """Load the model, then print ``--num-samples`` samples to stdout."""
    _check(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    prime = read_text(args.prime_file, args.encoding) if args.prime_file else args.prime
    loaded = load_model(args.checkpoint, map_location=args.device)
    generator = make_generator(args.seed, device=loaded.model.head.weight.device)
    options = dict(prime=prime, length=args.length, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, greedy=args.greedy, generator=generator, skip_unknown=args.skip_unknown)
    out = sys.stdout
    for index in range(args.num_samples):
        try:
            characters = sample(loaded.model, loaded.vocabulary, **options)
        except UnknownCharacterError as error:
            where = f"{args.prime_file}: " if args.prime_file else ""
            raise UnknownCharacterError(f"{where}{error}; pass --skip-unknown to drop them") from None
        if index > 0:
            out.write("\n\n")
        out.write(prime)
        _write_stream(characters, out)
    out.write("\n")
    out.flush()
    return 0
