"""In-graph text preprocessing shared by fine-tuning input pipelines and the serving SavedModels,
so that training and serving tokenize identically.

`TextEncoder` is `bioalbert_tf.tokenization.Tokenizer` in TensorFlow ops (tensorflow-text's
SentencePiece): ALBERT's normalisation (whitespace collapsed, ``/'' -> ", NFKD, combining marks
dropped, lowercase) then SentencePiece ids. A test checks the two give the same ids on real text.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_text as tf_text

from bioalbert_tf.tokenization import CLS_ID, PAD_ID, SEP_ID

# Python's str.split() whitespace: ASCII spaces, Unicode separators, and \x1c-\x1f, \x85
_WHITESPACE = r"[\s\p{Z}\x{1c}-\x{1f}\x{85}]+"
# Raw text -> words for NER: runs of letters/digits, or single other characters.
WORD_PATTERN = r"[\s\p{Z}]+|[^\p{L}\p{N}\s\p{Z}]"
WORD_KEEP = r"[^\p{L}\p{N}\s\p{Z}]"


def gather_or(values, index, valid, fill):
    """tf.gather(values, index) where `valid`, else `fill`, with no index read where it is not
    valid: values may be empty (a batch in which no text has a token), and a gather of any index
    from an empty tensor fails even where tf.where would discard it."""
    fill = tf.broadcast_to(tf.cast(fill, values.dtype), tf.shape(values)[1:])[None]
    padded = tf.concat([values, fill], 0)
    return tf.gather(padded, tf.where(valid, index, tf.cast(tf.shape(values)[0], index.dtype)))


def same_batch(**inputs):
    """The inputs, checked to have one batch size: an InvalidArgument naming both sizes before
    any kernel sees them (tensorflow-text's trimmers crash the process on mismatched batches)."""
    names = list(inputs)
    first = names[0]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(inputs[name])[0],
            tf.shape(inputs[first])[0],
            message=f"{name} and {first} must have the same batch size",
        )
        for name in names[1:]
    ]
    with tf.control_dependencies(checks):
        return [tf.identity(inputs[name]) for name in names]


def without_nul(text):
    """NUL bytes as spaces (same length, so byte offsets hold): some of tensorflow-text's ops read
    strings as C strings and would silently drop everything after a NUL."""
    return tf.strings.regex_replace(text, r"\x00", " ")


class TextEncoder(tf.Module):
    def __init__(self, spm_model: bytes, do_lower_case: bool = True, name: str = "text_encoder"):
        super().__init__(name=name)
        self.do_lower_case = do_lower_case
        self.spm_model = tf.Variable(spm_model, dtype=tf.string, trainable=False, name="spm_model")
        self.tokenizer = tf_text.SentencepieceTokenizer(model=spm_model, out_type=tf.int32)

    def normalize(self, text):
        text = without_nul(text)
        text = tf.strings.strip(tf.strings.regex_replace(text, _WHITESPACE, " "))
        text = tf.strings.regex_replace(text, "``|''", '"')
        text = tf_text.normalize_utf8(text, "NFKD")
        text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        return tf.strings.lower(text, encoding="utf-8") if self.do_lower_case else text

    def tokenize(self, text):
        """[batch] strings -> ragged [batch, pieces] int32 ids."""
        return self.tokenizer.tokenize(self.normalize(text))


def pack(segments, max_len: int):
    """[CLS] a [SEP] (b [SEP]) from ragged id segments, trimmed to max_len like BERT's
    longest-first truncation; returns dense input_ids, input_mask, segment_ids [batch, max_len]."""
    budget = max_len - 1 - len(segments)
    trimmed = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(list(segments))
    ids, segs = tf_text.combine_segments(
        trimmed, start_of_sequence_id=CLS_ID, end_of_segment_id=SEP_ID
    )
    input_ids, mask = tf_text.pad_model_inputs(ids, max_seq_length=max_len, pad_value=PAD_ID)
    segment_ids, _ = tf_text.pad_model_inputs(segs, max_seq_length=max_len, pad_value=0)
    return {"input_ids": input_ids, "input_mask": mask, "segment_ids": segment_ids}


def word_pieces(encoder: TextEncoder, words):
    """Ragged [batch, words] strings -> (ragged [batch, pieces] ids, ragged [batch, words] index of
    each word's first piece, or -1 for a word that has no piece)."""
    flat = encoder.tokenize(words.flat_values)  # [all words, pieces]
    per_word = words.with_flat_values(flat)  # [batch, words, pieces]
    pieces = per_word.merge_dims(1, 2)  # [batch, pieces]
    counts = flat.row_lengths()  # pieces per word
    word_rows = words.value_rowids()
    # first piece of each word, relative to its example's start
    starts_global = tf.cumsum(counts, exclusive=True)
    example_start = tf.gather(tf.cumsum(pieces.row_lengths(), exclusive=True), word_rows)
    first = tf.where(counts > 0, starts_global - example_start, -1)
    return pieces, words.with_flat_values(tf.cast(first, tf.int32))


def windows(pieces, max_len: int, stride: int, labels=None):
    """Overlapping windows over long examples: ragged [batch, n] ids -> dict of [windows, max_len]
    inputs, `example` [windows] (which example), `start` [windows] (offset of the window's first
    piece in its example), `length` [windows] (pieces in it) and, given ragged [batch, n] piece
    labels, `labels` [windows, max_len] aligned with the inputs (-1 at [CLS], [SEP], padding)."""
    width = max_len - 2
    n = tf.cast(pieces.row_lengths(), tf.int32)
    count = 1 + tf.maximum(0, (n - width + stride - 1) // stride)
    example = tf.repeat(tf.range(tf.shape(n)[0]), count)
    index = tf.ragged.range(count).flat_values
    start = index * stride
    offsets = start[:, None] + tf.range(width)[None, :]  # [windows, width]
    valid = offsets < tf.gather(n, example)[:, None]
    flat_index = tf.cast(tf.gather(pieces.row_starts(), example), tf.int32)[:, None] + offsets
    flat_index = tf.where(valid, flat_index, 0)
    length = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    values = gather_or(pieces.flat_values, flat_index, valid, PAD_ID)
    inputs = pack([tf.RaggedTensor.from_tensor(values, lengths=length)], max_len)
    out = {"inputs": inputs, "example": example, "start": start, "length": length}
    if labels is not None:
        body = gather_or(labels.flat_values, flat_index, valid, -1)
        minus = -tf.ones_like(body[:, :1])
        padded = tf.concat([minus, body, minus], axis=1)  # [CLS] body [SEP]
        out["labels"] = padded
    return out


def merge_windows(logits, example, start, length, pieces_per_example):  # noqa: D401
    """Window logits [windows, max_len, C] -> per-piece logits ragged [batch, n, C], taking each
    piece from the window where it has the most context on both sides (BERT's max-context rule)."""
    width = tf.shape(logits)[1] - 2
    body = logits[:, 1 : 1 + width]  # drop [CLS]
    offsets = tf.range(width)[None, :]
    valid = offsets < length[:, None]
    context = tf.minimum(offsets, length[:, None] - 1 - offsets)
    score = tf.cast(context, tf.float32) * 1000.0 - tf.cast(start, tf.float32)[:, None] * 1e-3
    row_starts = tf.cumsum(pieces_per_example, exclusive=True)
    position = (
        tf.gather(row_starts, example)[:, None] + start[:, None] + offsets
    )  # global piece index
    total = tf.reduce_sum(pieces_per_example)
    pos_v, score_v = tf.boolean_mask(position, valid), tf.boolean_mask(score, valid)
    logit_v = tf.boolean_mask(body, valid)
    best = tf.math.unsorted_segment_max(score_v, pos_v, total)
    keep = tf.equal(score_v, tf.gather(best, pos_v))
    merged = tf.scatter_nd(
        tf.boolean_mask(pos_v, keep)[:, None],
        tf.boolean_mask(logit_v, keep),
        tf.stack([total, tf.shape(logits)[2]]),
    )
    return tf.RaggedTensor.from_row_lengths(merged, pieces_per_example)
