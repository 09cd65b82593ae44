"""The example of docs/design.md runs as printed, and its trainer behaves as the page says.

Every ```python block of the page runs top to bottom in one namespace; then the events the
example recorded are checked: the steps, the falling loss, and the order within a step
(evaluation -> on_step -> checkpoint).
"""

import re
import tempfile
from pathlib import Path

import pytest
import torch

PAGE = Path(__file__).resolve().parents[1] / "docs" / "design.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    """The page's code blocks fenced with ``language``, in order."""
    return [code for fence, code in BLOCK.findall(PAGE.read_text(encoding="utf-8")) if fence == language]


def test_every_python_block_runs(capsys, monkeypatch, tmp_path):
    assert blocks("python"), f"{PAGE.name} has no python block"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the page's mkdtemp() lands in tmp_path
    threads = torch.get_num_threads()
    namespace = {"__name__": "docs_design"}
    for number, code in enumerate(blocks("python"), start=1):
        try:
            exec(compile(code, f"{PAGE.name}, python block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - report which block failed, then fail
            pytest.fail(f"python block {number} of {PAGE.name} failed: {type(error).__name__}: {error}\n{code}")
    printed = capsys.readouterr().out
    assert torch.get_num_threads() == threads  # num_threads gave the count back

    # advance(20) three times: steps 1-20, 21-40, 41-60, then the run stops at its limit.
    assert [line.split(":")[0] for line in printed.splitlines()[:3]] == ["steps 1-20", "steps 21-40", "steps 41-60"]
    result, recorder = namespace["result"], namespace["recorder"]
    assert (result.stop_reason, result.step, result.exit_code) == ("max_steps", 60, 0)
    assert "max_steps 60 run/checkpoints/best" in printed.replace("\\", "/")

    # One loss per step, and training learns the repeated sentence.
    losses = recorder.losses
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10

    # Within a step: evaluation, then on_step, then the checkpoint; at steps 20, 40 and 60.
    kinds = [entry.split()[0] for entry in recorder.order]
    assert kinds == ["evaluation", "step", "checkpoint"] * 3
    assert [int(entry.split()[1].rstrip(":")) for entry in recorder.order] == [20] * 3 + [40] * 3 + [60] * 3
    assert recorder.order[2] == "checkpoint 20 latest+best"  # the first evaluation is the best so far
    assert result.best_checkpoint is not None and (result.best_checkpoint / "model.safetensors").is_file()
    assert result.best_checkpoint.is_relative_to(tmp_path)
