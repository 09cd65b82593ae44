"""Shared test settings, and the tiny run that the sample and eval tests share."""

import pytest
import torch

from charrnn.cli import main
from charrnn.training import TrainConfig, train

#: The text the shared run (``run_dir``) is trained on.
SAMPLE_TEXT = "".join(f"line {i % 7}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    """Tiny models run faster and steadier on one thread, above all on a loaded 2-core machine:
    PyTorch's count, and the one ``num_threads(None)`` would choose from the load."""
    from charrnn import devices

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(devices, "default_num_threads", lambda *args, **kwargs: 1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A tiny trained run: run directory with checkpoints/best and checkpoints/latest (read it, never change it)."""
    folder = tmp_path_factory.mktemp("sample_run")
    corpus = folder / "corpus.txt"
    corpus.write_text(SAMPLE_TEXT, encoding="utf-8")
    settings = TrainConfig(hidden_size=16, embedding_size=8, sequence_length=16, batch_size=4,
                           max_steps=12, eval_every=6, log_every=6, num_threads=1, device="cpu")
    train(settings, [corpus], folder / "run", progress=False)  # restores the thread count itself
    return folder / "run"


def run_cli(capsys, *argv):
    """The exit status, stdout and stderr of ``charrnn ARGV`` (argparse's errors exit)."""
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exit_info:
        code = exit_info.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
