"""``charrnn sample CHECKPOINT``: generate text from a trained model, streaming it to stdout.

A thin layer over :func:`charrnn.checkpoint.load_model` and
:func:`charrnn.sampling.sample_streams` (:func:`charrnn.sampling.sample_scored` for ``--json``).
Several samples are made together, ``--batch-size`` at a time: the first of each batch streams
as it is made, the others follow when their batch ends. With ``--output FILE`` the text goes to
FILE, written whole or not at all, instead of stdout. ``--beam-width K`` prints the most likely
continuations instead (:func:`charrnn.sampling.beam_search`), and refuses the flags of drawing.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from charrnn.checkpoint import BEST, CHECKPOINTS_FOLDER, LATEST, load_model
from charrnn.checks import check_integer, flag, non_negative_int, positive_int
from charrnn.files import atomic_write, previous_copy, read_json
from charrnn.commands import CHECKPOINT_HELP, add_machine_arguments
from charrnn.corpus import read_text
from charrnn.devices import num_threads, select_device
from charrnn.errors import SettingError
from charrnn.sampling import MAX_BEAM_WIDTH, beam_search, make_generator, sample_scored, sample_streams
from charrnn.vocabulary import UnknownCharacterError

#: The line between samples: no text a model makes looks like it by chance.
DEFAULT_SEPARATOR = "--- sample {number} ---"
#: Samples made together by default (a step of 64 streams costs a few times a step of one).
DEFAULT_BATCH_SIZE = 64
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.int8}

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
                        help="drop prime characters the model's vocabulary lacks instead of failing "
                             "(a note on stderr names them)")
    parser.add_argument("--length", type=non_negative_int, default=500, metavar="N",
                        help="characters to generate per sample, at most (default: 500)")
    parser.add_argument("--temperature", type=float, nargs="+", metavar="T",
                        help="> 0; lower is more conservative, higher more varied (default: 1.0); "
                             "several: --num-samples samples at each, each headed by its temperature")
    parser.add_argument("--top-k", type=positive_int, metavar="K", help="draw only among the K most likely characters")
    parser.add_argument("--top-p", type=float, metavar="P",
                        help="draw only among the most likely characters holding probability P, in (0, 1]")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely character")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="end a sample right after the first TEXT it generates (repeatable; the "
                             "prime does not count)")
    parser.add_argument("--stop-at-newline", action="store_true", help="the same as --stop '\\n'")
    parser.add_argument("--num-samples", type=positive_int, default=1, metavar="N",
                        help="samples to generate (per temperature), separated by --separator (default: 1)")
    parser.add_argument("--separator", metavar="TEXT", default=DEFAULT_SEPARATOR,
                        help="the line between samples; {number} in TEXT is the number of the sample that "
                             f"follows (default: {DEFAULT_SEPARATOR!r}; '' for a blank line)")
    parser.add_argument("--output", metavar="FILE",
                        help="write what would go to stdout to FILE instead, whole or not at all")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per sample per line: text, prime, temperature, top_k, "
                             "top_p, seed, checkpoint, log_probability, characters")
    parser.add_argument("--batch-size", type=positive_int, metavar="N",
                        help=f"samples made together (default: {DEFAULT_BATCH_SIZE}); the first of each "
                             "batch streams, the others print when the batch ends")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                        help="precision of the step's matrix products (default: float32): bfloat16 reads "
                             "half the bytes of weights per character, int8 (LSTM models) a quarter, so one "
                             "sample is faster; both are slightly less exact (within 0.01 nats/character "
                             "on tinyshakespeare)")
    parser.add_argument("--beam-width", type=positive_int, metavar="K",
                        help="beam search: print the most likely continuation of --length characters "
                             "(its total log-probability, not length-normalised: every candidate has the "
                             f"same length), keeping the K (<= {MAX_BEAM_WIDTH}) most likely texts at each "
                             "character; "
                             "--num-samples N <= K prints the N best; draws nothing, so --temperature, "
                             "--top-k, --top-p, --greedy, --stop, --seed and --batch-size do not apply")
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


#: What a flag of drawing is called when refused beside --beam-width, and whether it was given.
_DRAWING_FLAGS = {"--temperature": lambda args: args.temperature is not None,
                  "--top-k": lambda args: args.top_k is not None, "--top-p": lambda args: args.top_p is not None,
                  "--greedy": lambda args: args.greedy, "--stop": lambda args: bool(args.stop),
                  "--stop-at-newline": lambda args: args.stop_at_newline,
                  "--seed": lambda args: args.seed is not None,
                  "--batch-size": lambda args: args.batch_size is not None}


def check_beam_options(args) -> None:
    """Refuse, in one line, a flag that means nothing beside ``--beam-width`` (before any loading)."""
    if args.beam_width is None:
        return
    check_integer("beam_width", args.beam_width, maximum=MAX_BEAM_WIDTH)
    given = [name for name, is_given in _DRAWING_FLAGS.items() if is_given(args)]
    if given:
        raise SettingError(f"{flag('beam_width')} finds the most likely text and draws nothing: "
                           f"{given[0]} does not apply to it")
    if args.num_samples > args.beam_width:
        raise SettingError(f"--num-samples must be at most --beam-width ({args.beam_width}): a beam search "
                           f"keeps that many texts, got {args.num_samples}")


def run(args) -> int:
    """Load the model, then print ``--num-samples`` samples per temperature (or the best beams), separated."""
    check_beam_options(args)
    device = select_device(args.device)
    with num_threads(args.threads):
        return _sample(args, device)


def note(message: str) -> None:
    """One line for the user on stderr (never on stdout, which holds the samples)."""
    print(f"charrnn: note: {message}", file=sys.stderr)


def dropped_note(unknown: dict[str, int]) -> str:
    """What ``--skip-unknown`` dropped from the prime: each character with its count."""
    listed = ", ".join(f"{character!r} (x{count})" for character, count in unknown.items())
    return (f"dropped {sum(unknown.values())} character(s) the model does not know from the prime: "
            f"{listed}")


def checkpoint_notes(requested, loaded_path: Path) -> tuple[str | None, str]:
    """(a fallback note or None, the note naming the loaded checkpoint) for ``requested``.

    ``loaded_path`` is :func:`charrnn.checkpoint.resolve_checkpoint`'s answer (``loaded.path``).
    """
    checkpoints = Path(requested) / CHECKPOINTS_FOLDER
    fallback = None
    if checkpoints.is_dir():
        best = checkpoints / BEST
        if loaded_path not in (best, previous_copy(best)):
            fallback = f"{requested}: the run has no {CHECKPOINTS_FOLDER}/{BEST} yet; fell back to {LATEST}"
    details = []
    trainer_file = loaded_path / "trainer.json"
    if trainer_file.is_file():
        trainer = read_json(trainer_file)
        if isinstance(trainer, dict):
            if isinstance(trainer.get("step"), int):
                details.append(f"step {trainer['step']:,}")
            key = "best_val_loss" if loaded_path.name.startswith(BEST) else "last_val_loss"
            loss = trainer.get(key, trainer.get("last_val_loss"))
            if isinstance(loss, (int, float)):
                details.append(f"validation loss {loss:.4f}")
    return fallback, f"loaded {loaded_path}" + (f" ({', '.join(details)})" if details else "")


def _separator(args, number: int) -> str:
    """What goes before sample ``number`` (from 2): a line holding --separator."""
    return "\n" + args.separator.replace("{number}", str(number)) + "\n"


def _sample(args, device: torch.device) -> int:
    prime = read_text(args.prime_file, args.encoding) if args.prime_file else args.prime
    loaded = load_model(args.checkpoint, map_location=device)
    generator = make_generator(args.seed, device=loaded.model.head.weight.device)
    stop = list(args.stop) + (["\n"] if args.stop_at_newline else [])
    unknown = Counter(character for character in prime if character not in loaded.vocabulary) \
        if args.skip_unknown else Counter()
    used_prime = "".join(character for character in prime if character in loaded.vocabulary) if unknown else prime
    options = dict(prime=prime, length=args.length, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy,
                   generator=generator, skip_unknown=args.skip_unknown, dtype=DTYPES[args.dtype], stop=stop)
    out = io.StringIO() if args.output else sys.stdout
    notes = [dropped_note(dict(Counter(unknown)))] if unknown else []
    fallback, loaded_note = checkpoint_notes(args.checkpoint, loaded.path)
    notes += ([fallback] if fallback else []) + [loaded_note]
    if args.beam_width is not None:
        return _beam(args, loaded, prime, used_prime, out, notes)
    batch_size = args.batch_size or DEFAULT_BATCH_SIZE
    temperatures = args.temperature or [1.0]
    number = 0
    for temperature in temperatures:
        for first in range(0, args.num_samples, batch_size):
            count = min(batch_size, args.num_samples - first)
            try:
                if args.json:
                    scored = sample_scored(loaded.model, loaded.vocabulary, count, temperature=temperature, **options)
                else:
                    columns = sample_streams(loaded.model, loaded.vocabulary, count, temperature=temperature,
                                             **options)
            except UnknownCharacterError as error:
                where = f"{args.prime_file}: " if args.prime_file else ""
                raise UnknownCharacterError(f"{where}{error}; pass --skip-unknown to drop them") from None
            for line in notes:  # once, when the settings have passed their checks
                note(line)
            notes = []
            if args.json:
                for text, log_probability in scored:
                    out.write(json.dumps({
                        "text": text, "prime": used_prime, "temperature": temperature, "top_k": args.top_k,
                        "top_p": args.top_p, "seed": args.seed, "checkpoint": str(loaded.path),
                        "log_probability": log_probability, "characters": len(text)}, ensure_ascii=False) + "\n")
                continue
            others = [[] for _ in range(count - 1)]
            label = f"--- temperature {temperature:g} ---\n" if len(temperatures) > 1 else ""
            number += 1
            out.write((_separator(args, number) if number > 1 else "") + label + used_prime)
            _write_stream(_first_stream(columns, others), out)
            for held in others:
                number += 1
                out.write(_separator(args, number) + label + used_prime + "".join(held))
    return _finish(args, out)


def _beam(args, loaded, prime: str, used_prime: str, out, notes: list[str]) -> int:
    """``--beam-width``: the ``--num-samples`` most likely continuations, best first."""
    try:
        beams = beam_search(loaded.model, loaded.vocabulary, prime=prime, length=args.length,
                            beam_width=args.beam_width, skip_unknown=args.skip_unknown, dtype=DTYPES[args.dtype])
    except UnknownCharacterError as error:
        where = f"{args.prime_file}: " if args.prime_file else ""
        raise UnknownCharacterError(f"{where}{error}; pass --skip-unknown to drop them") from None
    for line in notes:
        note(line)
    best_text, best_score = beams[0]
    per_character = f" ({best_score / len(best_text):.4f} per character)" if best_text else ""
    note(f"beam search (width {args.beam_width}): log-probability {best_score:.4f} nats{per_character}")
    for rank, (text, log_probability) in enumerate(beams[:args.num_samples], start=1):
        if args.json:
            out.write(json.dumps({"text": text, "prime": used_prime, "beam_width": args.beam_width, "rank": rank,
                                  "checkpoint": str(loaded.path), "log_probability": log_probability,
                                  "characters": len(text)}, ensure_ascii=False) + "\n")
        else:
            out.write((_separator(args, rank) if rank > 1 else "") + used_prime + text)
    return _finish(args, out)


def _finish(args, out) -> int:
    """End the text output with a line break, and write ``--output`` whole (atomically)."""
    if not args.json:
        out.write("\n")
    out.flush()
    if args.output:
        atomic_write(args.output, out.getvalue())
    return 0
