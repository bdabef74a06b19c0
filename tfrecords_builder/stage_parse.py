"""Stages 1 and 2: a file is cut into pieces that parse on their own (or parsed whole), and each
piece is parsed into documents."""

from __future__ import annotations

import dataclasses
import time

from absl import logging

from bioalbert_tf import fileio
from tfrecords_builder import corpus
from tfrecords_builder.plan import BuildConfig
from tfrecords_builder.work import (
    FileTask,
    ParsedPiece,
    Piece,
    _DocsWriter,
    _file_dir,
    _write_json,
)


def _parse_whole(
    group: int, position: int, path: str, config: BuildConfig, folder: str, stem: str
) -> list[ParsedPiece]:
    """A file read whole by `corpus.iter_documents` (its error handling and counts), written as
    files of `docs_per_chunk` documents; the first carries the file's counts."""
    start, read = time.time(), corpus.ReadStats()
    out = _DocsWriter(folder, stem, config.docs_per_chunk)
    for doc in corpus.iter_documents(
        path, read, config.input_format, config.min_line_chars, config.skip_bad_files
    ):
        out.write(doc)
    files, seconds = out.close(), round(time.time() - start, 3)
    pieces = []
    for i, (docs, n, size) in enumerate(files):
        first = i == 0  # carries the file's counts and time
        counts = read.to_dict() if first else corpus.ReadStats().to_dict()
        seconds_here = seconds if first else 0.0
        pieces.append(
            ParsedPiece(group, position, path, i, docs, n, counts, None, seconds_here, size)
        )
    return pieces


def _piece_meta(folder: str, index: int) -> str:
    return fileio.join(folder, f"piece-{index:05d}.json")


def split_file(task: FileTask, config: BuildConfig, work: str, piece_bytes: int) -> list[Piece]:
    """Stage 1: cuts a MEDLINE or text file into raw pieces; parses any other file whole."""
    folder = _file_dir(work, task.position)
    manifest = fileio.join(folder, "split.json")
    if fileio.exists(manifest):
        return [Piece(**p) for p in fileio.read_json(manifest)]
    fmt = corpus.resolve_format(task.path, config.input_format)
    pieces = []
    try:
        if corpus.can_split(task.path, fmt):
            pieces = _write_raw_pieces(task, fmt, folder, piece_bytes)
    except (corpus.NotSplittable, *corpus.READ_ERRORS) as e:
        # Read whole, as before pieces existed: a damaged file fails or is skipped the same way.
        logging.info("%s: read whole (%s: %s)", task.path, type(e).__name__, e)
    if not pieces:
        for p in _parse_whole(task.group, task.position, task.path, config, folder, "piece"):
            _write_json(_piece_meta(folder, p.index), dataclasses.asdict(p))
            pieces.append(Piece(task.group, task.position, task.path, p.index, fmt, None, None))
    _write_json(manifest, [dataclasses.asdict(p) for p in pieces])
    return pieces


def _write_raw_pieces(task: FileTask, fmt: str, folder: str, piece_bytes: int) -> list[Piece]:
    """The pieces of `corpus.split_stream` as files; [] for a file that fits in one piece (it
    is parsed whole instead). Piece 0 stays in memory until the first cut."""

    def name(i: int) -> str:
        return fileio.join(folder, f"piece-{i:05d}.raw")

    done, head, out, tmp = [], [], None, None
    try:
        for part in corpus.split_stream(task.path, fmt, piece_bytes):
            if part is None:  # a cut: the current piece is complete
                if out is None:
                    tmp = fileio.tmp_path(name(0))
                    out = fileio.open_file(tmp, "wb")
                    for block in head:  # (a GFile has no writelines)
                        out.write(block)
                out.close()
                fileio.rename(tmp, name(len(done)))
                done.append(name(len(done)))
                tmp = fileio.tmp_path(name(len(done)))
                out = fileio.open_file(tmp, "wb")
            elif out is None:
                head.append(part)
                if sum(map(len, head)) > 2 * piece_bytes:
                    raise corpus.NotSplittable(f"no cut point in the first {2 * piece_bytes} bytes")
            else:
                out.write(part)
        if out is None:
            return []
        out.close()
        fileio.rename(tmp, name(len(done)))
        done.append(name(len(done)))
    except BaseException:
        if out is not None:
            out.close()
            fileio.remove(tmp)
        for path in done:
            fileio.remove(path)
        raise
    file_read = {"counts": {"files": 1}, "bad_files": []}
    return [
        Piece(task.group, task.position, task.path, i, fmt, path, file_read if i == 0 else None)
        for i, path in enumerate(done)
    ]


def parse_piece(piece: Piece, config: BuildConfig, work: str) -> tuple[int, ParsedPiece]:
    """Stage 2: a raw piece -> its documents as JSON lines (keyed by file position)."""
    folder = _file_dir(work, piece.position)
    meta = _piece_meta(folder, piece.index)
    if fileio.exists(meta):
        return piece.position, ParsedPiece(**fileio.read_json(meta))
    if piece.raw is None:
        raise FileNotFoundError(f"{meta}: missing; stage 1 writes it for a file parsed whole")
    start, read, failed = time.time(), corpus.ReadStats(), None
    if piece.read:
        read.add(piece.read)
    out = _DocsWriter(folder, f"piece-{piece.index:05d}", 0)
    try:
        with fileio.open_file(piece.raw, "rb") as f:
            for doc in corpus.read_piece(f, piece.fmt, read, config.min_line_chars):
                out.write(doc)
    except corpus.READ_ERRORS as e:
        failed = f"{type(e).__name__}: {e}"
    ((docs, n, size),) = out.close()
    seconds = round(time.time() - start, 3)
    parsed = ParsedPiece(
        piece.group,
        piece.position,
        piece.path,
        piece.index,
        docs,
        n,
        read.to_dict(),
        failed,
        seconds,
        size,
    )
    _write_json(meta, dataclasses.asdict(parsed))
    fileio.remove(piece.raw)
    return piece.position, parsed
