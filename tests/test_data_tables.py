"""Tables of labelled texts (issue 14, corpora): TSV is not quoted, and errors name the line a row began on."""

import pytest

from charrnn.classification import load_table
from charrnn.errors import CharRNNError


def test_a_tsv_text_may_begin_with_a_quote(tmp_path):
    lines = ["text\tlabel", '"Hello," she said\ta'] + [f"name{i}\t{'ab'[i % 2]}" for i in range(200)]
    (tmp_path / "data.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_table(tmp_path / "data.tsv")
    assert len(data) == 201 and data.texts[0] == '"Hello," she said' and data.labels[0] == "a"


def test_a_csv_error_names_the_line_where_the_row_began(tmp_path):
    (tmp_path / "data.csv").write_text('text,label\nok,a\n"open quote,b\nnext,a\nlast,b\n', encoding="utf-8")
    with pytest.raises(CharRNNError, match=r"data\.csv: line 3 \(a quoted field runs from there to line 5: is a "
                                           r"quote left open\?\): empty 'label'"):
        load_table(tmp_path / "data.csv")
    (tmp_path / "data.csv").write_text("text,label\nok,a\n\nmissing,\n", encoding="utf-8")
    with pytest.raises(CharRNNError, match=r"line 4: empty 'label' for text 'missing'"):
        load_table(tmp_path / "data.csv")
    (tmp_path / "quoted.csv").write_text('text,label\n"two\nlines",a\nplain,b\n', encoding="utf-8")
    assert load_table(tmp_path / "quoted.csv").texts == ["two\nlines", "plain"]
