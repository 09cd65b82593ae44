"""The learning-rate schedule of every charrnn trainer: linear warm-up, then a decay to a floor.

Examples
--------
>>> schedule = Schedule(learning_rate=1e-2, final_learning_rate=1e-3, warmup_steps=10)
>>> round(schedule.rate(0, 0.0), 6), round(schedule.rate(9, 0.0), 6), round(schedule.rate(99, 1.0), 6)
(0.001, 0.01, 0.001)

A warm-up that also ends after a fraction of the run's steps, for runs too short for 100 of it:

>>> short = Schedule(learning_rate=1e-2, final_learning_rate=1e-3, warmup_steps=100, warmup_fraction=0.05)
>>> round(short.rate(0, 0.0, run_steps=20), 6), round(short.rate(2, 3 / 20, run_steps=20), 6) > 0.008
(0.0001, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DECAYS = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class Schedule:
    """Warm-up over ``warmup_steps``, then ``decay`` from ``learning_rate`` to ``final_learning_rate``.

    ``decay`` is 'cosine', 'linear' or 'constant' (the peak throughout). With
    ``warmup_fraction``, the warm-up ends at the latest after that fraction of the run's steps,
    so that a run shorter than its warm-up still trains at its peak rate.
    """

    learning_rate: float
    final_learning_rate: float
    warmup_steps: int = 0
    decay: str = "cosine"
    warmup_fraction: float | None = None

    def rate(self, step: int, progress: float, run_steps: float | None = None) -> float:
        """The rate of step ``step`` (0-based) when the run is ``progress`` (0..1) done.

        Progress is the trainer's to measure: in steps, or in time for a run limited by time,
        so that the decay reaches its floor at the run's end either way. ``run_steps`` is how
        many steps the run makes, known or expected (None: not yet known), which
        ``warmup_fraction`` is a fraction of. It is counted in steps, not read from
        ``progress``, because a run limited by time spends its first seconds on start-up and on
        whatever else shares the machine then: a warm-up read off the clock would be over
        within a few steps, and a large model's first steps at its peak rate can diverge.
        """
        progress = min(max(progress, 0.0), 1.0)
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.warmup_fraction and run_steps:
            warm = max(warm, min(1.0, step / (self.warmup_fraction * run_steps)))
        top, bottom = self.learning_rate, self.final_learning_rate
        if self.decay == "cosine":
            rate = bottom + (top - bottom) * 0.5 * (1.0 + math.cos(math.pi * progress))
        elif self.decay == "linear":
            rate = top + (bottom - top) * progress
        else:
            rate = top
        return rate * warm
