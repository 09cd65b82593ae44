"""The Python snippet of docs/inspect.md runs as printed, on the shipped model."""

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "inspect.md"


def test_the_python_snippet_runs(capsys):
    blocks = re.findall(r"^```python\n(.*?)^```$", PAGE.read_text(encoding="utf-8"), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    namespace = {}
    exec(compile(blocks[0], f"{PAGE.name}, python block", "exec"), namespace)
    assert namespace["recording"].layers[1]["c"].shape == (48, 256)
    assert "UnitScore(feature='line_position'" in capsys.readouterr().out
    for image in re.findall(r"\]\((images/[^)]+)\)", PAGE.read_text(encoding="utf-8")):
        assert (PAGE.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
