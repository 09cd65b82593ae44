"""The Python blocks of docs/studio.md run as printed and say what the page says they do."""

import re
from pathlib import Path

import pytest

pytest.importorskip("starlette")

PAGE = Path(__file__).resolve().parents[1] / "docs" / "studio.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_every_python_block_runs(capsys):
    blocks = [code for fence, code in BLOCK.findall(PAGE.read_text(encoding="utf-8")) if fence == "python"]
    assert len(blocks) == 2
    namespace = {"__name__": "docs_studio"}
    for number, code in enumerate(blocks, start=1):
        exec(compile(code, f"{PAGE.name}, python block {number}", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    lecture_line, studio_line = printed
    assert lecture_line.startswith("299 ") and lecture_line.endswith(" ihello")
    assert float(lecture_line.split()[1]) < 0.01  # the dense layer goes below the 0.433 floor
    assert studio_line == "300 ihello"


def test_the_page_names_the_real_limits():
    from charrnn.studio.limits import StudioLimits

    text = PAGE.read_text(encoding="utf-8")
    limits = StudioLimits()
    for number in (limits.max_hidden_size, limits.max_step, limits.max_inspect_length, limits.max_jobs,
                   limits.max_streams, limits.max_samples):
        assert f"{number:,}" in text
    assert f"{limits.max_iterations:,}" in text and f"{limits.max_sample_length:,}" in text
