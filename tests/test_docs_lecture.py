"""Every charrnn snippet of docs/lecture.md runs as printed.

The page fences charrnn code as ```python and the lecture's TensorFlow 1 code as ```py; the
``python`` blocks run top to bottom in one namespace, as the page says (a notebook session).
"""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "lecture.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    """The page's code blocks fenced with ``language``, in order."""
    return [code for fence, code in BLOCK.findall(PAGE.read_text(encoding="utf-8")) if fence == language]


def test_the_page_has_charrnn_and_lecture_blocks():
    assert len(blocks("python")) >= 15
    assert len(blocks("py")) >= 8
    # The lecture's code is quoted, never run: it must not be fenced as python.
    code_without_comments = [re.sub(r"#.*", "", code) for code in blocks("python")]
    assert not any(re.search(r"\btf\.", code) for code in code_without_comments)


@pytest.mark.slow  # the page trains hihello twice and the long sentence, as the lecture does
def test_every_charrnn_snippet_runs(capsys):
    namespace = {"__name__": "docs_lecture"}
    for number, code in enumerate(blocks("python"), start=1):
        try:
            exec(compile(code, f"{PAGE.name}, python block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - report which block failed, then fail
            pytest.fail(f"python block {number} of {PAGE.name} failed: "
                        f"{type(error).__name__}: {error}\n{code}")
    printed = capsys.readouterr().out
    assert "ihello" in printed and "if you want you" in printed
    assert "[[2, 5, 8], [1, 4, 6], [0, 3, 7]]" in printed
