"""The one TFRecord schema for ALBERT pretraining examples.

Feature names, dtypes and lengths are those of google-research/albert's
create_pretraining_data.py, so files written here are read by the original run_pretraining.py
and files written there are read here. The builder, the pretraining input pipeline, exports and
tests import these names; nothing else spells them.
"""

from __future__ import annotations

import dataclasses

# Feature names in the order the builder serialises them.
INPUT_IDS = "input_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
TOKEN_BOUNDARY = "token_boundary"
MASKED_LM_POSITIONS = "masked_lm_positions"
MASKED_LM_IDS = "masked_lm_ids"
MASKED_LM_WEIGHTS = "masked_lm_weights"
# Holds the sentence-order (SOP) label: 1 = segments swapped or B from another document.
# The BERT-era name is kept on purpose, as the original ALBERT code does.
NEXT_SENTENCE_LABELS = "next_sentence_labels"

INT64 = "int64"
FLOAT32 = "float32"


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One fixed-length feature of a tf.train.Example."""

    name: str
    length: int
    dtype: str  # INT64 or FLOAT32


def pretraining_features(max_seq_length: int, max_predictions_per_seq: int) -> list[FeatureSpec]:
    """The pretraining schema, in serialisation order."""
    if max_seq_length < 4:
        raise ValueError(
            f"max_seq_length must be >= 4 ([CLS] A [SEP] B [SEP]), got {max_seq_length}"
        )
    if max_predictions_per_seq < 1:
        raise ValueError(f"max_predictions_per_seq must be >= 1, got {max_predictions_per_seq}")
    seq, pred = max_seq_length, max_predictions_per_seq
    return [
        FeatureSpec(INPUT_IDS, seq, INT64),
        FeatureSpec(INPUT_MASK, seq, INT64),
        FeatureSpec(SEGMENT_IDS, seq, INT64),
        FeatureSpec(TOKEN_BOUNDARY, seq, INT64),
        FeatureSpec(MASKED_LM_POSITIONS, pred, INT64),
        FeatureSpec(MASKED_LM_IDS, pred, INT64),
        FeatureSpec(MASKED_LM_WEIGHTS, pred, FLOAT32),
        FeatureSpec(NEXT_SENTENCE_LABELS, 1, INT64),
    ]


def parsing_spec(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """`tf.io.parse_example` spec: {name: tf.io.FixedLenFeature([length], dtype)}."""
    import tensorflow as tf  # local import: the builder never needs TensorFlow

    dtypes = {INT64: tf.int64, FLOAT32: tf.float32}
    return {
        f.name: tf.io.FixedLenFeature([f.length], dtypes[f.dtype])
        for f in pretraining_features(max_seq_length, max_predictions_per_seq)
    }


def parse_pretraining_examples(serialized, max_seq_length: int, max_predictions_per_seq: int):
    """Parses a batch (or one) of serialized Examples; int64 features become int32 (as TPUs
    need)."""
    import tensorflow as tf

    spec = parsing_spec(max_seq_length, max_predictions_per_seq)
    if serialized.shape.rank == 0:
        parsed = tf.io.parse_single_example(serialized, spec)
    else:
        parsed = tf.io.parse_example(serialized, spec)
    return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in parsed.items()}
