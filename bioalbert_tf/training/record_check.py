"""Checks TFRecord files before training reads them: every record's framing and both CRCs.

TensorFlow finds a damaged record only when it reaches it, with an error that names neither the
file nor the offset (a shard cut short trains until the reader gets there, and every resume dies
at the same place). `check_files` reads each file once, streaming (local or gs://, plain or
GZIP), and raises RecordError naming the file, the byte offset of the bad record and what is
wrong with it.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterable

import crc32c
from absl import logging

from bioalbert_tf import fileio

BLOCK = 8 << 20  # bytes read at a time
_HEADER = 12  # uint64 length + uint32 masked CRC of the length


class RecordError(ValueError):
    """A TFRecord file that TensorFlow could not read to its end."""


def masked_crc(data) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _blocks(path: str, compression: str) -> Iterable[bytes]:
    with fileio.open_file(path, "rb") as f:
        inflate = zlib.decompressobj(wbits=31) if compression == "GZIP" else None
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            if inflate is None:
                yield block
                continue
            try:
                yield inflate.decompress(block)
                while inflate.eof and inflate.unused_data:  # concatenated gzip members
                    rest = inflate.unused_data
                    inflate = zlib.decompressobj(wbits=31)
                    yield inflate.decompress(rest)
            except zlib.error as e:
                raise RecordError(f"{path}: not a readable GZIP file ({e})") from None
        if inflate is not None and not inflate.eof:
            raise RecordError(f"{path}: the GZIP stream ends early (the file is truncated)")


def check_file(path: str, compression: str = "") -> int:
    """The number of records of a TFRecord file whose every record is whole and matches both of
    its CRCs; RecordError (file, byte offset in the uncompressed stream, what) otherwise."""
    buf = bytearray()
    pos = 0  # start of the next record within buf
    offset = 0  # stream offset of buf[0]
    records = 0
    for block in _blocks(path, compression):
        buf += block
        while True:
            if len(buf) - pos < _HEADER:
                break
            (length,) = struct.unpack_from("<Q", buf, pos)
            (length_crc,) = struct.unpack_from("<I", buf, pos + 8)
            if masked_crc(memoryview(buf)[pos : pos + 8]) != length_crc:
                what = (
                    "is not a TFRecord file (its first record's length check fails)"
                    if records == 0 and offset + pos == 0
                    else f"record {records + 1} at byte {offset + pos}: the length field is "
                    "corrupted (CRC mismatch)"
                )
                raise RecordError(f"{path}: {what}")
            end = pos + _HEADER + length + 4
            if len(buf) < end:
                break
            (data_crc,) = struct.unpack_from("<I", buf, end - 4)
            if masked_crc(memoryview(buf)[pos + _HEADER : end - 4]) != data_crc:
                raise RecordError(
                    f"{path}: record {records + 1} at byte {offset + pos}: its data is corrupted "
                    "(CRC mismatch)"
                )
            records += 1
            pos = end
        del buf[:pos]
        offset += pos
        pos = 0
    if buf:
        raise RecordError(
            f"{path}: the file ends inside record {records + 1} (at byte {offset}, "
            f"{len(buf)} of its bytes present): it is truncated; {records} whole records before it"
        )
    return records


def check_files(files: list[str], compression: str = "", flag: str = "--input_file") -> int:
    """check_file on every file; returns the records in all, logging the time it took."""
    start, total = time.perf_counter(), 0
    for path in files:
        total += check_file(path, compression)
    logging.info(
        "%s: %d records in %d file(s) checked (framing and CRCs) in %.1f s",
        flag,
        total,
        len(files),
        time.perf_counter() - start,
    )
    return total
