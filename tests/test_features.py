"""Our hand-serialized Examples against TensorFlow's own protobuf and parser."""

import numpy as np
import pytest

from bioalbert_tf import features
from tfrecords_builder import writer

tf = pytest.importorskip("tensorflow")


def _tf_example(values, specs):
    feats = {}
    for s in specs:
        v = values[s.name]
        if s.dtype == features.INT64:
            feats[s.name] = tf.train.Feature(
                int64_list=tf.train.Int64List(value=[int(x) for x in v])
            )
        else:
            feats[s.name] = tf.train.Feature(
                float_list=tf.train.FloatList(value=[float(x) for x in v])
            )
    return tf.train.Example(features=tf.train.Features(feature=feats))


@pytest.mark.parametrize(
    "values", [[0], [1, 127, 128, 255, 300, 16383, 16384, 29999, 2**21, 2**35 + 7, 2**62]]
)
def test_varints_match_protobuf(values):
    ours = writer.encode_varints(np.array(values))
    msg = tf.train.Int64List(value=values).SerializeToString()  # tag 0x0A, length, packed varints
    assert msg[0] == 0x0A and msg.endswith(ours)
    assert len(msg) - len(ours) in (2, 3)


def test_encoder_bytes_parse_like_tensorflow_built_example():
    seq, pred, vocab = 16, 4, 30000
    specs = features.pretraining_features(seq, pred)
    enc = writer.PretrainingExampleEncoder(specs, vocab)
    ids = [2, 29999, 4, 17, 3, 300, 128, 3]
    blob = enc.encode(ids, 3, bytes([1, 1, 0, 1, 1, 1, 0, 1]), [2, 6], [45, 128], 1)
    parsed = tf.train.Example.FromString(blob)
    expected_values = {
        "input_ids": ids + [0] * 8,
        "input_mask": [1] * 8 + [0] * 8,
        "segment_ids": [0] * 5 + [1] * 3 + [0] * 8,
        "token_boundary": [1, 1, 0, 1, 1, 1, 0, 1] + [0] * 8,
        "masked_lm_positions": [2, 6, 0, 0],
        "masked_lm_ids": [45, 128, 0, 0],
        "masked_lm_weights": [1.0, 1.0, 0.0, 0.0],
        "next_sentence_labels": [1],
    }
    assert parsed == _tf_example(expected_values, specs)
    out = features.parse_pretraining_examples(tf.constant(blob), seq, pred)
    assert set(out) == {s.name for s in specs}
    for s in specs:
        want_dtype = tf.float32 if s.dtype == features.FLOAT32 else tf.int32
        assert out[s.name].dtype == want_dtype and out[s.name].shape == (s.length,)
        np.testing.assert_array_equal(out[s.name].numpy(), expected_values[s.name])


def test_schema_is_the_reference_one():
    specs = features.pretraining_features(512, 20)
    assert [(s.name, s.length, s.dtype) for s in specs] == [
        ("input_ids", 512, "int64"),
        ("input_mask", 512, "int64"),
        ("segment_ids", 512, "int64"),
        ("token_boundary", 512, "int64"),
        ("masked_lm_positions", 20, "int64"),
        ("masked_lm_ids", 20, "int64"),
        ("masked_lm_weights", 20, "float32"),
        ("next_sentence_labels", 1, "int64"),
    ]


def test_encoder_rejects_oversized_instances():
    enc = writer.PretrainingExampleEncoder(features.pretraining_features(8, 2), 100)
    with pytest.raises(ValueError, match="9 tokens, max_seq_length is 8"):
        enc.encode([2] + [5] * 6 + [3, 3], 3, bytes(9), [], [], 0)
    with pytest.raises(ValueError, match="3 predictions"):
        enc.encode([2, 5, 3, 5, 3], 1, bytes(5), [1, 2, 3], [5, 5, 5], 0)


def test_tfrecord_framing_reads_back(tmp_path):
    path = str(tmp_path / "x.tfrecord")
    w = writer.AtomicTFRecordWriter(path)
    records = [b"", b"a", bytes(range(256)) * 40]
    for r in records:
        w.write(r)
    assert not (tmp_path / "x.tfrecord").exists()  # only the temporary name until commit
    w.commit()
    assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == records


def test_gzip_tfrecords_read_back_and_are_deterministic(tmp_path):
    blobs = []
    for name in ("a.tfrecord", "b.tfrecord"):
        w = writer.AtomicTFRecordWriter(str(tmp_path / name), "GZIP")
        w.write(b"hello")
        w.commit()
        blobs.append((tmp_path / name).read_bytes())
    assert blobs[0] == blobs[1]
    ds = tf.data.TFRecordDataset(str(tmp_path / "a.tfrecord"), compression_type="GZIP")
    assert [r.numpy() for r in ds] == [b"hello"]


@pytest.mark.parametrize("compression", ["", "GZIP"])
def test_appending_whole_files_of_frames_gives_the_bytes_of_writing_each_record(
    tmp_path, compression, monkeypatch
):
    """A one-shard group appends its chunk files in blocks (copy_frames): the shard's bytes are
    those of writing the same records one by one, also compressed, whatever the block size."""
    monkeypatch.setattr(writer, "COPY_BLOCK", 1000)  # blocks that cut frames in the middle
    rng = np.random.default_rng(0)
    chunks = [[rng.bytes(int(n)) for n in rng.integers(0, 3000, k)] for k in (5, 0, 7)]
    files = []
    for i, records in enumerate(chunks):
        w = writer.AtomicTFRecordWriter(str(tmp_path / f"chunk-{i}.tfrecord"))
        for r in records:
            w.write(r)
        w.commit()
        files.append(w.path)
    one_by_one = writer.AtomicTFRecordWriter(str(tmp_path / "a.tfrecord"), compression)
    appended = writer.AtomicTFRecordWriter(str(tmp_path / "b.tfrecord"), compression)
    for path, records in zip(files, chunks, strict=True):
        for r in records:
            one_by_one.write(r)
        appended.copy_frames(path, len(records))
    one_by_one.commit()
    appended.commit()
    assert appended.records == one_by_one.records == 12
    assert (tmp_path / "b.tfrecord").read_bytes() == (tmp_path / "a.tfrecord").read_bytes()
    ds = tf.data.TFRecordDataset(str(tmp_path / "b.tfrecord"), compression_type=compression)
    assert [r.numpy() for r in ds] == [r for records in chunks for r in records]


def test_abort_leaves_nothing(tmp_path):
    w = writer.AtomicTFRecordWriter(str(tmp_path / "x.tfrecord"))
    w.write(b"partial")
    w.abort()
    assert list(tmp_path.iterdir()) == []
