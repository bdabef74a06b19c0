"""What travels between the Beam stages (small records naming work files) and the work files
under `<output_dir>/.build/work-<fingerprint>/`."""

from __future__ import annotations

import dataclasses
import json

from bioalbert_tf import fileio
from tfrecords_builder.plan import SIDE_DIR, BuildConfig


@dataclasses.dataclass(frozen=True)
class FileTask:
    group: int
    position: int  # in the sorted input list
    path: str


@dataclasses.dataclass(frozen=True)
class Piece:
    """A stretch of a file to parse (`raw`), or one already parsed by stage 1 (`raw` None)."""

    group: int
    position: int
    path: str
    index: int
    fmt: str
    raw: str | None
    read: dict | None  # file-level counts of stage 1 (on piece 0 of a cut file)


@dataclasses.dataclass(frozen=True)
class ParsedPiece:
    group: int
    position: int
    path: str
    index: int
    docs: str  # JSON lines, one document (list of sentences) per line
    n_docs: int
    read: dict  # corpus.ReadStats.to_dict()
    failed: str | None  # why the piece did not parse alone
    seconds: float
    # Bytes of `docs`, counted while writing it: the plan costs chunks without a stat per piece
    # (a round trip each on gs://).
    docs_bytes: int


@dataclasses.dataclass(frozen=True)
class ChunkTask:
    group: int
    position: int
    path: str
    chunk: int
    segments: tuple[tuple[str, int, int], ...]  # (docs file, first line, end line)
    size: int = 0  # estimated bytes of its documents: what it costs to build


@dataclasses.dataclass(frozen=True)
class ChunkDone:
    position: int
    chunk: int
    records: str  # uncompressed TFRecord file of the chunk's shuffled records
    n_records: int
    stats: dict  # ChunkStats.to_dict()
    seconds: float


@dataclasses.dataclass(frozen=True)
class FileDone:
    group: int
    position: int
    read: dict
    folder: str  # the file's work files
    seconds: float


def work_dir(config: BuildConfig, print_fingerprint: str) -> str:
    return fileio.join(config.output_dir, SIDE_DIR, f"work-{print_fingerprint}")


def _file_dir(work: str, position: int) -> str:
    return fileio.join(work, f"file-{position:05d}")


def _write_json(path: str, value) -> None:
    """Written whole (fileio.write_atomic): its existence marks work as done."""
    fileio.write_atomic(path, json.dumps(value))


class _DocsWriter:
    """Documents as JSON lines, in files of `per_file` documents (0: all in one file), each
    renamed into place when complete."""

    def __init__(self, folder: str, stem: str, per_file: int):
        self.folder, self.stem, self.per_file = folder, stem, per_file
        self.files: list[tuple[str, int, int]] = []  # (path, documents, bytes)
        self._f, self._n, self._bytes = None, 0, 0

    def _path(self, index: int) -> str:
        return fileio.join(self.folder, f"{self.stem}-{index:05d}.jsonl")

    def write(self, doc: list[str]) -> None:
        if self._f is None:
            self._tmp = fileio.tmp_path(self._path(len(self.files)))
            self._f, self._n, self._bytes = fileio.open_file(self._tmp, "w"), 0, 0
        line = json.dumps(doc) + "\n"  # ASCII (json.dumps escapes the rest): 1 byte a character
        self._f.write(line)
        self._n += 1
        self._bytes += len(line)
        if self._n == self.per_file:
            self.close()

    def close(self) -> list[tuple[str, int]]:
        """Completes the current file; returns all files (at least one, maybe empty)."""
        if self._f is None and not self.files:
            self._tmp = fileio.tmp_path(self._path(0))
            self._f, self._n, self._bytes = fileio.open_file(self._tmp, "w"), 0, 0
        if self._f is not None:
            self._f.close()
            path = self._path(len(self.files))
            fileio.rename(self._tmp, path)
            self.files.append((path, self._n, self._bytes))
            self._f = None
        return self.files
