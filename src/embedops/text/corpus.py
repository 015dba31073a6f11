"""Stream a training corpus from a file or a folder, one paragraph (line) per item.

Supported files: ``.txt``, ``.jsonl`` (a configurable text field), each optionally compressed
as ``.gz``, ``.xz`` or ``.bz2``. Nothing is loaded whole. While streaming, the sha256 of the
decompressed bytes, the item count and the number of replaced bad bytes are kept in
``Corpus.stats`` for the model manifest.
"""

from __future__ import annotations

import bz2
import collections
import contextlib
import gzip
import hashlib
import json
import lzma
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from embedops.errors import CorpusError, InvalidInput
from embedops.progress import progress_bar
from embedops.text.normalize import _CONTROL
from embedops.text.redact import redact
from embedops.text.tokenize import DEFAULT_TOKEN_PATTERN, TokenizerSpec, tokenize

_OPENERS: dict[str, Any] = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
_FORMATS = (".txt", ".text", ".cor", ".jsonl")
SUPPORTED = tuple(f + c for f in _FORMATS for c in ("", *_OPENERS))
_ERRORS = ("strict", "replace")
_TOKEN = re.compile(DEFAULT_TOKEN_PATTERN)


@dataclass
class CorpusStats:
    """What one pass over a corpus saw. ``sha256`` covers every file's decompressed bytes
    (and, for folders, each file's relative path), so it names the training data exactly."""

    files: int = 0
    items: int = 0
    bytes: int = 0
    replaced_bytes: int = 0
    tokens: int = 0
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for the manifest."""
        return asdict(self)


def corpus_format(path: Path) -> str:
    """``"txt"`` or ``"jsonl"`` for a supported file name; CorpusError otherwise."""
    name = path.name.lower()
    for compression in _OPENERS:
        if name.endswith(compression):
            name = name[: -len(compression)]
    for fmt in _FORMATS:
        if name.endswith(fmt):
            return "jsonl" if fmt == ".jsonl" else "txt"
    raise CorpusError(
        f"'{path}' has an unsupported extension",
        f"use one of {', '.join(SUPPORTED)} (rename plain-text files to .txt)",
    )


class Corpus:
    """A corpus at ``path`` (a file, or a folder searched recursively, in sorted order).

    ``errors="strict"`` refuses bytes that are not UTF-8 (naming file and byte offset);
    ``errors="replace"`` replaces them with U+FFFD and counts them in ``stats.replaced_bytes``.
    """

    def __init__(
        self, path: str | Path, *, text_field: str = "text", errors: str = "strict"
    ) -> None:
        if errors not in _ERRORS:
            raise InvalidInput(f"unknown errors mode '{errors}'", "use 'strict' or 'replace'")
        if not text_field:
            raise InvalidInput("text_field must not be empty", "name the JSON field to read")
        self.path = Path(path).expanduser()
        self.text_field = text_field
        self.errors = errors
        self.files = self._find_files()
        self.stats = CorpusStats(files=len(self.files))

    def _find_files(self) -> list[Path]:
        if not self.path.exists():
            raise CorpusError(f"corpus '{self.path}' does not exist", "check the path")
        if self.path.is_file():
            corpus_format(self.path)
            return [self.path]
        files = sorted(
            p for p in self.path.rglob("*")
            if p.is_file() and not any(x.startswith(".") for x in p.relative_to(self.path).parts)
        )
        for p in files:
            corpus_format(p)
        if not files:
            raise CorpusError(
                f"corpus folder '{self.path}' holds no files", "add .txt or .jsonl files"
            )
        return files

    def texts(self) -> Iterator[str]:
        """Every non-blank paragraph of every file, in order (resets ``stats`` first)."""
        self.stats = CorpusStats(files=len(self.files))
        digest = hashlib.sha256()
        for path in self.files:
            if self.path.is_dir():
                digest.update(path.relative_to(self.path).as_posix().encode() + b"\0")
            yield from self._file_texts(path, digest)
        self.stats.sha256 = digest.hexdigest()

    def _file_texts(self, path: Path, digest: Any) -> Iterator[str]:
        is_jsonl = corpus_format(path) == "jsonl"
        offset = 0
        try:
            with _open(path) as fh:
                for lineno, raw in enumerate(fh, 1):
                    digest.update(raw)
                    text = self._decode(raw, path, offset, lineno)
                    offset += len(raw)
                    if is_jsonl and text.strip():
                        text = self._field(text, path, lineno)
                    if text.strip():
                        self.stats.items += 1
                        yield text
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise CorpusError(
                f"cannot read '{path}' after {offset} bytes: {exc}",
                "the file is truncated or not in the format its extension says",
            ) from exc
        finally:
            self.stats.bytes += offset

    def _decode(self, raw: bytes, path: Path, offset: int, lineno: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.errors == "strict":
                raise CorpusError(
                    f"'{path}' is not valid UTF-8 at byte offset {offset + exc.start} "
                    f"(line {lineno})",
                    "re-encode the file as UTF-8, or pass --replace-bad-bytes",
                ) from None
        text = raw.decode("utf-8", errors="replace")
        # Bytes that did not survive decoding, not counting U+FFFD already in the input.
        kept = len(text.replace("\ufffd", "").encode()) + 3 * raw.count(b"\xef\xbf\xbd")
        self.stats.replaced_bytes += len(raw) - kept
        return text

    def _field(self, line: str, path: Path, lineno: int) -> str:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(
                f"'{path}' line {lineno} is not JSON: {exc.msg}", "each line must be one object"
            ) from None
        value = record.get(self.text_field) if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise CorpusError(
                f"'{path}' line {lineno} has no string field '{self.text_field}'",
                "pass --text-field with the name of the field that holds the text",
            )
        return value


def _open(path: Path) -> IO[bytes]:
    opener = _OPENERS.get(path.suffix.lower())
    return opener(path, "rb") if opener else open(path, "rb")  # type: ignore[no-any-return]


# --- tokenizing a corpus into a LineSentence file -------------------------------------------
_CHUNK_ITEMS = 2000


def tokenize_batch(texts: list[str], spec: TokenizerSpec) -> list[list[str]]:
    """Tokens of each text, exactly as ``spec.tokenize`` gives them, but faster in bulk.

    With the default token pattern (which never matches whitespace) the texts are normalized
    as one string: Unicode normalization, control-character removal and casefolding act on
    characters and never across a newline, and the whitespace that ``normalize`` collapses
    cannot be part of a token.
    """
    if spec.token_pattern != DEFAULT_TOKEN_PATTERN or not texts:
        return [tokenize(t, spec) for t in texts]
    if spec.redact:
        texts = [redact(t, spec.redact).text for t in texts]
    joined = "\n".join(t.replace("\n", " ") for t in texts)
    if spec.normalization != "none":
        joined = unicodedata.normalize(spec.normalization, joined)  # type: ignore[arg-type]
    joined = _CONTROL.sub("", joined)
    if spec.lowercase:
        joined = joined.casefold()
    find = _TOKEN.findall
    lo, hi = spec.min_token_len, spec.max_token_len
    return [[t for t in find(line) if lo <= len(t) <= hi] for line in joined.split("\n")]


def _tokenize_chunk(
    args: tuple[list[str], TokenizerSpec, bool],
) -> tuple[str, int, int, collections.Counter[str] | None]:
    """Worker: the chunk as LineSentence text (one line of space-joined tokens per non-empty
    item), its token count, its item count and (if asked) its word counts."""
    texts, spec, count_words = args
    token_lists = [toks for toks in tokenize_batch(texts, spec) if toks]
    counts: collections.Counter[str] | None = None
    if count_words:
        counts = collections.Counter()
        for toks in token_lists:
            counts.update(toks)
    text = "".join(" ".join(toks) + "\n" for toks in token_lists)
    return text, sum(map(len, token_lists)), len(texts), counts


def _chunks(texts: Iterator[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == _CHUNK_ITEMS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_tokenized(
    corpus: Corpus,
    spec: TokenizerSpec,
    out: Path,
    *,
    workers: int = 1,
    word_counts: collections.Counter[str] | None = None,
) -> CorpusStats:
    """Tokenize ``corpus`` into ``out`` (one line of space-separated tokens per paragraph,
    gensim's LineSentence format), in ``workers`` processes; return the corpus stats.

    ``word_counts``, when given, is updated with every token (in first-seen order, as
    gensim's own vocabulary scan would count them). Raises CorpusError if the corpus has no
    tokens at all.
    """
    with open(out, "w", encoding="utf-8") as fh, _pool(workers) as pool:
        with progress_bar("tokenizing", total=None, unit="paragraphs") as task:
            count = word_counts is not None
            jobs = ((chunk, spec, count) for chunk in _chunks(corpus.texts()))
            for text, n_tokens, n_items, counts in _ordered_map(pool, jobs, workers):
                fh.write(text)
                corpus.stats.tokens += n_tokens
                if counts is not None and word_counts is not None:
                    word_counts.update(counts)
                task.advance(n_items)
    if corpus.stats.tokens == 0:
        raise CorpusError(
            f"corpus '{corpus.path}' has no tokens ({corpus.stats.items} non-blank paragraphs)",
            "check the file holds text (and --text-field for .jsonl)",
        )
    return corpus.stats


@contextlib.contextmanager
def _pool(workers: int) -> Iterator[Any]:
    if workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver, not fork: the caller may be a server, a test runner or any process with
    # native threads (gRPC, ONNX Runtime, OpenMP), and a child forked from those can die at
    # once ("terminate called ... Invalid argument"). The fork server is a fresh
    # single-threaded process that imports this module once; workers fork from it.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield pool


def _ordered_map(pool: Any, jobs: Iterator[Any], workers: int) -> Iterator[Any]:
    """Results in input order, with at most a few chunks in flight (bounded memory)."""
    if pool is None:
        yield from map(_tokenize_chunk, jobs)
        return
    pending: collections.deque[Any] = collections.deque()
    for job in jobs:
        pending.append(pool.submit(_tokenize_chunk, job))
        if len(pending) >= 2 * workers + 2:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
