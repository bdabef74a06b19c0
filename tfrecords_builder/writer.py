"""Instances -> serialized tf.train.Example -> TFRecord files, without importing TensorFlow.

The Example bytes are produced directly in protobuf wire format (packed varints for int64
lists, little-endian floats for float lists), in the schema order of
`bioalbert_tf.features.pretraining_features`; TensorFlow parses them like any other Example and
the output is byte-identical from run to run. Records are framed as TFRecord
(length, masked CRC32C of the length, data, masked CRC32C of the data). Files are written under
a temporary name and renamed when complete, so a killed run never leaves a partial shard.
"""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np

from bioalbert_tf import features, fileio
from bioalbert_tf.training.record_check import masked_crc

COPY_BLOCK = 8 << 20  # bytes per read when a whole file of frames is appended


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_varints(values: np.ndarray) -> bytes:
    """Packed protobuf varints of non-negative integers (vectorised)."""
    a = np.asarray(values)
    if a.size == 0:
        return b""
    if a.min() < 0:
        raise ValueError("encode_varints: negative values are not used by the pretraining schema")
    a = a.astype(np.uint64)
    top = int(a.max())
    if top < 0x80:
        return a.astype(np.uint8).tobytes()
    width = (top.bit_length() + 6) // 7
    groups = np.empty((a.size, width), dtype=np.uint8)
    need = np.ones(a.size, dtype=np.int64)  # bytes each value needs
    for k in range(width):
        groups[:, k] = ((a >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        if k:
            need += a >= np.uint64(1 << (7 * k))
    cols = np.arange(width)[None, :]
    groups |= (cols < need[:, None] - 1).astype(np.uint8) << 7  # continuation bits
    return groups[cols < need[:, None]].tobytes()


_SMALL_VARINTS = [_varint(i) for i in range(1 << 14)]  # lengths and ids below 16384: a lookup


def _len_delimited(field_tag: int, payload: bytes) -> bytes:
    n = len(payload)
    return bytes((field_tag,)) + (_SMALL_VARINTS[n] if n < 16384 else _varint(n)) + payload


_TAG1, _TAG2, _TAG3 = 0x0A, 0x12, 0x1A  # field 1/2/3, wire type 2 (length-delimited)


def _feature(dtype: str, values: np.ndarray) -> bytes:
    if dtype == features.INT64:
        inner = _len_delimited(_TAG1, encode_varints(values))  # Int64List.value, packed
        return _len_delimited(_TAG3, inner)  # Feature.int64_list
    inner = _len_delimited(
        _TAG1, np.asarray(values, dtype="<f4").tobytes()
    )  # FloatList.value, packed
    return _len_delimited(_TAG2, inner)  # Feature.float_list


def serialize_example(values: dict[str, np.ndarray], specs: list[features.FeatureSpec]) -> bytes:
    """A tf.train.Example with one fixed-length feature per spec, in spec order."""
    entries = []
    for spec in specs:
        v = values[spec.name]
        if len(v) != spec.length:
            raise ValueError(f"feature {spec.name}: expected length {spec.length}, got {len(v)}")
        key = spec.name.encode("utf-8")
        entry = _len_delimited(_TAG1, key) + _len_delimited(_TAG2, _feature(spec.dtype, v))
        entries.append(_len_delimited(_TAG1, entry))  # Features.feature map entry
    return _len_delimited(_TAG1, b"".join(entries))  # Example.features


class PretrainingExampleEncoder:
    """Serializes masked instances as the reference pads them, fast (~10x `serialize_example`).

    The schema is fixed-length and most features are 0/1 flags, so each feature's payload is
    built from bytes directly; ids go through a table of precomputed varints.
    """

    def __init__(self, specs: list[features.FeatureSpec], vocab_size: int):
        self.specs = specs
        lengths = {s.name: s.length for s in specs}
        self.seq = lengths[features.INPUT_IDS]
        self.pred = lengths[features.MASKED_LM_IDS]
        if [s.name for s in specs] != [
            s.name for s in features.pretraining_features(self.seq, self.pred)
        ]:
            raise ValueError(
                "PretrainingExampleEncoder needs the pretraining schema of bioalbert_tf.features"
            )
        self._varints = [_varint(i) for i in range(max(vocab_size, self.seq, 2))]
        self._keys = [_len_delimited(_TAG1, s.name.encode()) for s in specs]

    def _ints(self, values, pad: int) -> bytes:
        return b"".join(map(self._varints.__getitem__, values)) + b"\x00" * pad

    def encode(
        self, output_ids, len_a: int, token_boundary: bytes, positions, labels, sop_label: int
    ) -> bytes:
        """output_ids: ids after masking; token_boundary: one 0/1 byte per token."""
        n, seq, pred = len(output_ids), self.seq, self.pred
        if n > seq:
            raise ValueError(f"instance has {n} tokens, max_seq_length is {seq}")
        k = len(positions)
        if k > pred:
            raise ValueError(f"instance has {k} predictions, max_predictions_per_seq is {pred}")
        payloads = [
            self._ints(output_ids, seq - n),  # input_ids
            b"\x01" * n + b"\x00" * (seq - n),  # input_mask
            b"\x00" * (len_a + 2) + b"\x01" * (n - len_a - 2) + b"\x00" * (seq - n),  # segment_ids
            bytes(token_boundary) + b"\x00" * (seq - n),  # token_boundary
            self._ints(positions, pred - k),  # masked_lm_positions
            self._ints(labels, pred - k),  # masked_lm_ids
            struct.pack(f"<{pred}f", *([1.0] * k + [0.0] * (pred - k))),  # masked_lm_weights
            self._varints[sop_label],  # next_sentence_labels
        ]
        entries = []
        for spec, key, payload in zip(self.specs, self._keys, payloads, strict=True):
            tag = _TAG3 if spec.dtype == features.INT64 else _TAG2
            feature = _len_delimited(tag, _len_delimited(_TAG1, payload))
            entries.append(_len_delimited(_TAG1, key + _len_delimited(_TAG2, feature)))
        return _len_delimited(_TAG1, b"".join(entries))


def tfrecord_frame(record: bytes) -> bytes:
    header = struct.pack("<Q", len(record))
    return (
        header
        + struct.pack("<I", masked_crc(header))
        + record
        + struct.pack("<I", masked_crc(record))
    )


def read_frames(path: str):
    """The framed records of an uncompressed TFRecord file, one at a time (CRCs not checked:
    for files this package wrote)."""
    with fileio.open_file(path, "rb") as f:
        while header := f.read(12):
            (n,) = struct.unpack("<Q", header[:8]) if len(header) == 12 else (-1,)
            body = f.read(n + 4) if n >= 0 else b""
            if n < 0 or len(body) != n + 4:
                raise ValueError(f"{path}: truncated TFRecord frame")
            yield header + body


class AtomicTFRecordWriter:
    """Writes `<path>` via a temporary name of its own (`fileio.tmp_path`); `commit()` renames,
    `abort()` removes.

    compression: "" (uncompressed, as the original readers expect) or "GZIP".
    """

    def __init__(self, path: str, compression: str = ""):
        if compression not in ("", "GZIP"):
            raise ValueError(f"compression must be '' or 'GZIP', got {compression!r}")
        self.path = path
        self.tmp_path = fileio.tmp_path(path)
        self._raw = fileio.open_file(self.tmp_path, "wb")
        # mtime=0 and no file name in the gzip header: identical bytes on every run.
        self._out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
            if compression
            else self._raw
        )
        self.records = 0

    def write(self, record: bytes) -> None:
        self._out.write(tfrecord_frame(record))
        self.records += 1

    def write_frame(self, frame: bytes) -> None:
        """A record already framed (`tfrecord_frame`, or one of `read_frames`)."""
        self._out.write(frame)
        self.records += 1

    def copy_frames(self, path: str, records: int) -> None:
        """Appends a whole file of framed records (one this package wrote, with `records`
        records), in large blocks: the bytes of writing its frames one by one."""
        with fileio.open_file(path, "rb") as f:
            shutil.copyfileobj(f, self._out, COPY_BLOCK)
        self.records += records

    def _close(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()

    def commit(self) -> None:
        self._close()
        fileio.rename(self.tmp_path, self.path, overwrite=True)

    def abort(self) -> None:
        try:
            self._close()
        finally:
            fileio.remove(self.tmp_path)
