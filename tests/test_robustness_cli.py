"""Bad input at the command line: one line on stderr, the right exit status, nothing left behind.

Every case runs ``charrnn ...`` in a process of its own (as a person would), and checks
the exit status (2: usage or input, 1: failure at run time), that stderr is exactly one line
``charrnn: error: ...`` naming the file, value or character at fault and what was expected (no
traceback), and the files left on disk. To spare importing torch for each, the commands are
forked from one process that imported charrnn (see :class:`CommandRunner`); the signals and
the full disk use processes started afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.training import train
from charrnn.training.settings import TrainConfig

TEXT = "".join(f"line {i % 7}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
TINY = ["--hidden-size", "8", "--embedding-size", "4", "--sequence-length", "8", "--batch-size", "2",
        "--eval-every", "2", "--log-every", "2", "--threads", "1", "--quiet", "--device", "cpu"]
ENVIRONMENT = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}


def charrnn_command(*argv) -> list[str]:
    return [sys.executable, "-m", "charrnn", *map(str, argv)]


def folder_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and a hash of its bytes."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def temporary_leftovers(folder: Path) -> list[str]:
    """Names that only a write cut short would leave (temp files and folders of atomic writes)."""
    return [str(path) for path in folder.rglob("*") if ".tmp" in path.name or path.name.endswith(".previous")]


class Marker:
    """Unpickling this creates the file ``path``: the proof that a loader unpickled something."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- the cases ------------------------------------------------------------------------------------
@dataclass
class Case:
    """A command, what it must say, and what it must leave on disk.

    ``make(folder)`` prepares the case's folder (a copy of the shared run is at
    ``folder / 'run'``) and returns the arguments after ``charrnn``. Whatever the case, the
    run's files must be left as they were once ``make`` has run.
    """

    make: Callable[[Path], list]
    status: int
    message: str  # a regular expression the one line must match (after "charrnn: error: ")
    absent: list[str] = field(default_factory=list)  # paths (in the case folder) that must not exist


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data, encoding="utf-8")
    return path


def _train(*argv) -> Callable[[Path], list]:
    """``charrnn train corpus.txt --out out TINY ARGV`` on the shared corpus."""
    def make(folder):
        return ["train", folder / "corpus.txt", "--out", folder / "out", *TINY, *argv]
    return make


def _with_corpus(data, *argv) -> Callable[[Path], list]:
    def make(folder):
        _write(folder / "corpus.txt", data)
        return ["train", folder / "corpus.txt", "--out", folder / "out", *TINY, *argv]
    return make


def _sample(*argv) -> Callable[[Path], list]:
    return lambda folder: ["sample", folder / "run", "--length", "5", *argv]


def _damage(edit: Callable[[Path], None], command: str = "sample") -> Callable[[Path], list]:
    """Damage the copy of the run's best checkpoint, then load it with ``command``."""
    def make(folder):
        checkpoint = folder / "run" / "checkpoints" / "best"
        edit(checkpoint)
        if command == "eval":
            _write(folder / "text.txt", TEXT)
            return ["eval", checkpoint, folder / "text.txt"]
        return ["sample", checkpoint, "--length", "5"]
    return make


def _edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(checkpoint):
        values = json.loads((checkpoint / name).read_text())
        change(values)
        (checkpoint / name).write_text(json.dumps(values))
    return edit


def _flip_header_byte(checkpoint: Path) -> None:
    data = bytearray((checkpoint / "model.safetensors").read_bytes())
    data[20] ^= 0x5A  # inside the JSON header
    (checkpoint / "model.safetensors").write_bytes(bytes(data))


def _pickle_folder(folder: Path) -> list:
    """A torch.save-style pickle as a checkpoint folder's weights: refused without unpickling."""
    checkpoint = folder / "run" / "checkpoints" / "best"
    (checkpoint / "model.safetensors").write_bytes(pickle.dumps(Marker(str(folder / "unpickled")), protocol=2))
    return ["sample", checkpoint, "--length", "5"]


def _pickle_file(folder: Path) -> list:
    _write(folder / "model.pt", pickle.dumps({"weights": Marker(str(folder / "unpickled"))}, protocol=4))
    return ["sample", folder / "model.pt"]


def _torch_save_file(folder: Path) -> list:
    """torch.save's zip archive named as the weights file."""
    checkpoint = folder / "run" / "checkpoints" / "best"
    torch.save({"x": Marker(str(folder / "unpickled"))}, checkpoint / "model.safetensors")
    return ["eval", folder / "run" / "checkpoints" / "best", folder / "run" / "vocab.json"]


def _out_under_a_file(folder: Path) -> list:
    """A run folder that cannot be made: its parent is a regular file (root ignores chmod)."""
    _write(folder / "blocker", "a file, not a folder\n")
    return ["train", folder / "corpus.txt", "--out", folder / "blocker" / "run", *TINY]


def _out_is_a_file(folder: Path) -> list:
    _write(folder / "blocker", "a file\n")
    return ["train", folder / "corpus.txt", "--out", folder / "blocker", *TINY]


CORPUS_CASES = {
    "missing path": Case(lambda f: ["train", f / "nothing.txt", "--out", f / "out", *TINY], 2,
                         r".*nothing\.txt: no such file or folder$", ["out"]),
    "folder with no text files": Case(lambda f: (_write(f / "texts" / ".hidden.txt", "hidden\n"),
                                                 ["train", f / "texts", "--out", f / "out", *TINY])[1], 2,
                                      r".*texts: the folder holds no files", ["out"]),
    "empty file": Case(_with_corpus(""), 2, r"the corpus is empty: .*corpus\.txt", ["out"]),
    "not UTF-8": Case(_with_corpus(b"good text " * 50 + b"\xff\xfe bad"), 2,
                      r".*corpus\.txt: not valid utf-8 text: byte 0xff at byte offset 500 .*--encoding", ["out"]),
    "unknown encoding": Case(_train("--encoding", "klingon"), 2, r"unknown encoding 'klingon'", ["out"]),
    "corpus shorter than sequence_length + 1": Case(_with_corpus("abcdefgh"), 2,
                                                   r"fewer than sequence-length", ["out"]),
    "one-character vocabulary": Case(_with_corpus("a" * 400), 2, r"the vocabulary has a single character \('a'\)",
                                     ["out"]),
    "val fraction leaves nothing to validate": Case(_train("--val-fraction", "0.001"), 2,
                                                    r"validation split .* fewer than", ["out"]),
    "val fraction leaves nothing to train": Case(_train("--val-fraction", "0.999"), 2,
                                                 r"training split .* fewer than", ["out"]),
    "output folder under a file": Case(_out_under_a_file, 2, r".*blocker/run: cannot write the run folder "
                                       r"\(Not a directory\)", []),
    "output is a file": Case(_out_is_a_file, 2, r".*blocker: exists and is not a folder", []),
}
for flag in ("--hidden-size", "--num-layers", "--embedding-size", "--sequence-length", "--batch-size"):
    CORPUS_CASES[f"{flag} 0"] = Case(_train(flag, "0"), 2, rf"{flag} must be a positive integer, got 0", ["out"])
for value in ("1", "1.5", "-0.1"):
    CORPUS_CASES[f"dropout {value}"] = Case(_train("--dropout", value), 2,
                                            rf"--dropout must be a number in \[0\.0, 1\.0\), got {value}", ["out"])
for value in ("0", "1"):
    CORPUS_CASES[f"val fraction {value}"] = Case(_train("--val-fraction", value), 2,
                                                 r"--val-fraction must be a number in \(0\.0, 1\.0\)", ["out"])
CORPUS_CASES["--threads 0"] = Case(_train("--threads", "0"), 2, r"--threads must be a positive integer, got 0", ["out"])
CORPUS_CASES["utf-16 without a byte-order mark"] = Case(_train("--encoding", "utf-16"), 2,
                                                        r".*corpus\.txt: not valid utf-16 text \(UTF-16 stream does "
                                                        r"not start with BOM\)", ["out"])
CORPUS_CASES["resume with no run"] = Case(lambda f: ["train", "--out", f / "out", "--resume"], 2,
                                          r".*out: no run to resume \(config\.json is missing\)", ["out"])
if not torch.cuda.is_available():
    CORPUS_CASES["--device cuda without one"] = Case(_train("--device", "cuda"), 2,
                                                     r"--device cuda: no CUDA device is available", ["out"])
CORPUS_CASES["not a number"] = Case(_train("--hidden-size", "big"), 2,
                                    r"train: argument --hidden-size: invalid int value: 'big'", ["out"])

SAMPLE_CASES = {
    "temperature 0": Case(_sample("--temperature", "0"), 2, r"temperature must be a number > 0, got 0\.0"),
    "temperature < 0": Case(_sample("--temperature", "-1"), 2, r"temperature must be a number > 0, got -1\.0"),
    "top-k 0": Case(_sample("--top-k", "0"), 2, r"--top-k must be a positive integer, got 0"),
    "top-p 0": Case(_sample("--top-p", "0"), 2, r"top-p must be a number in \(0, 1\], got 0\.0"),
    "top-p above 1": Case(_sample("--top-p", "1.5"), 2, r"top-p must be a number in \(0, 1\], got 1\.5"),
    "prime with unknown characters": Case(_sample("--prime", "the fox\u20ac"), 2,
                                          r"'\u20ac'.*offset 7.*--skip-unknown"),
    "missing checkpoint": Case(lambda f: ["sample", f / "no-run"], 2, r".*no-run: no such checkpoint, run directory or pretrained model \(pretrained: shakespeare"),
    "checkpoint missing vocab.json": Case(_damage(lambda c: (c / "vocab.json").unlink()), 2,
                                          r".*best: checkpoint is missing vocab\.json"),
    "checkpoint missing model.safetensors": Case(_damage(lambda c: (c / "model.safetensors").unlink()), 2,
                                                 r".*best: checkpoint is missing model\.safetensors"),
    "truncated safetensors": Case(_damage(lambda c: (c / "model.safetensors").write_bytes(
        (c / "model.safetensors").read_bytes()[:300])), 2, r".*model\.safetensors: not a valid safetensors file"),
    "corrupted safetensors header": Case(_damage(_flip_header_byte), 2, r".*model\.safetensors: "),
    "config not matching the weights": Case(_damage(_edit_json("config.json",
                                                               lambda v: v["model"].update(hidden_size=16))), 2,
                                            r".*model\.safetensors: tensor head\.weight has shape \[\d+, 8\], "
                                            r"the configuration expects \[\d+, 16\]"),
    "vocabulary not matching the model": Case(_damage(_edit_json("vocab.json",
                                                                 lambda v: v["characters"].append("\u00ff")), "eval"),
                                              2, r".*vocab\.json: holds \d+ characters but .*config\.json says "
                                                 r"vocab_size=\d+"),
    "config not JSON": Case(_damage(lambda c: (c / "config.json").write_text("{not json")), 2,
                            r".*config\.json: not valid JSON"),
    "pickle as a checkpoint file": Case(_pickle_file, 2, r".*model\.pt: is a pickle or torch\.save file, refused "
                                                         r"without unpickling", ["unpickled"]),
    "pickle as the weights": Case(_pickle_folder, 2, r".*model\.safetensors: a pickle file, refused without "
                                                     r"unpickling", ["unpickled"]),
    "torch.save zip as the weights": Case(_torch_save_file, 2, r".*model\.safetensors: a pickle file, refused "
                                                               r"without unpickling", ["unpickled"]),
    "eval on an empty file": Case(lambda f: (_write(f / "empty.txt", ""), ["eval", f / "run", f / "empty.txt"])[1],
                                  2, r".*empty\.txt: the file is empty"),
    "eval on bytes that are not UTF-8": Case(lambda f: (_write(f / "bad.txt", b"the fox\xc3("),
                                                        ["eval", f / "run", f / "bad.txt"])[1],
                                             2, r".*bad\.txt: not valid utf-8 text: byte 0xc3 at byte offset 7"),
    "resume contradicting the saved run": Case(lambda f: ["train", "--out", f / "run", "--resume",
                                                          "--learning-rate", "0.5"], 2,
                                               r"--resume: --learning-rate 0\.5 contradicts the saved run "
                                               r"\(learning_rate=.* in .*config\.json\); pass --override"),
    "resume changing the model": Case(lambda f: ["train", "--out", f / "run", "--resume", "--override",
                                                 "--hidden-size", "32"], 2,
                                      r"--resume: --hidden-size 32 contradicts the saved run .*cannot change"),
    "unknown command": Case(lambda f: ["summon"], 2, r"argument COMMAND: invalid choice: 'summon'"),
    "no command": Case(lambda f: [], 2, r"the following arguments are required: COMMAND"),
}
CASES = {**CORPUS_CASES, **SAMPLE_CASES}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A tiny trained run and its corpus, copied into each case's folder."""
    folder = tmp_path_factory.mktemp("shared")
    _write(folder / "corpus.txt", TEXT)
    settings = TrainConfig(hidden_size=8, embedding_size=4, sequence_length=8, batch_size=2, max_steps=4,
                           eval_every=2, log_every=2, num_threads=1, device="cpu")
    train(settings, [folder / "corpus.txt"], folder / "run", progress=False)
    return folder


#: A process that imports charrnn once, then runs each command it is sent in a child process of
#: its own (a fork): the child runs ``charrnn ARGV`` as ``python -m charrnn`` would, with its own
#: stdout and stderr files and exit status, but without importing torch afresh every time.
FORK_RUNNER = r"""
import json, os, sys, traceback
from charrnn.cli import build_parser, main
import charrnn.training, charrnn.checkpoint, charrnn.sampling, charrnn.evaluation
build_parser()  # imports every command module, once
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(request["cwd"])
        for number, name in ((1, "stdout"), (2, "stderr")):
            descriptor = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(descriptor, number)
            os.close(descriptor)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
        try:
            code = main(request["argv"])
        except SystemExit as exit_info:  # what the interpreter does with SystemExit
            code = exit_info.code
            if code is not None and not isinstance(code, int):
                print(code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""


@dataclass
class Finished:
    """What a command did: like :class:`subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


class CommandRunner:
    """Runs ``charrnn ARGV`` commands, each in its own forked process (see :data:`FORK_RUNNER`)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.count = 0
        self.process = subprocess.Popen([sys.executable, "-c", FORK_RUNNER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=ENVIRONMENT)

    def __call__(self, *argv, cwd: Path | None = None) -> Finished:
        self.count += 1
        stdout, stderr = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        request = {"argv": [str(arg) for arg in argv], "cwd": str(cwd or self.folder), "stdout": str(stdout),
                   "stderr": str(stderr)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, "the command runner died"
        return Finished(json.loads(reply)["status"], stdout.read_text(encoding="utf-8"),
                        stderr.read_text(encoding="utf-8"))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def charrnn(tmp_path_factory):
    """``charrnn(*argv, cwd=...)``: a command in a process of its own."""
    runner = CommandRunner(tmp_path_factory.mktemp("runner"))
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def outcomes(shared, charrnn, tmp_path_factory):
    """Every case run: name -> (finished command, case folder, digest of its run before)."""
    results = {}
    for index, (name, case) in enumerate(CASES.items()):
        folder = tmp_path_factory.mktemp(f"case{index}")
        shutil.copy(shared / "corpus.txt", folder / "corpus.txt")
        shutil.copytree(shared / "run", folder / "run")
        argv = case.make(folder)
        digest = folder_digest(folder / "run")
        results[name] = (charrnn(*argv, cwd=folder), folder, digest)
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_clear_line(outcomes, name):
    case = CASES[name]
    process, folder, digest = outcomes[name]
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr  # one line: no traceback, no usage text
    assert lines[0].startswith("charrnn: error: "), lines[0]
    assert re.search(case.message, lines[0][len("charrnn: error: "):]), lines[0]
    assert process.returncode == case.status, lines[0]
    assert process.stdout == ""
    for relative in case.absent:
        assert not (folder / relative).exists(), relative
    assert not temporary_leftovers(folder)
    # A refused resume, a failed load: the run's files are exactly as they were (the lock file
    # holds the pid of the last process that took the lock).
    now = folder_digest(folder / "run")
    now.pop(".lock", None), digest.pop(".lock", None)
    assert now == digest


def test_the_pickle_marker_would_be_made_by_unpickling(tmp_path):
    """The pickle cases prove something: loading their files with pickle does make the marker."""
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(Marker(str(marker)), protocol=2))
    assert marker.exists()
    marker.unlink()
    torch.save({"x": Marker(str(marker))}, tmp_path / "model.pt")
    torch.load(tmp_path / "model.pt", weights_only=False)
    assert marker.exists()


def test_other_encodings_are_read_with_encoding(charrnn, tmp_path):
    """The same bytes that fail as UTF-8 train with --encoding latin-1."""
    corpus = _write(tmp_path / "latin.txt", ("caf\u00e9 na\u00efve r\u00e9sum\u00e9 " * 40).encode("latin-1"))
    out = tmp_path / "out"
    failed = charrnn("train", corpus, "--out", out, *TINY, "--max-steps", "2")
    assert failed.returncode == 2 and "byte 0xe9 at byte offset 3" in failed.stderr and not out.exists()
    done = charrnn("train", corpus, "--out", out, *TINY, "--max-steps", "2", "--encoding", "latin-1")
    assert done.returncode == 0, done.stderr
    assert "\u00e9" in load_model(out).vocabulary.characters


# -- a disk that fills up mid-save ----------------------------------------------------------------
#: Run charrnn with every fsync of a file inside a checkpoint being written failing with ENOSPC
#: once the weights of that checkpoint are written: the disk fills up in the middle of a save.
#: With FULL_DISK=everything, every fsync fails: the disk is full from the start.
FULL_DISK = """
import errno, os, sys
real_fsync = os.fsync
def fsync(descriptor):
    try:
        name = os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        name = ""
    everything = os.environ.get("FULL_DISK") == "everything"
    if everything or (".tmp-" in name and ".model.safetensors." not in name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_fsync(descriptor)
os.fsync = fsync
from charrnn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file is written")
def test_a_full_disk_mid_save_keeps_the_previous_checkpoint(shared, charrnn, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(shared / "run", run)
    before = folder_digest(run / "checkpoints")
    process = subprocess.run([sys.executable, "-c", FULL_DISK, "train", "--out", run, "--resume", "--max-steps",
                              "6", "--quiet"], capture_output=True, text=True, env=ENVIRONMENT, timeout=120)
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1, process.stderr
    assert re.fullmatch(r"charrnn: error: .*checkpoints/latest: could not save the checkpoint \(No space left on "
                        r"device\); the previous one is unchanged", lines[0]), lines[0]
    assert folder_digest(run / "checkpoints") == before  # the step-4 checkpoints, whole
    assert not temporary_leftovers(run)
    assert load_model(run / "checkpoints" / "latest").config.hidden_size == 8
    resumed = charrnn("train", "--out", run, "--resume", "--max-steps", "6", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "checkpoints/latest/trainer.json").read_text())["step"] == 6


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="Linux only, like the test above")
def test_a_full_disk_at_the_start_leaves_no_run_behind(shared, tmp_path):
    out = tmp_path / "out"
    process = subprocess.run([sys.executable, "-c", FULL_DISK, "train", shared / "corpus.txt", "--out", out, *TINY,
                              "--max-steps", "2"], capture_output=True, text=True, timeout=120,
                             env={**ENVIRONMENT, "FULL_DISK": "everything"})
    assert process.returncode == 1
    assert re.fullmatch(r"charrnn: error: .*out/data/corpus\.bin: cannot write \(No space left on device\); the "
                        r"previous file, if any, is unchanged\n", process.stderr), process.stderr
    assert not out.exists() and not temporary_leftovers(tmp_path)


# -- a run folder in use, and SIGINT / SIGTERM ----------------------------------------------------
def _start_long_run(corpus: Path, out: Path) -> subprocess.Popen:
    """A training run that would go on for long, once it has taken a step (its first log line)."""
    process = subprocess.Popen(charrnn_command("train", corpus, "--out", out, *TINY[:8], "--eval-every", "100000",
                                               "--log-every", "1", "--max-steps", "1000000", "--threads", "1",
                                               "--device", "cpu", "--quiet"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENVIRONMENT)
    deadline = time.monotonic() + 90
    while not (out / "metrics.jsonl").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    return process


@pytest.mark.parametrize("signal_number, status, name", [(signal.SIGINT, 130, "SIGINT"),
                                                         (signal.SIGTERM, 143, "SIGTERM")])
def test_signals_save_a_checkpoint_and_a_busy_run_folder_is_refused(shared, charrnn, tmp_path, signal_number, status,
                                                                   name):
    out = tmp_path / "run"
    process = _start_long_run(shared / "corpus.txt", out)
    try:
        busy = charrnn("train", "--out", out, "--resume", "--quiet")
        assert busy.returncode == 2
        assert busy.stderr.strip() == (f"charrnn: error: {out}: the run folder is in use by another charrnn process "
                                       f"(pid {process.pid}); wait for it to finish or choose another --out")
    finally:
        process.send_signal(signal_number)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    line = stderr.strip().splitlines()[-1]
    match = re.fullmatch(rf"charrnn: {name}: stopped at step (\d+); checkpoint saved to (.*); continue with --resume",
                         line)
    assert match, line
    assert Path(match.group(2)) == out / "checkpoints" / "latest"
    assert json.loads((out / "checkpoints/latest/trainer.json").read_text())["step"] == int(match.group(1))
    assert not temporary_leftovers(out)
    load_model(out)
