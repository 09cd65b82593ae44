"""A short fuzz run (:mod:`charrnn.fuzzing`): mutated checkpoints only raise charrnn's own error."""

from __future__ import annotations

import pytest

from charrnn import fuzzing


def test_mutated_checkpoints_only_raise_charrnn_errors(tmp_path):
    counts = fuzzing.fuzz(cases=300, seed=12345, work=tmp_path)  # raises on anything else
    outcomes = {outcome for _, outcome in counts}
    mutations = {name for kind, _ in counts for name in kind.split("+")}
    assert sum(counts.values()) == 300
    assert "refused" in outcomes  # the damage was seen ...
    assert mutations == set(fuzzing.MUTATIONS)  # ... of every kind


def test_the_fuzzer_notices_an_escaping_exception(tmp_path, monkeypatch):
    """The check itself works: a loader that lets an OSError out fails the run, naming the case."""
    def broken(run):
        raise OSError("not ours")

    monkeypatch.setattr(fuzzing, "load_everything", broken)
    with pytest.raises(AssertionError, match=r"case 0 .*OSError escaped the loader"):
        fuzzing.fuzz(cases=3, seed=0, work=tmp_path)
