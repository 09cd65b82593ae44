"""Corpus preparation: files found, text encoded exactly, errors that name the fault."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from charrnn import corpus as corpus_module
from charrnn.corpus import PreparedCorpus, find_text_files, prepare_corpus, read_text
from charrnn.errors import CharRNNError
from charrnn.vocabulary import UnknownCharacterError, Vocabulary

ENGLISH = "First Citizen:\nBefore we proceed any further, hear me speak.\r\n"
KOREAN = "다람쥐 헌 쳇바퀴에 타고파.\n안녕하세요, 세계!\n"
EMOJI = "🙂 smile 🚀🚀 rocket 👩‍💻\n"


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 7 bytes, so multi-byte characters straddle chunk boundaries."""
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 7)


# -- find_text_files ------------------------------------------------------------------------------

def test_find_text_files_walks_folders_in_sorted_order_skipping_hidden(tmp_path):
    for name in ["b.txt", "a/z.txt", "a/b/c.txt", "A.txt", ".hidden.txt", ".git/config", "a/.cache/x"]:
        write(tmp_path / "data" / name, "x")
    found = find_text_files([tmp_path / "data"])
    assert [path.relative_to(tmp_path / "data").as_posix() for path in found] == \
        ["A.txt", "a/b/c.txt", "a/z.txt", "b.txt"]


def test_find_text_files_takes_named_files_whatever_their_name_and_once(tmp_path):
    hidden = write(tmp_path / ".notes", "x")
    other = write(tmp_path / "data" / "one.md", "y")
    found = find_text_files([hidden, tmp_path / "data", other])
    assert found == [hidden, other]
    assert find_text_files(str(hidden)) == [hidden]  # a single path, not a sequence of letters


def test_find_text_files_leaves_out_excluded_folders(tmp_path):
    write(tmp_path / "data" / "a.txt", "x")
    write(tmp_path / "data" / "run" / "config.json", "{}")
    assert find_text_files([tmp_path / "data"], exclude=[tmp_path / "data" / "run"]) == [tmp_path / "data" / "a.txt"]
    with pytest.raises(CharRNNError, match="holds no files"):
        find_text_files([tmp_path / "data" / "run"], exclude=[tmp_path / "data" / "run"])


def test_find_text_files_errors_name_the_path(tmp_path):
    with pytest.raises(CharRNNError, match=r"missing\.txt: no such file or folder") as caught:
        find_text_files([tmp_path / "missing.txt"])
    assert caught.value.exit_code == 2
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    with pytest.raises(CharRNNError, match=r"empty: the folder holds no files"):
        find_text_files([tmp_path / "empty"])
    with pytest.raises(CharRNNError, match="no corpus files given"):
        find_text_files([])


# -- read_text ------------------------------------------------------------------------------------

def test_read_text_keeps_the_bytes_as_they_are(tmp_path):
    path = write(tmp_path / "prime.txt", ENGLISH + KOREAN + EMOJI)
    assert read_text(path) == ENGLISH + KOREAN + EMOJI
    latin = write(tmp_path / "latin.txt", "café", encoding="latin-1")
    assert read_text(latin, encoding="latin-1") == "café"


def test_read_text_names_the_byte_offset_of_bad_utf8(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("héllo ".encode() + b"\xff" + b"rest")  # 'é' takes 2 bytes: 0xff is at byte 7
    with pytest.raises(CharRNNError, match=r"bad\.txt: not valid utf-8 text: byte 0xff at byte offset 7") as caught:
        read_text(path)
    assert "--encoding" in str(caught.value)


def test_read_text_errors(tmp_path):
    with pytest.raises(CharRNNError, match="empty"):
        read_text(write(tmp_path / "empty.txt", ""))
    with pytest.raises(CharRNNError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(CharRNNError, match="unknown encoding 'klingon'"):
        read_text(write(tmp_path / "a.txt", "a"), encoding="klingon")


# -- prepare_corpus -------------------------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True])
def test_prepare_round_trips_several_files_and_a_folder_exactly(tmp_path, monkeypatch, chunked):
    if chunked:
        monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 7)
    first = write(tmp_path / "english.txt", ENGLISH)
    write(tmp_path / "more" / "1-korean.txt", KOREAN)
    write(tmp_path / "more" / "2-emoji.txt", EMOJI)
    prepared = prepare_corpus([first, tmp_path / "more"], tmp_path / "out")
    text = ENGLISH + KOREAN + EMOJI
    assert prepared.vocabulary == Vocabulary.from_text(text)
    assert prepared.ids.dtype == np.uint8
    assert len(prepared) == len(text)
    assert prepared.vocabulary.decode(prepared.ids) == text
    manifest = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert manifest["dtype"] == "uint8" and manifest["length"] == len(text) and manifest["encoding"] == "utf-8"
    assert [entry["path"] for entry in manifest["files"]] == \
        [str(p.resolve()) for p in [first, tmp_path / "more/1-korean.txt", tmp_path / "more/2-emoji.txt"]]
    assert manifest["files"][0]["size"] == len(ENGLISH.encode())
    with pytest.raises(ValueError):
        prepared.ids[0] = 1  # read-only memory map
    # No temporary file is left behind.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["corpus.bin", "corpus.json", "vocab.json"]


@pytest.mark.parametrize("distinct, dtype", [(256, np.uint8), (257, np.uint16), (65536, np.uint16),
                                             (65537, np.uint32)])
def test_prepare_picks_the_smallest_dtype_that_fits(tmp_path, distinct, dtype):
    # Code points from U+20000 up (all valid scalar values, no surrogates), shuffled.
    codes = np.random.default_rng(0).permutation(np.arange(0x20000, 0x20000 + distinct))
    text = "".join(map(chr, codes.tolist())) + chr(0x20000)
    prepared = prepare_corpus([write(tmp_path / "wide.txt", text)], tmp_path / "out")
    assert prepared.ids.dtype == dtype
    assert prepared.vocabulary.size == distinct
    assert int(prepared.ids.max()) == distinct - 1
    assert prepared.vocabulary.decode(prepared.ids) == text


def test_prepare_reuses_a_corpus_prepared_from_the_same_files(tmp_path, monkeypatch):
    source = write(tmp_path / "a.txt", "abcabc")
    first = prepare_corpus([source], tmp_path / "out")
    calls = []
    original = corpus_module._encode_files
    monkeypatch.setattr(corpus_module, "_encode_files", lambda *args: calls.append(1) or original(*args))
    again = prepare_corpus([source], tmp_path / "out")
    assert calls == [] and np.array_equal(again.ids, first.ids)

    write(source, "abcabdd")  # another size (and mtime): encoded again
    changed = prepare_corpus([source], tmp_path / "out")
    assert calls == [1] and changed.vocabulary.decode(changed.ids) == "abcabdd"
    prepare_corpus([source], tmp_path / "out", encoding="latin-1")  # another encoding
    assert calls == [1, 1]
    given = Vocabulary("abcdz")
    with_vocabulary = prepare_corpus([source], tmp_path / "out", vocabulary=given)  # another vocabulary
    assert calls == [1, 1, 1] and with_vocabulary.vocabulary == given


def test_prepare_with_a_given_vocabulary_uses_its_ids(tmp_path):
    source = write(tmp_path / "a.txt", "bad cab")
    vocabulary = Vocabulary("abcdefg ")
    prepared = prepare_corpus([source], tmp_path / "out", vocabulary=vocabulary)
    assert prepared.vocabulary == vocabulary
    assert prepared.ids.tolist() == vocabulary.encode("bad cab").tolist()


def test_prepare_names_each_unknown_character_its_file_and_offset(tmp_path, small_chunks):
    write(tmp_path / "a.txt", "abc")
    write(tmp_path / "b.txt", "ab한c한글xa")
    with pytest.raises(UnknownCharacterError) as caught:
        prepare_corpus([tmp_path / "a.txt", tmp_path / "b.txt"], tmp_path / "out", vocabulary=Vocabulary("abc"))
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert message.startswith("3 character(s) of the corpus are not in the vocabulary")
    assert f"'한' (U+D55C) in {tmp_path / 'b.txt'} at character offset 2" in message
    assert "'글' (U+AE00)" in message and "at character offset 5" in message
    assert "'x' (U+0078)" in message and "at character offset 6" in message
    assert not (tmp_path / "out" / "corpus.json").exists()


@pytest.mark.parametrize("chunk_bytes", [3, 7, 1 << 20])
def test_prepare_names_the_file_and_byte_offset_of_bad_utf8(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", chunk_bytes)
    write(tmp_path / "good.txt", KOREAN)
    bad = tmp_path / "bad.txt"
    # '한' is 3 bytes, then a 3-byte lead (0xed) broken by 'x': invalid at byte offset 4.
    bad.write_bytes("a한".encode() + b"\xed" + b"x tail")
    with pytest.raises(CharRNNError, match=r"bad\.txt: not valid utf-8 text: byte 0xed at byte offset 4 "):
        prepare_corpus([tmp_path / "good.txt", bad], tmp_path / "out")
    truncated = tmp_path / "truncated.txt"
    truncated.write_bytes(b"abcd" + "한".encode()[:2])  # cut at the end of the file
    with pytest.raises(CharRNNError, match=r"truncated\.txt: .* byte 0xed at byte offset 4 \(unexpected end of data\)"):
        prepare_corpus([truncated], tmp_path / "out")


def test_prepare_reads_other_encodings(tmp_path):
    source = write(tmp_path / "utf16.txt", KOREAN, encoding="utf-16")
    prepared = prepare_corpus([source], tmp_path / "out", encoding="utf-16")
    assert prepared.vocabulary.decode(prepared.ids) == KOREAN


def test_prepare_refuses_empty_corpora_and_single_character_vocabularies(tmp_path):
    write(tmp_path / "e1.txt", "")
    write(tmp_path / "e2.txt", "")
    with pytest.raises(CharRNNError, match="the corpus is empty"):
        prepare_corpus([tmp_path / "e1.txt", tmp_path / "e2.txt"], tmp_path / "out")
    with pytest.raises(CharRNNError, match=r"single character \('a'\)"):
        prepare_corpus([write(tmp_path / "a.txt", "aaaa")], tmp_path / "out")
    with pytest.raises(CharRNNError, match="not a folder"):
        prepare_corpus([tmp_path / "a.txt"], tmp_path / "e1.txt")


def test_prepare_leaves_out_files_inside_the_output_folder(tmp_path):
    write(tmp_path / "data" / "a.txt", "hello")
    prepare_corpus([tmp_path / "data"], tmp_path / "data" / "run")
    write(tmp_path / "data" / "b.txt", " world")
    prepared = prepare_corpus([tmp_path / "data"], tmp_path / "data" / "run")
    assert prepared.vocabulary.decode(prepared.ids) == "hello world"


# -- PreparedCorpus -------------------------------------------------------------------------------

def test_open_checks_the_files_agree(tmp_path):
    with pytest.raises(CharRNNError, match="no prepared corpus here"):
        PreparedCorpus.open(tmp_path)
    prepare_corpus([write(tmp_path / "a.txt", "abcdef")], tmp_path / "out")
    reopened = PreparedCorpus.open(tmp_path / "out")
    assert reopened.vocabulary.decode(reopened.ids) == "abcdef"
    with open(tmp_path / "out" / "corpus.bin", "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(CharRNNError, match=r"corpus\.bin: holds 7 bytes, expected 6"):
        PreparedCorpus.open(tmp_path / "out")
    os.remove(tmp_path / "out" / "vocab.json")
    with pytest.raises(CharRNNError, match=r"vocab\.json: file not found"):
        PreparedCorpus.open(tmp_path / "out")


def test_split_is_nanogpt_last_fraction_as_views(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1003))
    prepared = prepare_corpus([write(tmp_path / "a.txt", text)], tmp_path / "out")
    train_ids, val_ids = prepared.split(0.1)
    assert len(train_ids) == int(1003 * 0.9) == 902
    assert np.concatenate([train_ids, val_ids]).tolist() == prepared.ids.tolist()
    assert np.shares_memory(train_ids, prepared.ids) and np.shares_memory(val_ids, prepared.ids)
    train_ids, val_ids = prepared.split(0)
    assert len(train_ids) == 1003 and len(val_ids) == 0
    for bad in (1.0, -0.1, "0.1", True):
        with pytest.raises(CharRNNError, match="val-fraction must be a number in"):
            prepared.split(bad)


def test_check_split_names_the_short_split(tmp_path):
    prepared = prepare_corpus([write(tmp_path / "a.txt", "ab" * 50)], tmp_path / "out")  # 100 ids
    prepared.check_split(0.1, 9)  # validation holds 10 = 9 + 1
    with pytest.raises(CharRNNError, match=r"validation split \(the last 10% of 100 characters\) holds 10 "
                                           r"characters, fewer than sequence-length \+ 1 = 11"):
        prepared.check_split(0.1, 10)
    with pytest.raises(CharRNNError, match=r"training split .* holds 90 characters"):
        prepared.check_split(0.1, 90)
    prepared.check_split(0.0, 99)
    with pytest.raises(CharRNNError, match="sequence-length must be a positive integer"):
        prepared.check_split(0.1, 0)


def test_a_byte_order_mark_is_not_a_character(tmp_path):
    """Editors put U+FEFF first in UTF-8 files; it must not enter the vocabulary, a prime or an eval."""
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_bytes("\ufeffhello\n".encode("utf-8"))
    (tmp_path / "texts" / "b.txt").write_bytes("world \ufeff inside\n".encode("utf-8"))  # not at the start: text
    corpus = prepare_corpus([tmp_path / "texts"], tmp_path / "prepared")
    assert corpus.vocabulary.decode(corpus.ids[:6]) == "hello\n"
    assert len(corpus) == len("hello\n") + len("world \ufeff inside\n")
    (tmp_path / "prime.txt").write_bytes("\ufeffROMEO:".encode("utf-8"))
    assert read_text(tmp_path / "prime.txt") == "ROMEO:"
    (tmp_path / "utf16.txt").write_bytes("\ufeffhi".encode("utf-16"))  # the codec's own mark, and one more
    assert read_text(tmp_path / "utf16.txt", "utf-16") == "hi"
    (tmp_path / "only.txt").write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(CharRNNError, match="the file is empty"):
        read_text(tmp_path / "only.txt")
