"""Corpus readers: raw sources -> documents, each a list of sentences.

The BioALBERT paper's rules are applied here, once: one sentence per line, blank lines
dropped, lines (sentences) shorter than 20 characters dropped. Lowercasing is NOT done here:
it belongs to normalisation (`bioalbert_tf.tokenization.preprocess_text`).

Formats:
  medline  PubMed/MEDLINE baseline XML (`*.xml`, `*.xml.gz`): title + abstract per citation;
           citations without an abstract are skipped and counted. Streamed with iterparse.
  pmc      PMC Open Access JATS (`*.nxml`, `*.nxml.gz`, or `*.tar.gz` packages of them):
           article title, abstract and body paragraphs; tables, figures, references left out.
  mimic    MIMIC-III NOTEEVENTS.csv(.gz): the TEXT column, one note per document; rows with
           ISERROR=1 skipped and counted.
  text     The original format: one sentence per line, a blank line between documents.

Bad input never crashes without a message: undecodable or NUL-carrying lines and over-long
lines are skipped and counted; a truncated or malformed file raises CorpusError naming the
file (or, with skip_bad_files, keeps what was read before the damage and is counted). A binary
file given as text (its first block mostly NUL, control or undecodable bytes) raises CorpusError
(or, with skip_bad_files, is listed and skipped): read line by line it would yield garbage.

Pieces: a MEDLINE or text file can be cut into pieces that parse independently (`split_stream`,
`read_piece`), so that one large file is parsed by several workers; the pieces, read in order,
give exactly the documents and counts of the whole file.
"""

from __future__ import annotations

import codecs
import collections
import csv
import gzip
import io
import re
import sys
import tarfile
import unicodedata
import zlib
from collections.abc import Iterator

import blingfire
from lxml import etree

from bioalbert_tf import fileio

FORMATS = ("medline", "pmc", "mimic", "text")
MIN_LINE_CHARS = 20  # the paper: lines shorter than 20 characters are removed
MAX_LINE_CHARS = 100_000  # longer "sentences" are markup or binary junk: skipped and counted

# lxml never fetches DTDs or entities (PubMed files name a DTD by URL).
SNIFF_BYTES = 8192  # the block of a text file looked at to tell text from binary
# Share of NUL, control or undecodable characters in that block above which a file is binary;
# text has next to none (a few bad lines are skipped and counted instead).
BINARY_SHARE = 0.1
_TEXT_CONTROLS = frozenset("\t\n\r\f\v")
_XML_OPTS = dict(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=True)
_PMC_SKIP = frozenset(
    {"table-wrap", "table", "fig", "ref-list", "supplementary-material", "fn-group"}
)


class CorpusError(Exception):
    """A corpus file that cannot be read; the message names the file and the position."""


class NotSplittable(Exception):
    """A file that cannot be cut into pieces safely: read it whole (`iter_documents`)."""


# What a damaged file raises while it is read (decompression, XML, tar).
READ_ERRORS = (
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    OSError,
    etree.XMLSyntaxError,
    tarfile.TarError,
)


class ReadStats:
    """Counters of what was read, kept and skipped, plus the files that could not be read."""

    def __init__(self):
        self.counts: collections.Counter = collections.Counter()
        self.bad_files: list[str] = []

    def to_dict(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "bad_files": list(self.bad_files)}

    def add(self, other: dict) -> None:
        """Adds the counts and bad files of another ReadStats' `to_dict()`."""
        self.counts.update(other["counts"])
        self.bad_files.extend(other["bad_files"])


def detect_format(path: str) -> str:
    name = fileio.basename(path).lower()
    for suffix in (".gz", ".bz2"):
        if name.endswith(suffix) and not name.endswith((".tar.gz", ".tgz")):
            name = name[: -len(suffix)]
    if name.endswith((".nxml", ".tar.gz", ".tgz", ".tar")):
        return "pmc"
    if name.endswith(".xml"):
        return "medline"
    if name.endswith(".csv"):
        return "mimic"
    return "text"


def split_sentences(text: str) -> list[str]:
    """Sentence splitting for biomedical prose (blingfire: keeps `e.g.`, `et al.`, `Fig. 3`,
    `2.5 mg`)."""
    if not text or text.isspace():
        return []
    return blingfire.text_to_sentences(text).split("\n")


def clean_lines(lines, stats: ReadStats, min_chars: int = MIN_LINE_CHARS) -> list[str]:
    """The paper's rule: drop blank lines and lines shorter than `min_chars` characters."""
    kept = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if "\x00" in line:
            stats.counts["lines_with_nul"] += 1
        elif len(line) > MAX_LINE_CHARS:
            stats.counts["lines_overlong"] += 1
        elif len(line) < min_chars:
            stats.counts["lines_short"] += 1
        else:
            kept.append(line)
    return kept


def binary_share(head: bytes) -> float:
    """Share of the characters of `head` that are NUL, control (but whitespace) or undecodable."""
    # final=False: a multi-byte character cut at the end of the block is not damage.
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    if not text:
        return 0.0
    bad = sum(
        1
        for c in text
        if c == "\ufffd" or (c not in _TEXT_CONTROLS and unicodedata.category(c) == "Cc")
    )
    return bad / len(text)


def _binary_message(path: str, fmt: str) -> str | None:
    """Why a file given as text is binary, or None."""
    with _open_binary(path) as f:
        head = f.read(SNIFF_BYTES)
    share = binary_share(head)
    if share <= BINARY_SHARE:
        return None
    return (
        f"{path}: not a text file: {share:.0%} of the characters in its first {len(head)} bytes "
        f"are NUL, control or undecodable (expected UTF-8 text in format {fmt})"
    )


def _open_binary(path: str):
    raw = fileio.open_file(path, "rb")
    if path.endswith(".gz") and not path.endswith((".tar.gz", ".tgz")):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if path.endswith(".bz2"):
        import bz2

        return bz2.BZ2File(raw, mode="rb")
    return raw


def _itertext(elem) -> str:
    return " ".join("".join(elem.itertext()).split())


def _read_medline(f, stats: ReadStats, min_chars: int) -> Iterator[list[str]]:
    tags = ("PubmedArticle", "PubmedBookArticle", "MedlineCitation", "DeleteCitation")
    for _, elem in etree.iterparse(f, events=("end",), tag=tags, **_XML_OPTS):
        parent = elem.getparent()
        if elem.tag == "MedlineCitation" and parent is not None and parent.tag == "PubmedArticle":
            continue  # handled with its PubmedArticle
        if elem.tag == "DeleteCitation":
            stats.counts["citations_deleted"] += len(elem.findall("PMID"))
        elif elem.tag == "PubmedBookArticle":
            stats.counts["book_articles_skipped"] += 1
        else:
            stats.counts["citations"] += 1
            article = elem.find(".//Article")
            abstract = [] if article is None else article.findall("./Abstract/AbstractText")
            if not abstract:
                stats.counts["citations_without_abstract"] += 1
            else:
                title = article.find("./ArticleTitle")
                lines = [_itertext(title)] if title is not None else []
                for part in abstract:
                    lines.extend(split_sentences(_itertext(part)))
                doc = clean_lines(lines, stats, min_chars)
                if doc:
                    yield doc
                else:
                    stats.counts["documents_empty_after_cleaning"] += 1
        # Bounded memory on 30k-citation files: drop what has been read.
        elem.clear()
        while elem.getprevious() is not None:
            del elem.getparent()[0]


def _pmc_article(f, stats: ReadStats, min_chars: int) -> list[str]:
    root = etree.parse(f, etree.XMLParser(**_XML_OPTS)).getroot()
    lines = []
    title = root.find(".//front//article-title")
    if title is not None:
        lines.append(_itertext(title))
    paragraphs = root.findall(".//front//abstract//p") + root.findall(".//body//p")
    for p in paragraphs:
        ancestors = {a.tag for a in p.iterancestors()}
        if "p" in ancestors or ancestors & _PMC_SKIP:
            continue  # nested paragraphs are inside their parent's text; tables/figures left out
        lines.extend(split_sentences(_itertext(p)))
    stats.counts["articles"] += 1
    return clean_lines(lines, stats, min_chars)


def _read_pmc(path: str, f, stats: ReadStats, min_chars: int) -> Iterator[list[str]]:
    name = path.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for member in tar:
                if not member.isfile() or not member.name.lower().endswith((".nxml", ".xml")):
                    continue
                try:
                    doc = _pmc_article(tar.extractfile(member), stats, min_chars)
                except etree.XMLSyntaxError as e:
                    stats.counts["articles_malformed"] += 1
                    stats.bad_files.append(f"{path}!{member.name}: {e}")
                    continue
                if doc:
                    yield doc
        return
    doc = _pmc_article(f, stats, min_chars)
    if doc:
        yield doc


def _read_mimic(path: str, f, stats: ReadStats, min_chars: int) -> Iterator[list[str]]:
    csv.field_size_limit(sys.maxsize)
    text_stream = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
    reader = csv.reader(text_stream)
    header = next(reader, None)
    if header is None:
        return
    upper = [h.strip().upper() for h in header]
    if "TEXT" not in upper:
        raise CorpusError(
            f"{path}: line 1: expected a NOTEEVENTS.csv header with a TEXT column, "
            f"got {header[:12]}"
        )
    text_col = upper.index("TEXT")
    error_col = upper.index("ISERROR") if "ISERROR" in upper else None
    try:
        for row in reader:
            if len(row) != len(header):
                raise CorpusError(
                    f"{path}: line {reader.line_num}: expected {len(header)} columns, "
                    f"got {len(row)}"
                )
            if error_col is not None and row[error_col].strip() == "1":
                stats.counts["notes_marked_error"] += 1
                continue
            stats.counts["notes"] += 1
            lines = []
            # Notes are hard-wrapped: blank lines separate blocks, single newlines are wraps.
            for block in row[text_col].replace("\r\n", "\n").split("\n\n"):
                lines.extend(split_sentences(" ".join(block.split())))
            doc = clean_lines(lines, stats, min_chars)
            if doc:
                yield doc
            else:
                stats.counts["documents_empty_after_cleaning"] += 1
    except csv.Error as e:
        raise CorpusError(f"{path}: line {reader.line_num}: malformed CSV ({e})") from e


_READ_LIMIT = 4 * MAX_LINE_CHARS  # bytes per readline: bounded memory on a one-line 1 GB file


def _read_text(f, stats: ReadStats, min_chars: int) -> Iterator[list[str]]:
    doc: list[str] = []
    while True:
        raw = f.readline(_READ_LIMIT)
        if not raw:
            break
        if len(raw) == _READ_LIMIT and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # consume the rest of the over-long line
                raw = f.readline(_READ_LIMIT)
            stats.counts["lines_overlong"] += 1
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats.counts["lines_invalid_utf8"] += 1
            continue
        if not line.strip():
            if doc:
                yield doc
            doc = []
            continue
        doc.extend(clean_lines([line], stats, min_chars))
    if doc:
        yield doc


def resolve_format(path: str, input_format: str = "auto") -> str:
    fmt = detect_format(path) if input_format == "auto" else input_format
    if fmt not in FORMATS:
        raise ValueError(f"input_format must be auto or one of {FORMATS}, got {input_format!r}")
    return fmt


def iter_documents(
    path: str,
    stats: ReadStats,
    input_format: str = "auto",
    min_line_chars: int = MIN_LINE_CHARS,
    skip_bad_files: bool = False,
) -> Iterator[list[str]]:
    """Yields the documents (lists of cleaned sentences) of one corpus file.

    Counts go to `stats`. A damaged file raises CorpusError, or with `skip_bad_files` ends the
    file at the damage (documents read before it are kept) and is listed in `stats.bad_files`.
    """
    fmt = resolve_format(path, input_format)
    if not fileio.exists(path):
        raise CorpusError(f"{path}: no such file")
    stats.counts["files"] += 1
    if fileio.size(path) == 0:
        stats.counts["files_empty"] += 1
        return
    n_docs = 0
    try:
        binary = _binary_message(path, fmt) if fmt in ("text", "mimic") else None
        if binary:
            if not skip_bad_files:
                raise CorpusError(
                    binary + "; remove it from the inputs, or pass --skip_bad_files to list it "
                    "in stats.json and go on."
                )
            stats.counts["files_binary"] += 1
            stats.bad_files.append(binary)
            return
        with _open_binary(path) as f:
            if fmt == "medline":
                docs = _read_medline(f, stats, min_line_chars)
            elif fmt == "pmc":
                docs = _read_pmc(path, f, stats, min_line_chars)
            elif fmt == "mimic":
                docs = _read_mimic(path, f, stats, min_line_chars)
            else:
                docs = _read_text(f, stats, min_line_chars)
            for doc in docs:
                n_docs += 1
                yield doc
    except READ_ERRORS as e:
        kind = type(e).__name__
        msg = f"{path}: unreadable after {n_docs} documents ({kind}: {e})"
        if not skip_bad_files:
            raise CorpusError(
                msg + ". The file may be truncated or not in the expected format "
                f"({fmt}); re-download it, or pass --skip_bad_files to keep what was read."
            ) from e
        stats.counts["files_bad"] += 1
        stats.bad_files.append(msg)


# Where a stream may be cut, and how far after the marker's start: before a MEDLINE citation,
# after an empty line of text (a document boundary; `_read_text` keeps no state across it).
_CUT_MARKERS = {"medline": (b"<PubmedArticle>", 0), "text": (b"\n\n", 2)}
_PROLOG_LIMIT = 1 << 22  # a MEDLINE prolog (declaration, DOCTYPE, root tag) is a few hundred bytes


def can_split(path: str, fmt: str) -> bool:
    """Whether `split_stream` applies: a non-empty MEDLINE or text file (text: not binary).

    Files it does not apply to, and damaged files, are read whole with `iter_documents`, which
    also does their counting and error handling.
    """
    if fmt not in _CUT_MARKERS or not fileio.exists(path) or fileio.size(path) == 0:
        return False
    return fmt != "text" or _binary_message(path, fmt) is None


def _root_end_tag(prolog: bytes) -> bytes:
    """`</Root>` for a MEDLINE prolog that holds nothing but the root's start tag; else raises."""
    names = re.findall(rb"<([^\s/>!?]+)", prolog)
    if not names:
        raise NotSplittable("no root element before the first <PubmedArticle>")
    end = b"</" + names[-1] + b">"
    try:
        root = etree.fromstring(prolog + end, etree.XMLParser(**_XML_OPTS))
    except etree.XMLSyntaxError as e:
        raise NotSplittable(f"the prolog does not parse on its own ({e})") from e
    if len(root) or (root.text or "").strip():
        raise NotSplittable("the root holds content before the first <PubmedArticle>")
    return end


def split_stream(path: str, fmt: str, piece_bytes: int, block: int = 1 << 20):
    """The decompressed bytes of a MEDLINE or text file, as blocks with None at each cut.

    A cut is made at the first cut point at least `piece_bytes` into the current piece. Each
    piece parsed alone (`read_piece`) gives exactly the documents and counts of its stretch of
    the file: MEDLINE is cut before a `<PubmedArticle>` tag, every piece but the first starts
    with the file's prolog (declaration, DOCTYPE, root start tag: the same parsing context) and
    every piece but the last ends with the root's end tag; text is cut after an empty line. A
    cut anywhere but between top-level elements (a marker in a comment, a CDATA section, a
    nested element) leaves the piece before it with something unclosed, so that piece fails to
    parse and the caller reads the file whole: pieces that all parse are the file's documents.
    Memory: a block or two. Raises NotSplittable (MEDLINE without a repeatable prolog) or a
    READ_ERRORS error (a damaged file).
    """
    marker, after = _CUT_MARKERS[fmt]
    keep = len(marker) - 1  # bytes held back: a marker may straddle two blocks
    prefix = suffix = b""
    size = 0  # bytes of the current piece already yielded
    with _open_binary(path) as f:
        pending = b""
        if fmt == "medline":
            while (first := pending.find(marker)) < 0:
                data = f.read(block)
                if not data or len(pending) > _PROLOG_LIMIT:
                    raise NotSplittable(f"no <PubmedArticle> in the first {len(pending)} bytes")
                pending += data
            prefix = pending[:first]
            suffix = _root_end_tag(prefix)
        while True:
            data = f.read(block)
            pending += data
            while (i := pending.find(marker, max(piece_bytes - size, 1))) >= 0:
                yield pending[: i + after] + suffix
                yield None
                if prefix:
                    yield prefix
                pending, size = pending[i + after :], 0
            if not data:
                if pending:
                    yield pending
                return
            if len(pending) > keep:
                yield pending[: len(pending) - keep]
                size += len(pending) - keep
                pending = pending[len(pending) - keep :]


def read_piece(f, fmt: str, stats: ReadStats, min_chars: int = MIN_LINE_CHARS):
    """The documents of one piece of `split_stream` (an open binary file); counts go to stats."""
    if fmt == "medline":
        return _read_medline(f, stats, min_chars)
    if fmt == "text":
        return _read_text(f, stats, min_chars)
    raise ValueError(f"read_piece reads medline or text pieces, got {fmt!r}")
