"""``charrnn sample CHECKPOINT``: generate text from a trained model, streaming it to stdout.

A thin layer over :func:`charrnn.checkpoint.load_model` and
:func:`charrnn.sampling.sample_streams`. Several samples are made together, ``--batch-size`` at
a time: the first of each batch streams as it is made, the others follow when their batch ends.
"""

from __future__ import annotations

import sys
import time

import torch

from charrnn.checkpoint import load_model
from charrnn.checks import non_negative_int, positive_int
from charrnn.commands import CHECKPOINT_HELP, add_machine_arguments
from charrnn.corpus import read_text
from charrnn.devices import num_threads, select_device
from charrnn.sampling import make_generator, sample_streams
from charrnn.vocabulary import UnknownCharacterError

#: Samples made together by default (a step of 64 streams costs a few times a step of one).
DEFAULT_BATCH_SIZE = 64
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: Seconds between flushes of stdout while a line is being made (a line break always flushes).
FLUSH_INTERVAL = 0.05


def add_parser(subparsers) -> None:
    """Register ``charrnn sample``."""
    parser = subparsers.add_parser(
        "sample", help="generate text from a trained model",
        description="Generate text from a checkpoint (or a run directory: its best checkpoint), "
                    "streaming it as it is made. The prime is printed first, then its continuation.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    primes = parser.add_mutually_exclusive_group()
    primes.add_argument("--prime", default="", metavar="TEXT", help="text to start from (default: none)")
    primes.add_argument("--prime-file", metavar="FILE", help="read the prime from a text file")
    parser.add_argument("--encoding", default="utf-8", help="encoding of --prime-file (default: utf-8)")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="drop prime characters the model's vocabulary lacks instead of failing")
    parser.add_argument("--length", type=non_negative_int, default=500, metavar="N",
                        help="characters to generate per sample (default: 500)")
    parser.add_argument("--temperature", type=float, default=1.0, metavar="T",
                        help="> 0; lower is more conservative, higher more varied (default: 1.0)")
    parser.add_argument("--top-k", type=positive_int, metavar="K", help="draw only among the K most likely characters")
    parser.add_argument("--top-p", type=float, metavar="P",
                        help="draw only among the most likely characters holding probability P, in (0, 1]")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely character")
    parser.add_argument("--num-samples", type=positive_int, default=1, metavar="N",
                        help="samples to generate, separated by a blank line (default: 1)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"samples made together (default: {DEFAULT_BATCH_SIZE}); the first of each "
                             "batch streams, the others print when the batch ends")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                        help="precision to compute in (default: float32); bfloat16 is several times "
                             "faster for many samples on a CPU with bfloat16 instructions, slightly less exact")
    parser.add_argument("--seed", type=non_negative_int, metavar="S", help="random seed, for reproducible samples")
    add_machine_arguments(parser)
    parser.set_defaults(run=run)


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


def _first_stream(columns, others: list[list[str]]):
    """The first sample's characters, one at a time, while the others' are kept in ``others``."""
    for column in columns:
        for held, character in zip(others, column[1:]):
            held.append(character)
        yield column[0]


def run(args) -> int:
    """Load the model, then print ``--num-samples`` samples to stdout, separated by a blank line."""
    device = select_device(args.device)
    with num_threads(args.threads):
        return _sample(args, device)


def _sample(args, device: torch.device) -> int:
    prime = read_text(args.prime_file, args.encoding) if args.prime_file else args.prime
    loaded = load_model(args.checkpoint, map_location=device)
    generator = make_generator(args.seed, device=loaded.model.head.weight.device)
    options = dict(prime=prime, length=args.length, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, greedy=args.greedy, generator=generator, skip_unknown=args.skip_unknown,
                   dtype=DTYPES[args.dtype])
    out = sys.stdout
    for first in range(0, args.num_samples, args.batch_size):
        count = min(args.batch_size, args.num_samples - first)
        try:
            columns = sample_streams(loaded.model, loaded.vocabulary, count, **options)
        except UnknownCharacterError as error:
            where = f"{args.prime_file}: " if args.prime_file else ""
            raise UnknownCharacterError(f"{where}{error}; pass --skip-unknown to drop them") from None
        others = [[] for _ in range(count - 1)]
        out.write(("\n\n" if first > 0 else "") + prime)
        _write_stream(_first_stream(columns, others), out)
        for held in others:
            out.write("\n\n" + prime + "".join(held))
    out.write("\n")
    out.flush()
    return 0
