"""Baseline for `make bench`: the reference create_pretraining_data.py's way of working.

Reads the whole plain-text corpus into memory, tokenizes sentence by sentence in Python
(`encode_as_pieces` then a piece -> id lookup, as FullTokenizer does), shuffles documents,
creates instances and masks with the reference algorithms (tests/reference_albert.py, including
its numpy draw of n per candidate and its per-token `_is_start_piece`), builds tf.train.Example
protos and writes them with tf.io.TFRecordWriter. It leaves out the reference's Python-level
`encode_pieces` post-processing, so it is faster than the reference itself. Run as a separate
process so its peak RSS can be read.

  python -m bench.reference_style_builder TEXT_FILE SPM_MODEL OUTPUT
"""

from __future__ import annotations

import collections
import json
import random
import resource
import sys
import time

import numpy as np


def main(
    text_file: str,
    spm_model: str,
    output: str,
    max_seq_length: int = 512,
    max_predictions: int = 20,
) -> None:
    import tensorflow as tf

    from bioalbert_tf.tokenization import is_start_piece, load_sentencepiece, preprocess_text
    from tests import reference_albert as ref

    start = time.time()
    sp = load_sentencepiece(spm_model)
    pieces_by_id = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]

    class ReferenceStartPiece:
        """The reference recomputes `_is_start_piece_sp` (sets built per call) for every token."""

        def __getitem__(self, token_id):
            return ref.is_start_piece_sp(pieces_by_id[token_id])

    is_start = ReferenceStartPiece()
    assert all(is_start[i] == is_start_piece(p) for i, p in enumerate(pieces_by_id))
    documents = [[]]
    with open(text_file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                documents.append([])
                continue
            pieces = sp.encode_as_pieces(preprocess_text(line))
            if pieces:  # FullTokenizer: pieces, then one PieceToId call per piece
                documents[-1].append([sp.piece_to_id(p) for p in pieces])
    documents = [d for d in documents if d]
    rng = random.Random(12345)
    rng.shuffle(documents)
    ngrams = np.arange(1, 4)

    def choose_n(pvals):
        return int(np.random.choice(ngrams, p=pvals))

    instances = []
    for d in range(len(documents)):
        instances.extend(ref.create_instances_from_document(documents, d, max_seq_length, 0.1, rng))
    rng.shuffle(instances)
    writer = tf.io.TFRecordWriter(output)
    for tokens, segment_ids, is_random_next in instances:
        out, pos, labels, boundary, _ = ref.reference_masked_lm(
            tokens, is_start, 0.15, max_predictions, sp.get_piece_size(), rng, choose_n=choose_n
        )
        pad = max_seq_length - len(out)
        k = len(pos)
        feats = collections.OrderedDict()

        def ints(v):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))

        feats["input_ids"] = ints(out + [0] * pad)
        feats["input_mask"] = ints([1] * len(out) + [0] * pad)
        feats["segment_ids"] = ints(segment_ids + [0] * pad)
        feats["token_boundary"] = ints(boundary + [0] * pad)
        feats["masked_lm_positions"] = ints(pos + [0] * (max_predictions - k))
        feats["masked_lm_ids"] = ints(labels + [0] * (max_predictions - k))
        feats["masked_lm_weights"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=[1.0] * k + [0.0] * (max_predictions - k))
        )
        feats["next_sentence_labels"] = ints([int(is_random_next)])
        example = tf.train.Example(features=tf.train.Features(feature=feats))
        writer.write(example.SerializeToString())
    writer.close()
    seconds = time.time() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"examples": len(instances), "seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb)}
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
