"""Checks of settings: what a value must be, and the one way of saying that it is not.

Every setting is named as its command-line flag (``hidden_size`` -> ``--hidden-size``), so the
library and the command line say the same thing::

    --hidden-size must be a positive integer, got 0
    --dropout must be a number in [0.0, 1.0), got 1.5
    --cell must be one of gru, lstm, rnn, got 'tcn'

The errors are :class:`~charrnn.errors.SettingError`, both a ``CharRNNError`` (one line, exit
status 2) and a ``ValueError`` (what scikit-learn and PyTorch raise for a bad argument).
NumPy integers and floats count as numbers; ``True`` and ``False`` do not.

The argparse types at the end parse a flag's text and apply the same checks, so that a flag
is refused before anything is read, with the same words.

Examples
--------
>>> check_integer("batch_size", 32)
32
>>> check_number("dropout", 1.5, low=0.0, high=1.0, high_open=True)
Traceback (most recent call last):
...
charrnn.errors.SettingError: --dropout must be a number in [0.0, 1.0), got 1.5
"""

from __future__ import annotations

import argparse
import math
import numbers
from typing import Callable, Iterable

from charrnn.errors import SettingError

#: Settings whose command-line flag is not their name with dashes.
FLAG_NAMES = {"num_threads": "--threads"}


def flag(name: str) -> str:
    """The command-line spelling of setting ``name``: ``'hidden_size'`` -> ``'--hidden-size'``."""
    if not name or name.startswith("-"):
        return name
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _must_be(name: str, expected: str, value, as_flag: bool = True) -> SettingError:
    """``--name must be EXPECTED, got VALUE`` (without a name: ``must be ...``, for argparse)."""
    return SettingError(f"{flag(name) if as_flag else name} must be {expected}, got {value!r}".lstrip())


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_integer(name: str, value, minimum: int = 1, maximum: int | None = None, as_flag: bool = True) -> int:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``, else a :class:`SettingError`.

    ``as_flag=False`` names a Python argument as it is (``num_units``), not as a flag.
    """
    if not _is_integer(value) or value < minimum or (maximum is not None and value > maximum):
        if maximum is not None:
            expected = f"an integer in [{minimum}, {maximum}]"
        else:
            expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise _must_be(name, expected, value, as_flag)
    return int(value)


def check_number(name: str, value, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite number in the interval, else a :class:`SettingError`.

    ``low_open`` / ``high_open`` leave an end out of the interval.
    """
    ok = _is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is None and low_open:
            expected = f"a number > {low:g}"
        elif low is None and high is None:
            expected = "a finite number"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            expected = f"a number in {left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise _must_be(name, expected, value)
    return float(value)


def check_choice(name: str, value, choices: Iterable):
    """``value`` if it is one of ``choices``, else a :class:`SettingError` listing them."""
    choices = list(choices)
    if value not in choices:
        raise _must_be(name, f"one of {', '.join(map(str, choices))}", value)
    return value


def check_optional(check: Callable, name: str, value, *args, **kwargs):
    """``None``, or ``check(name, value, ...)``: a setting that may be left out."""
    return None if value is None else check(name, value, *args, **kwargs)


# -- argparse types ------------------------------------------------------------------------------
def _argument_type(parse: Callable[[str], object], check: Callable, *args, **kwargs):
    """An argparse type: parse the text, then apply ``check``; errors read ``must be ..., got ...``.

    :func:`charrnn.cli.main` puts the flag in front: ``--top-k must be a positive integer, got 0``.
    """
    kind = "int" if parse is int else "float"

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind} value: {text!r}") from None
        try:
            return check("", value, *args, **kwargs)
        except SettingError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = kind  # argparse names the type in some messages
    return convert


#: An integer of at least 1.
positive_int = _argument_type(int, check_integer, minimum=1)
#: An integer of at least 0.
non_negative_int = _argument_type(int, check_integer, minimum=0)


def integer_at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    return _argument_type(int, check_integer, minimum=minimum)


def number_in(low: float | None = None, high: float | None = None, low_open: bool = False,
              high_open: bool = False):
    """An argparse type: a finite number in the interval (see :func:`check_number`)."""
    return _argument_type(float, check_number, low=low, high=high, low_open=low_open, high_open=high_open)
