"""record_check against TensorFlow's own reader: files it reads whole are accepted with the same
record count; files it fails on (cut short, a flipped byte in a length or in data, not TFRecords
at all) are refused, naming the file and the byte offset; so is a cut GZIP stream, which
TensorFlow reads silently up to its last whole record."""

from __future__ import annotations

import gzip
import pathlib

import pytest

from bioalbert_tf.training import record_check
from tfrecords_builder.writer import tfrecord_frame

tf = pytest.importorskip("tensorflow")


def _write(path: pathlib.Path, n: int = 50) -> list[int]:
    """n records of growing size; returns each record's byte offset."""
    offsets, data = [], b""
    for k in range(n):
        offsets.append(len(data))
        data += tfrecord_frame(bytes([k % 256]) * (100 + 37 * k))
    path.write_bytes(data)
    return offsets


def _tf_count(path: pathlib.Path, compression: str = "") -> int | str:
    """TensorFlow's record count, or the name of the error it stops with."""
    try:
        return sum(1 for _ in tf.data.TFRecordDataset(str(path), compression_type=compression))
    except tf.errors.OpError as e:
        return type(e).__name__


def test_whole_files_are_counted_as_tensorflow_counts_them(tmp_path):
    plain = tmp_path / "a.tfrecord"
    _write(plain)
    assert record_check.check_file(str(plain)) == _tf_count(plain) == 50
    packed = tmp_path / "a.tfrecord.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert record_check.check_file(str(packed), "GZIP") == _tf_count(packed, "GZIP") == 50
    empty = tmp_path / "empty.tfrecord"
    empty.write_bytes(b"")
    assert record_check.check_file(str(empty)) == _tf_count(empty) == 0
    assert record_check.check_files([str(plain), str(empty)]) == 50


def test_damaged_files_are_refused_where_tensorflow_fails(tmp_path):
    path = tmp_path / "a.tfrecord"
    offsets = _write(path)
    data = path.read_bytes()
    o = offsets
    cases = {
        "cut": (
            data[: o[30] + 20],
            rf"the file ends inside record 31 \(at byte {o[30]}, 20 of its bytes present\): it "
            r"is truncated; 30 whole records before it",
        ),
        "length": (
            data[: o[7] + 3] + b"\xff" + data[o[7] + 4 :],
            rf"record 8 at byte {o[7]}: the length field is corrupted",
        ),
        "data": (
            data[: o[12] + 40] + b"\x00" + data[o[12] + 41 :],
            rf"record 13 at byte {o[12]}: its data is corrupted \(CRC mismatch\)",
        ),
        "text": (b"this is a text file, not TFRecords\n" * 10, r"is not a TFRecord file"),
    }
    for name, (content, message) in cases.items():
        bad = tmp_path / f"{name}.tfrecord"
        bad.write_bytes(content)
        assert isinstance(_tf_count(bad), str), name  # TensorFlow's reader fails on it
        with pytest.raises(record_check.RecordError, match=rf"^{bad}: {message}"):
            record_check.check_file(str(bad))
    cut = tmp_path / "cut.tfrecord.gz"
    cut.write_bytes(gzip.compress(data)[:-40])
    # TensorFlow reads a cut GZIP stream without a word, up to the last whole record it holds.
    assert _tf_count(cut, "GZIP") < 50
    with pytest.raises(record_check.RecordError, match=rf"^{cut}: the GZIP stream ends early"):
        record_check.check_file(str(cut), "GZIP")
