"""Which files a run trains on (issue 14, corpora): binary files skipped, globs, and what was used, said."""

import json

from charrnn.cli import main

TINY = ["--hidden-size", "8", "--embedding-size", "4", "--sequence-length", "8", "--batch-size", "2",
        "--max-steps", "2", "--eval-every", "2", "--threads", "1", "--device", "cpu"]
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def test_a_folder_with_an_image_trains_on_its_text_and_says_what_it_skipped(tmp_path, capsys):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 10, encoding="utf-8")
    (folder / "notes.md").write_text("a second text, in markdown\n" * 10, encoding="utf-8")
    (folder / "picture.png").write_bytes(PNG)
    assert main(["train", str(folder), "--out", str(tmp_path / "run"), *TINY]) == 0
    err = capsys.readouterr().err
    assert "corpus: 2 file(s), 710 characters (a.txt 440, notes.md 270)" in err
    assert f"skipped 1 binary file(s): {folder / 'picture.png'}" in err
    record = json.loads((tmp_path / "run" / "config.json").read_text())["corpus"]
    assert [(file["path"].rsplit("/", 1)[-1], file["characters"]) for file in record["files"]] == \
        [("a.txt", 440), ("notes.md", 270)]

    assert main(["train", str(folder), "--out", str(tmp_path / "md"), "--include", "*.md", *TINY]) == 0
    assert "corpus: 1 file(s), 270 characters (notes.md 270)" in capsys.readouterr().err
    assert main(["train", str(folder), "--out", str(tmp_path / "no-md"), "--exclude", "*.md", *TINY]) == 0
    assert "(a.txt 440)" in capsys.readouterr().err


def test_a_binary_file_named_directly_is_refused_without_suggesting_an_encoding(tmp_path, capsys):
    (tmp_path / "picture.png").write_bytes(PNG)
    assert main(["train", str(tmp_path / "picture.png"), "--out", str(tmp_path / "run"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err == (f"charrnn: error: {tmp_path / 'picture.png'}: is binary data (a NUL byte at byte offset 8), "
                   f"not utf-8 text\n")
    assert "--encoding" not in err and not (tmp_path / "run").exists()
    # Text in an encoding of 2-byte units holds NULs and is still text.
    (tmp_path / "wide.txt").write_bytes(("the quick brown fox jumps over the lazy dog\n" * 10).encode("utf-16"))
    assert main(["train", str(tmp_path / "wide.txt"), "--encoding", "utf-16", "--out", str(tmp_path / "wide"),
                 *TINY]) == 0
