"""research.fill_mask_signals: counting the records' training signals for a fill-mask answer."""

import numpy as np

from bioalbert_tf import features
from research import fill_mask_signals as signals
from tfrecords_builder.writer import PretrainingExampleEncoder

TYPE, TWO, DIABETES, WITH = 10, 11, 12, 13
CLS, SEP, MASK = 2, 3, 4


def test_counts_the_answer_after_its_context_only_when_masked_with_the_context_visible():
    probe = signals.Probe("type 2 [MASK]", DIABETES, (TYPE, TWO))
    original = np.array(
        [
            [CLS, TYPE, TWO, DIABETES, SEP, 0],  # masked, context visible: a signal
            [CLS, TYPE, TWO, DIABETES, SEP, 0],  # masked, but "2" masked too
            [CLS, WITH, TWO, DIABETES, SEP, 0],  # another context
            [CLS, TYPE, TWO, DIABETES, DIABETES, SEP],  # in context, not masked; 2nd not after it
            [DIABETES, TYPE, TWO, WITH, TYPE, TWO],  # no answer after the context
        ]
    )
    masked = np.zeros(original.shape, bool)
    masked[0, 3] = masked[1, 2] = masked[1, 3] = masked[2, 3] = masked[3, 4] = masked[4, 0] = True
    got = signals.count(original, masked, probe)
    assert vars(got) == {"anywhere": 6, "masked": 5, "in_context": 3, "masked_in_context": 1}
    # one piece of context: any "2" before the answer counts
    got = signals.count(original, masked, signals.Probe("2 [MASK]", DIABETES, (TWO,)))
    assert vars(got) == {"anywhere": 6, "masked": 5, "in_context": 4, "masked_in_context": 2}


def test_reads_the_ids_before_masking_back_from_the_builders_records(tmp_path):
    import tensorflow as tf

    seq, pred = 8, 2
    encoder = PretrainingExampleEncoder(features.pretraining_features(seq, pred), vocab_size=20)
    rows = [  # (ids before masking, masked positions, ids after masking)
        ([CLS, TYPE, TWO, DIABETES, SEP, WITH, SEP], [3], [CLS, TYPE, TWO, MASK, SEP, WITH, SEP]),
        ([CLS, WITH, SEP, TYPE, SEP], [1, 3], [CLS, MASK, SEP, 17, SEP]),  # 17: a random swap
        ([CLS, TWO, SEP, TWO, SEP], [], [CLS, TWO, SEP, TWO, SEP]),
    ]
    path = str(tmp_path / "r.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for before, positions, after in rows:
            labels = [before[p] for p in positions]
            writer.write(encoder.encode(after, 1, bytes(len(after)), positions, labels, 0))
    (original, masked), *rest = list(signals.read_records([path], seq, pred))
    assert not rest
    for row, (before, positions, _) in enumerate(rows):
        assert original[row].tolist() == before + [0] * (seq - len(before))
        assert np.flatnonzero(masked[row]).tolist() == positions
