"""A short run of ``bench/fuzz_checkpoint.py``: mutated checkpoints only raise charrnn's own error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fuzz_checkpoint.py"


@pytest.fixture(scope="module")
def fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_checkpoint", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mutated_checkpoints_only_raise_charrnn_errors(fuzz_module, tmp_path):
    counts = fuzz_module.fuzz(cases=300, seed=12345, work=tmp_path)  # raises on anything else
    outcomes = {outcome for _, outcome in counts}
    mutations = {name for kind, _ in counts for name in kind.split("+")}
    assert sum(counts.values()) == 300
    assert "refused" in outcomes  # the damage was seen ...
    assert mutations == set(fuzz_module.MUTATIONS)  # ... of every kind


def test_the_fuzzer_notices_an_escaping_exception(fuzz_module, tmp_path, monkeypatch):
    """The check itself works: a loader that lets an OSError out fails the run, naming the case."""
    def broken(run):
        raise OSError("not ours")

    monkeypatch.setattr(fuzz_module, "load_everything", broken)
    with pytest.raises(AssertionError, match=r"case 0 .*OSError escaped the loader"):
        fuzz_module.fuzz(cases=3, seed=0, work=tmp_path)
