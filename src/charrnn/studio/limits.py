"""The studio's caps: how much work one request, or all of them together, may ask for.

A page left open or a script hammering the API must not exhaust the machine, so every size a
request names is checked against these before any work starts, and refused with a 4xx and a
sentence naming the cap.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StudioLimits:
    """Upper bounds on what requests may ask for (the defaults suit a laptop)."""

    #: Units per layer of a lecture model.
    max_hidden_size: int = 128
    #: Iterations of one lecture job (the long sentence's 500 fit many times over).
    max_iterations: int = 5000
    #: Iterations one Step request may take.
    max_step: int = 500
    #: Characters one sample may make, and the longest prime.
    max_sample_length: int = 2000
    max_prime_length: int = 2000
    #: Characters of a text to inspect (a recording keeps T x layers x kinds x units floats).
    max_inspect_length: int = 1000
    #: Lecture jobs alive at once (one per example in any case).
    max_jobs: int = 3
    #: Event streams open at once (lecture, metrics and samples together).
    max_streams: int = 8
    #: Samples being made, and texts being recorded, at once (each one keeps a thread busy).
    max_samples: int = 2
    max_inspections: int = 2
    #: Bytes of a request's body.
    max_body_bytes: int = 64_000
    #: Run folders listed, and folders looked at to find them.
    max_runs: int = 500
    max_folders_scanned: int = 5000
    #: Bytes of metrics.jsonl read per request (a longer log is read on the next one).
    max_metrics_bytes: int = 4_000_000
