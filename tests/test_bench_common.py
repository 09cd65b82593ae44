"""The benchmarks' shared helpers (``bench/common.py``): verdicts, results paths, interleaving, flags."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import common  # noqa: E402


def test_a_missed_target_makes_the_exit_status_1(capsys):
    verdicts = common.Verdicts()
    verdicts.add("speed", True, "2.0x")
    verdicts.add("figure", None, "reported")
    assert verdicts.finish() == 0
    verdicts.add("memory", False, "5 MB")
    assert verdicts.finish() == 1
    assert verdicts.failed == ["memory"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["PASS speed: 2.0x", "INFO figure: reported", "SUMMARY: 1/1 targets met; 1 reported without a verdict"]
    assert lines[-1] == "SUMMARY: 1/2 targets met; MISSED: memory; 1 reported without a verdict"
    assert [record["passed"] for record in verdicts.records()] == [True, None, False]


def test_no_target_is_exit_status_0(capsys):
    verdicts = common.Verdicts()
    verdicts.add("TF / charrnn", None, "no verdict: TensorFlow is not installed")
    assert verdicts.finish() == 0
    assert "SUMMARY: no target" in capsys.readouterr().out


def test_results_path_names_the_benchmark_and_the_time(tmp_path):
    path = common.results_path("sample")
    assert path.parent == common.RESULTS
    assert re.fullmatch(r"sample-\d{8}-\d{6}\.json", path.name)
    assert common.results_path("sample", tmp_path / "mine.json") == tmp_path / "mine.json"
    with pytest.raises(ValueError, match="name='../x'"):
        common.results_path("../x")


def test_write_results_adds_the_load_after(tmp_path, capsys):
    path = common.write_results({"benchmark": "x", "where": tmp_path}, tmp_path / "deep" / "x.json")
    report = json.loads(path.read_text())
    assert report["benchmark"] == "x" and report["where"] == str(tmp_path)
    assert len(report["load_average_after"]) == 3
    assert f"results: {path}" in capsys.readouterr().out


def test_interleaved_takes_turns_and_keeps_results():
    calls = []
    candidates = {name: (lambda name=name: calls.append(name) or name.upper()) for name in "ab"}
    timings = common.interleaved(candidates, rounds=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert [timing.result for timing in timings["b"]] == ["B"] * 3
    assert all(timing.wall >= 0 and timing.cpu >= 0 for timing in timings["a"])
    calls.clear()
    common.interleaved(candidates, rounds=3, alternate=True)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    with pytest.raises(ValueError, match="rounds=0"):
        common.interleaved(candidates, rounds=0)


def test_common_flags():
    parser = argparse.ArgumentParser()
    common.add_common_arguments(parser, threads=[1, 2], rounds=3, data=Path("corpus.txt"))
    args = parser.parse_args([])
    assert (args.threads, args.rounds, args.data, args.results) == ([1, 2], 3, Path("corpus.txt"), None)
    assert parser.parse_args(["--threads", "4", "--results", "r.json"]).threads == [4]
    with pytest.raises(SystemExit):
        parser.parse_args(["--rounds", "0"])
    bare = argparse.ArgumentParser()
    common.add_common_arguments(bare, threads=None, results=False)
    assert vars(bare.parse_args([])) == {"threads": None}


def test_machine_header_says_what_the_figures_depend_on():
    header = common.machine_header(threads=[1, 2])
    assert header["threads"] == [1, 2] and header["cpus"] >= 1 and len(header["load_average_before"]) == 3
    assert header["avx512_bf16"] in (True, False, None)
    line = common.format_machine_header(header)
    assert line.startswith(f"torch {header['torch']}, 1 and 2 thread(s)") and "load average" in line


def test_bench_train_set_reads_a_field_and_a_json_value():
    import bench_train

    assert bench_train._setting("average_decay=0.998") == ("average_decay", 0.998)
    assert bench_train._setting("tie_weights=false") == ("tie_weights", False)
    assert bench_train._setting("decay=cosine") == ("decay", "cosine")
    for bad in ("average_decay", "=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="FIELD=VALUE"):
            bench_train._setting(bad)
