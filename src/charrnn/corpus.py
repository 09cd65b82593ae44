"""Corpus preparation: text files encoded once to a compact id array, kept memory-mapped.

A prepared corpus is a folder holding three files:

- ``corpus.bin``: the ids of every character of every file, concatenated in file order with
  nothing in between, as raw ``uint8`` / ``uint16`` / ``uint32`` (the smallest that fits the
  vocabulary);
- ``vocab.json``: the :class:`~charrnn.vocabulary.Vocabulary` (:meth:`Vocabulary.to_json`);
- ``corpus.json``: ``{"dtype", "length", "files": [{"path", "size", "mtime_ns"}], "encoding",
  "characters_per_file"}``,
  written last, so its presence means the other two are complete.

The files are streamed in chunks and never held whole as one Python ``str``, so memory stays
O(chunk) while preparing and the ids are memory-mapped afterwards: a corpus larger than
memory trains.

Examples
--------
>>> import tempfile, pathlib
>>> folder = tempfile.TemporaryDirectory()
>>> source = pathlib.Path(folder.name, "a.txt")
>>> _ = source.write_text("hello world\\n")
>>> corpus = prepare_corpus([source], pathlib.Path(folder.name, "prepared"))
>>> corpus.vocabulary.decode(corpus.ids[:5])
'hello'
>>> train_ids, val_ids = corpus.split(0.25)
>>> len(train_ids), len(val_ids)
(9, 3)
>>> folder.cleanup()
"""

from __future__ import annotations

import codecs
import fnmatch
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from charrnn.checks import check_integer, check_number
from charrnn.errors import CharRNNError
from charrnn.files import atomic_stream, read_bytes, read_json, write_json
from charrnn.vocabulary import VOCABULARY_FILE, UnknownCharacterError, Vocabulary

#: Bytes read per chunk while preparing: large enough to amortise numpy's per-call cost,
#: small enough that the working set (bytes, str, UTF-32 copy, index array, ids: about 20x the
#: chunk) stays near 20 MB whatever the corpus size.
CHUNK_BYTES = 1 << 20

#: U+FEFF at the start of a file says how it is encoded (spreadsheets and Windows editors put it
#: there); it is not a character of the text, so reading drops it, as the classifier's data does.
BYTE_ORDER_MARK = "\ufeff"

#: One more than the largest Unicode code point: the size of the code point lookup tables.
CODE_POINT_LIMIT = 0x110000

CORPUS_FILE = "corpus.bin"
MANIFEST_FILE = "corpus.json"

#: How many unknown characters an error lists before summarising the rest.
_MAX_LISTED_UNKNOWN = 10


# -- finding and reading files ----------------------------------------------------------------

def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_folder(folder: Path) -> list[Path]:
    """Regular, non-hidden files under ``folder``, in sorted order of their relative path."""
    found = []
    for directory, subdirectories, names in os.walk(folder):
        # Pruning in place stops os.walk from descending into hidden folders (.git, .cache).
        subdirectories[:] = [name for name in subdirectories if not _is_hidden(name)]
        for name in names:
            path = Path(directory, name)
            if not _is_hidden(name) and path.is_file():
                found.append(path)
    return sorted(found, key=lambda path: path.relative_to(folder).parts)


#: Bytes of a file's start looked at to tell text from binary data.
SNIFF_BYTES = 8192


def binary_offset(path: Path, encoding: str = "utf-8") -> int | None:
    """The offset of a NUL byte in the first :data:`SNIFF_BYTES` of ``path`` when ``encoding``
    writes text without them (UTF-8, Latin-1, ...: a NUL means an image, an archive, a model),
    else None. Encodings of 2- or 4-byte units (UTF-16, UTF-32) put NULs in any text: not sniffed."""
    if len("a".encode(encoding)) != 1:
        return None
    with open(path, "rb") as handle:
        offset = handle.read(SNIFF_BYTES).find(b"\x00")
    return None if offset < 0 else offset


def _matches(relative: Path, patterns: Sequence[str]) -> bool:
    """Whether a walked file's path relative to its folder, or its name, matches a glob."""
    return any(fnmatch.fnmatch(relative.as_posix(), pattern) or fnmatch.fnmatch(relative.name, pattern)
               for pattern in patterns)


def find_text_files(paths: Sequence[str | os.PathLike], exclude: Sequence[str | os.PathLike] = (),
                    include_patterns: Sequence[str] = (), exclude_patterns: Sequence[str] = (),
                    encoding: str = "utf-8", skipped: list[Path] | None = None) -> list[Path]:
    """The files a list of corpus paths names, in a fixed order.

    Parameters
    ----------
    paths : sequence of paths (a single path is accepted too)
        Files are taken whatever their name. Folders are walked recursively, taking their
        regular files that are not hidden (hidden folders are skipped), sorted by path.
        A file named twice is taken once, where it first appears.
    exclude : sequence of folders, optional
        Files inside these are left out of walked folders (e.g. a run directory kept inside
        the corpus folder, so its checkpoints are not read as text).
    include_patterns, exclude_patterns : sequences of globs, optional
        A walked file is taken only if its path relative to the folder (or its name) matches an
        include pattern, when there are any, and no exclude pattern (``--include '*.txt'``).
    encoding : str
        A walked file holding binary data (see :func:`binary_offset`) is skipped; a binary
        file named directly is an error.
    skipped : list, optional
        Receives the walked files skipped as binary, to say so.

    Returns
    -------
    list of Path

    Raises
    ------
    CharRNNError
        For a path that does not exist, is neither a file nor a folder, is binary, or a folder
        with no files left, or when no path is given.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise CharRNNError("no corpus files given: name at least one text file or folder")
    _check_encoding(encoding)
    excluded = [Path(folder).resolve() for folder in exclude]
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [file for file in _walk_folder(path)
                     if not any(folder in file.resolve().parents for folder in excluded)
                     and (not include_patterns or _matches(file.relative_to(path), include_patterns))
                     and not _matches(file.relative_to(path), exclude_patterns)]
            binary = [file for file in found if binary_offset(file, encoding) is not None]
            if skipped is not None:
                skipped.extend(binary)
            found = [file for file in found if file not in binary]
            if not found:
                reasons = ["hidden files and folders"] + (["the output folder"] if excluded else []) + \
                          (["files the --include / --exclude patterns leave out"]
                           if include_patterns or exclude_patterns else []) + \
                          ([f"{len(binary)} binary file(s)"] if binary else [])
                raise CharRNNError(f"{path}: the folder holds no files ({', '.join(reasons)} are skipped)")
            files.extend(found)
        elif path.is_file():
            offset = binary_offset(path, encoding)
            if offset is not None:
                raise CharRNNError(f"{path}: is binary data (a NUL byte at byte offset {offset}), not {encoding} "
                                   f"text")
            files.append(path)
        elif path.exists():
            raise CharRNNError(f"{path}: not a regular file or folder")
        else:
            raise CharRNNError(f"{path}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in files:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CharRNNError(f"unknown encoding {encoding!r} (try utf-8, utf-16 or latin-1)") from None


def _decoding_error(path, encoding: str, error: UnicodeDecodeError, byte_offset: int) -> CharRNNError:
    bad = error.object[error.start:error.end]
    return CharRNNError(
        f"{path}: not valid {encoding} text: byte 0x{bad[:1].hex()} at byte offset {byte_offset} "
        f"({error.reason}); if the file uses another encoding, give it with --encoding "
        "(e.g. --encoding latin-1)"
    )


def _codec_error(path, encoding: str, error: UnicodeError) -> CharRNNError:
    return CharRNNError(f"{path}: not valid {encoding} text ({error}); if the file uses another encoding, give "
                        "it with --encoding (e.g. --encoding utf-8)")


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Read a whole (small) text file, such as a prime or a file to evaluate.

    The bytes are decoded as they are (line endings are not translated), but for a leading
    byte-order mark, which is dropped.

    Raises
    ------
    CharRNNError
        For a missing or empty file, an unknown encoding, or bytes that are not valid in
        ``encoding`` (naming the byte offset of the first bad byte).
    """
    _check_encoding(encoding)
    path = Path(path)
    data = read_bytes(path, "a text file")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise _decoding_error(path, encoding, error, error.start) from None
    except UnicodeError as error:
        raise _codec_error(path, encoding, error) from None
    text = text.removeprefix(BYTE_ORDER_MARK)
    if not text:
        raise CharRNNError(f"{path}: the file is empty")
    return text


def _iter_text_chunks(path: Path, encoding: str) -> Iterator[str]:
    """The text of ``path`` as consecutive ``str`` chunks of about :data:`CHUNK_BYTES` bytes.

    An incremental decoder carries a character cut by a chunk boundary into the next chunk. A
    byte-order mark at the start of the file is not text: it is dropped (:data:`BYTE_ORDER_MARK`).
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    bytes_fed, started = 0, False
    with open(path, "rb") as handle:
        while True:
            block = handle.read(CHUNK_BYTES)
            final = not block
            # The decoder reports error offsets within (its buffered bytes + this block).
            buffered = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as error:
                raise _decoding_error(path, encoding, error, bytes_fed - buffered + error.start) from None
            except UnicodeError as error:  # e.g. utf-16 without a byte-order mark: no offset to name
                raise _codec_error(path, encoding, error) from None
            bytes_fed += len(block)
            if text and not started:
                text, started = text.removeprefix(BYTE_ORDER_MARK), True
            if text:
                yield text
            if final:
                return


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array (4 bytes per character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


# -- preparing ------------------------------------------------------------------------------------

def _dtype_for(vocabulary_size: int) -> np.dtype:
    """The smallest unsigned integer type holding ids ``0 .. vocabulary_size - 1``."""
    for dtype in (np.uint8, np.uint16):
        if vocabulary_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.uint32)


def _file_records(files: list[Path]) -> list[dict]:
    records = []
    for path in files:
        status = path.stat()
        records.append({"path": str(path.resolve()), "size": status.st_size, "mtime_ns": status.st_mtime_ns})
    return records


def _scan(files: list[Path], encoding: str, vocabulary: Vocabulary | None) -> tuple[np.ndarray, list[int]]:
    """Pass 1: which code points occur, and how many characters each file holds.

    With a given ``vocabulary``, every character outside it is reported (the first
    :data:`_MAX_LISTED_UNKNOWN` by name, file and character offset).
    """
    seen = np.zeros(CODE_POINT_LIMIT, dtype=bool)
    known = None
    if vocabulary is not None:
        known = np.zeros(CODE_POINT_LIMIT, dtype=bool)
        known[[ord(char) for char in vocabulary.characters]] = True
    unknown: dict[int, str] = {}  # code point -> where it first occurs
    lengths = []
    for path in files:
        file_offset = 0
        for text in _iter_text_chunks(path, encoding):
            codes = _code_points(text)  # (n,)
            seen[codes] = True
            if known is not None and len(unknown) < _MAX_LISTED_UNKNOWN:
                # A code point not reported yet first occurs in this chunk (`seen` grows per chunk).
                for code in np.flatnonzero(seen & ~known):
                    if int(code) not in unknown and len(unknown) < _MAX_LISTED_UNKNOWN:
                        position = file_offset + int(np.argmax(codes == code))
                        unknown[int(code)] = (f"{chr(code)!r} (U+{code:04X}) in {path} "
                                              f"at character offset {position}")
            file_offset += len(text)
        lengths.append(file_offset)
    if known is not None:
        missing = int(np.count_nonzero(seen & ~known))
        if missing:
            more = f"; and {missing - len(unknown)} more" if missing > len(unknown) else ""
            raise UnknownCharacterError(
                f"{missing} character(s) of the corpus are not in the vocabulary: "
                + "; ".join(unknown.values()) + more
            )
    return seen, lengths


def _encode_files(files: list[Path], encoding: str, vocabulary: Vocabulary, dtype: np.dtype,
                  path: Path) -> int:
    """Pass 2: write the ids of every character to ``path``; returns how many were written."""
    # A lookup table over all code points maps a chunk in one gather (faster than a search).
    table = np.zeros(CODE_POINT_LIMIT, dtype=dtype)
    table[[ord(char) for char in vocabulary.characters]] = np.arange(vocabulary.size)
    written = 0
    with atomic_stream(path) as handle:
        for file in files:
            for text in _iter_text_chunks(file, encoding):
                ids = table[_code_points(text)]  # (n,) of dtype
                handle.write(memoryview(ids))
                written += len(ids)
    return written


def _reusable(out_dir: Path, records: list[dict], encoding: str,
              vocabulary: Vocabulary | None) -> "PreparedCorpus | None":
    """The corpus already prepared in ``out_dir`` from the same files, if there is one."""
    if not (out_dir / MANIFEST_FILE).is_file():
        return None
    try:
        manifest = read_json(out_dir / MANIFEST_FILE)
        if not isinstance(manifest, dict) or manifest.get("files") != records \
                or manifest.get("encoding") != encoding:
            return None
        corpus = PreparedCorpus.open(out_dir)
    except CharRNNError:
        return None
    if vocabulary is not None and corpus.vocabulary != vocabulary:
        return None
    return corpus


def prepare_corpus(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                   encoding: str = "utf-8", vocabulary: Vocabulary | None = None,
                   extends: Vocabulary | None = None) -> "PreparedCorpus":
    """Encode text files once into ``out_dir`` and open the result memory-mapped.

    Parameters
    ----------
    paths : sequence of paths
        Text files and folders, as :func:`find_text_files` takes them. Files inside
        ``out_dir`` are left out of walked folders, so it may live inside the corpus folder.
    out_dir : path
        Where ``corpus.bin``, ``corpus.json`` and ``vocab.json`` go (created if needed). When
        it already holds a corpus prepared from the same files (same paths, sizes,
        modification times and encoding, and the same ``vocabulary`` if one is given), that
        corpus is opened without encoding anything again.
    encoding : str
        The text encoding of every file.
    vocabulary : Vocabulary, optional
        Encode with this vocabulary (e.g. a trained model's); a character outside it is an
        error. By default the vocabulary is every character the files hold.
    extends : Vocabulary, optional
        The vocabulary is this one's characters and every character the files hold (what a
        fine-tuned model reads: its old characters and the new text's).

    Returns
    -------
    PreparedCorpus

    Raises
    ------
    CharRNNError
        For bad paths, bytes that are not valid in ``encoding`` (naming the file and byte
        offset), characters outside a given ``vocabulary`` (naming each, its file and
        character offset), an empty corpus, a single-character vocabulary, or files that
        change while being read.
    """
    _check_encoding(encoding)
    if vocabulary is not None and extends is not None:
        raise ValueError("give a vocabulary to encode with, or one to extend, not both")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CharRNNError(f"{out_dir}: exists and is not a folder")
    files = find_text_files(paths, exclude=[out_dir], encoding=encoding)
    records = _file_records(files)
    reused = _reusable(out_dir, records, encoding, vocabulary)
    if reused is not None and extends is not None and any(char not in reused.vocabulary for char in extends.characters):
        reused = None
    if reused is not None:
        return reused

    seen, lengths = _scan(files, encoding, vocabulary)
    length = sum(lengths)
    if length == 0:
        raise CharRNNError(f"the corpus is empty: {', '.join(map(str, files[:5]))}"
                           f"{' ...' if len(files) > 5 else ''} {'holds' if len(files) == 1 else 'hold'} no text")
    if vocabulary is None:
        vocabulary = Vocabulary([*(chr(code) for code in np.flatnonzero(seen)), *(extends.characters if extends else ())])
    if vocabulary.size < 2:
        raise CharRNNError(f"the vocabulary has a single character ({vocabulary.characters[0]!r}): "
                           "a language model needs text with at least two distinct characters")
    dtype = _dtype_for(vocabulary.size)

    out_dir.mkdir(parents=True, exist_ok=True)
    # The manifest goes first and comes back last: a crash in between leaves no corpus.json,
    # so the folder is never taken for a complete corpus.
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
    written = _encode_files(files, encoding, vocabulary, dtype, out_dir / CORPUS_FILE)
    if written != length or _file_records(files) != records:
        raise CharRNNError("the corpus files changed while being prepared; run again", exit_code=1)
    vocabulary.save(out_dir / VOCABULARY_FILE)
    write_json(out_dir / MANIFEST_FILE,
               {"dtype": dtype.name, "length": length, "files": records, "encoding": encoding,
                "characters_per_file": lengths})
    return PreparedCorpus.open(out_dir)


# -- the prepared corpus ----------------------------------------------------------------------

class PreparedCorpus:
    """A prepared corpus: its vocabulary and its ids, memory-mapped read-only.

    Build one with :func:`prepare_corpus`, or :meth:`open` a prepared folder.

    Attributes
    ----------
    vocabulary : Vocabulary
    ids : numpy.memmap, 1-D, uint8 / uint16 / uint32
        The id of every character of the corpus.
    directory : Path
        The folder holding the prepared files.
    encoding : str
        The encoding the text files were read with.
    files : list of dict
        ``{"path", "size", "mtime_ns", "characters"}`` of each source file, in corpus order
        (``characters`` only for corpora prepared since it is recorded).
    """

    def __init__(self, vocabulary: Vocabulary, ids: np.ndarray, directory: Path,
                 encoding: str = "utf-8", files: list[dict] | None = None):
        self.vocabulary = vocabulary
        self.ids = ids
        self.directory = Path(directory)
        self.encoding = encoding
        self.files = files or []

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"PreparedCorpus({str(self.directory)!r}, length={len(self.ids)}, "
                f"vocabulary_size={self.vocabulary.size}, dtype={self.ids.dtype.name})")

    @classmethod
    def open(cls, directory: str | os.PathLike) -> "PreparedCorpus":
        """Open the corpus prepared in ``directory``.

        Raises
        ------
        CharRNNError
            When a file is missing, damaged, or disagrees with the others.
        """
        directory = Path(directory)
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise CharRNNError(f"{directory}: no prepared corpus here ({MANIFEST_FILE} is missing)")
        manifest = read_json(manifest_path)
        if not isinstance(manifest, dict):
            raise CharRNNError(f"{manifest_path}: expected a JSON object")
        dtype_name, length = manifest.get("dtype"), manifest.get("length")
        if dtype_name not in ("uint8", "uint16", "uint32"):
            raise CharRNNError(f"{manifest_path}: dtype must be uint8, uint16 or uint32, got {dtype_name!r}")
        try:
            check_integer("length", length)
        except CharRNNError as error:
            raise CharRNNError(f"{manifest_path}: {error}") from None
        vocabulary = Vocabulary.load(directory / VOCABULARY_FILE)
        dtype = np.dtype(dtype_name)
        if _dtype_for(vocabulary.size) != dtype:
            raise CharRNNError(f"{directory}: {VOCABULARY_FILE} holds {vocabulary.size} characters, "
                               f"which do not match ids of {dtype_name}; prepare the corpus again")
        corpus_path = directory / CORPUS_FILE
        expected = length * dtype.itemsize
        try:
            size = corpus_path.stat().st_size
        except FileNotFoundError:
            raise CharRNNError(f"{corpus_path}: file not found; prepare the corpus again") from None
        if size != expected:
            raise CharRNNError(f"{corpus_path}: holds {size} bytes, expected {expected} "
                               f"({length} ids of {dtype_name}); prepare the corpus again")
        ids = np.memmap(corpus_path, dtype=dtype, mode="r", shape=(length,))
        files = [dict(record) for record in manifest.get("files") or []]
        counts = manifest.get("characters_per_file")
        if isinstance(counts, list) and len(counts) == len(files):  # corpora prepared before lack them
            for record, count in zip(files, counts):
                record["characters"] = count
        return cls(vocabulary, ids, directory, manifest.get("encoding", "utf-8"), files)

    def split(self, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """``(train_ids, val_ids)``: the last ``val_fraction`` of the ids is validation.

        The boundary is ``int(len(ids) * (1 - val_fraction))``, as nanoGPT's
        ``shakespeare_char`` splits, so losses compare. Both are views of :attr:`ids`.

        Raises
        ------
        CharRNNError
            When ``val_fraction`` is not in ``[0, 1)``.
        """
        check_number("val_fraction", val_fraction, low=0.0, high=1.0, high_open=True)
        boundary = int(len(self.ids) * (1.0 - val_fraction))
        return self.ids[:boundary], self.ids[boundary:]

    def check_split(self, val_fraction: float, sequence_length: int) -> None:
        """Check that each split holds at least one ``(x, y)`` pair of ``sequence_length``.

        The validation split is checked only when ``val_fraction`` is above 0.

        Raises
        ------
        CharRNNError
            Naming the split that is too short, its length and what it takes.
        """
        check_integer("sequence_length", sequence_length)
        train_ids, val_ids = self.split(val_fraction)
        needed = sequence_length + 1
        parts = [("training", train_ids, f"the first {100 * (1 - val_fraction):.4g}%")]
        if val_fraction > 0:
            parts.append(("validation", val_ids, f"the last {100 * val_fraction:.4g}%"))
        for name, ids, where in parts:
            if len(ids) < needed:
                raise CharRNNError(
                    f"the {name} split ({where} of {len(self.ids)} characters) holds {len(ids)} "
                    f"characters, fewer than sequence-length + 1 = {needed} needed for one (x, y) "
                    "pair: use more text, a shorter --sequence-length, or another --val-fraction"
                )
