"""Named entity recognition: token classification on the first sub-piece of each word.

Sentences longer than max_seq_length are cut into overlapping windows (stride half a window)
and merged back, each piece taking the prediction of the window where it has the most context.
Predictions come back as word-level IOB tags (`tag_words`) and, for raw text, as entity spans
with character offsets into the original string (`serving_default`). Words of raw text are runs
of letters/digits or single other characters, as in the CoNLL-style training files.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from bioalbert_tf.tasks import preprocessing as pp
from bioalbert_tf.tasks.base import Task

# Windows per model call at prediction time. Windows are sorted by length and each chunk is
# padded only to its own longest window: a MEDLINE sentence has ~40 pieces, so padding every
# window to max_seq_length (128 or 512) made padding most of the work (bench/serving_bench).
PREDICT_CHUNK = 8


def masked_token_loss(y_true, y_pred):
    """Cross-entropy over positions whose label is >= 0 (first pieces of words)."""
    y_true = tf.cast(y_true, tf.int32)
    mask = tf.cast(y_true >= 0, tf.float32)
    ce = keras.losses.sparse_categorical_crossentropy(
        tf.maximum(y_true, 0), y_pred, from_logits=True
    )
    return tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class NERTask(Task):
    _tag_graph = None  # predict()'s traced tag_words_ragged

    def build_model(self):
        inputs = self.model_inputs()
        seq = keras.layers.Dropout(self.classifier_dropout)(self.encoder(inputs)["sequence_output"])
        logits = self.head(len(self.labels), "token_classifier")(seq)
        return keras.Model(inputs, logits, name=f"{self.spec.name}_tagger")

    @property
    def stride(self) -> int:
        return max(1, (self.max_seq_length - 2) // 2)

    def loss(self):
        return masked_token_loss

    def _piece_labels(self, pieces, first, tag_ids):
        """Ragged [batch, n] piece labels: the word's tag id on its first piece, -1 elsewhere."""
        rows = first.value_rowids()
        starts = tf.gather(pieces.row_starts(), rows)
        keep = first.flat_values >= 0
        index = tf.boolean_mask(tf.cast(starts, tf.int32) + first.flat_values, keep)
        flat = tf.tensor_scatter_nd_update(
            -tf.ones_like(pieces.flat_values),
            index[:, None],
            tf.boolean_mask(tag_ids.flat_values, keep),
        )
        return pieces.with_flat_values(flat)

    def train_dataset(self, sentences, batch_size: int, seed: int):
        index = {t: i for i, t in enumerate(self.labels)}
        words = tf.ragged.constant([s.words for s in sentences])
        tags = tf.ragged.constant(
            [[index.get(t, 0) for t in s.tags] for s in sentences], dtype=tf.int32
        )
        ds = tf.data.Dataset.from_tensor_slices((words, tags))
        ds = ds.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.ragged_batch(batch_size, drop_remainder=True)

        def to_windows(w, t):
            pieces, first = pp.word_pieces(self.text_encoder, w)
            out = pp.windows(
                pieces, self.max_seq_length, self.stride, self._piece_labels(pieces, first, t)
            )
            return out["inputs"], out["labels"]

        # A batch is `batch_size` windows: sentences longer than a window give several, so
        # batches of sentences would vary in size, and XLA compiles the training step again for
        # every new size (at length 32 on NCBI-disease, 300 steps took 3.7x as long).
        ds = ds.map(to_windows, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        return ds.batch(batch_size, drop_remainder=True).prefetch(2)

    def tag_words_ragged(self, words):
        """Ragged [batch, words] strings -> (ragged tag ids,
        ragged [batch, words, labels] probabilities)."""
        pieces, first = pp.word_pieces(self.text_encoder, words)
        win = pp.windows(pieces, self.max_seq_length, self.stride)
        logits = self._window_logits(win["inputs"], win["length"])
        merged = pp.merge_windows(
            logits,
            win["example"],
            win["start"],
            win["length"],
            tf.cast(pieces.row_lengths(), tf.int32),
        )
        probs = tf.nn.softmax(merged.flat_values, axis=-1)  # [all pieces, labels]
        starts = tf.cast(tf.gather(pieces.row_starts(), first.value_rowids()), tf.int32)
        has_piece = first.flat_values >= 0
        outside = tf.one_hot(0, len(self.labels))  # a word without pieces is O
        word_probs = pp.gather_or(probs, starts + first.flat_values, has_piece, outside)
        ids = tf.argmax(word_probs, axis=-1, output_type=tf.int32)
        return first.with_flat_values(ids), first.with_flat_values(word_probs)

    def _window_logits(self, inputs, length):
        """Dense [windows, max_len] inputs, `length` [windows] pieces in each -> logits
        [windows, max_len, labels], computed PREDICT_CHUNK windows at a time in length order, each
        chunk cut to its longest window + [CLS] [SEP]; the logits past it are zeros (not read)."""
        n = tf.shape(length)[0]
        max_len = inputs["input_ids"].shape[1] or tf.shape(inputs["input_ids"])[1]
        order = tf.argsort(length, stable=True)
        by_length = {k: tf.gather(v, order) for k, v in inputs.items()}
        sorted_length = tf.gather(length, order)
        chunks = (n + PREDICT_CHUNK - 1) // PREDICT_CHUNK
        labels = len(self.labels)

        def body(i, out):
            lo = i * PREDICT_CHUNK
            hi = tf.minimum(n, lo + PREDICT_CHUNK)
            width = sorted_length[hi - 1] + 2  # ascending: the chunk's last window is its longest
            logits = self.model({k: v[lo:hi, :width] for k, v in by_length.items()}, training=False)
            return i + 1, out.write(i, tf.pad(logits, [[0, 0], [0, max_len - width], [0, 0]]))

        out = tf.TensorArray(
            tf.float32,
            size=chunks,
            infer_shape=False,
            element_shape=tf.TensorShape([None, inputs["input_ids"].shape[1], labels]),
        )
        _, out = tf.while_loop(lambda i, _: i < chunks, body, [0, out])
        sorted_logits = tf.reshape(out.concat(), [n, max_len, labels])  # [windows, max_len, labels]
        return tf.gather(sorted_logits, tf.math.invert_permutation(order))

    def predict(self, sentences, batch_size: int = 32):
        if self._tag_graph is None:  # one graph for every batch (the serving signature's path)
            self._tag_graph = tf.function(
                lambda words: self.tag_words_ragged(words)[0],
                input_signature=[tf.RaggedTensorSpec([None, None], tf.string, ragged_rank=1)],
            )
        out = []
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i : i + batch_size]
            ids = self._tag_graph(tf.ragged.constant([s.words for s in chunk], dtype=tf.string))
            out.extend([[self.labels[j] for j in row] for row in ids.to_list()])
        return out

    # --- serving -----------------------------------------------------------------------------
    def _tag_words(self, words, num_words):
        words, num_words = pp.same_batch(words=words, num_words=num_words)
        in_range = tf.debugging.assert_less_equal(
            tf.reduce_max(tf.concat([num_words, [0]], 0)),
            tf.shape(words, out_type=tf.int32)[1],
            message="num_words must not exceed the number of word columns",
        )
        positive = tf.debugging.assert_non_negative(num_words, message="num_words must be >= 0")
        with tf.control_dependencies([in_range, positive]):
            num_words = tf.identity(num_words)
        ragged = tf.RaggedTensor.from_tensor(words, lengths=num_words)
        ids, probs = self.tag_words_ragged(ragged)
        tags = ids.with_flat_values(tf.gather(tf.constant(self.labels), ids.flat_values))
        return {
            "tags": tags.to_tensor(default_value=""),
            "tag_probabilities": tf.reduce_max(probs, -1).to_tensor(0.0),
        }

    def _entities(self, text):
        words, begin, end = tf_text.regex_split_with_offsets(
            pp.without_nul(text), pp.WORD_PATTERN, pp.WORD_KEEP
        )
        ids, probs = self.tag_words_ragged(words)
        tags = tf.gather(tf.constant(self.labels), ids.flat_values)
        kind = tf.strings.regex_replace(tags, r"^[BIES]-?", "")
        is_b = tf.strings.regex_full_match(tags, r"[BS](-.*)?")
        inside = tf.logical_not(tf.equal(tags, "O"))
        rows = ids.value_rowids()
        first_in_row = tf.equal(
            tf.range(tf.size(rows, out_type=tf.int64)), tf.gather(ids.row_starts(), rows)
        )
        # The previous word's values (shifted by one; as long as `inside`, even when empty).
        prev_inside = tf.concat([[False], inside], 0)[:-1] & ~first_in_row
        prev_kind = tf.concat([[""], kind], 0)[:-1]
        begins = inside & (is_b | ~prev_inside | tf.not_equal(prev_kind, kind))
        entity = tf.cumsum(tf.cast(begins, tf.int32)) - 1
        sel = inside
        n_ent = tf.reduce_sum(tf.cast(begins, tf.int32))
        seg = tf.boolean_mask(entity, sel)
        b_bytes = tf.math.unsorted_segment_min(
            tf.cast(tf.boolean_mask(begin.flat_values, sel), tf.int32), seg, n_ent
        )
        e_bytes = tf.math.unsorted_segment_max(
            tf.cast(tf.boolean_mask(end.flat_values, sel), tf.int32), seg, n_ent
        )
        score = tf.math.unsorted_segment_min(
            tf.boolean_mask(tf.reduce_max(probs.flat_values, -1), sel), seg, n_ent
        )
        e_rows = tf.boolean_mask(rows, begins)
        e_kind = tf.boolean_mask(kind, begins)
        row_text = tf.gather(text, e_rows)

        def to_chars(b):
            return tf.strings.length(
                tf.strings.substr(row_text, tf.zeros_like(b), b), unit="UTF8_CHAR"
            )  # noqa: E731

        start_c, end_c = to_chars(b_bytes), to_chars(e_bytes)
        surface = tf.strings.substr(row_text, b_bytes, e_bytes - b_bytes)
        nrows = tf.shape(text, out_type=tf.int64)[0]

        def per_row(values, default):
            return tf.RaggedTensor.from_value_rowids(values, e_rows, nrows=nrows).to_tensor(
                default_value=default
            )

        return {
            "entity_starts": per_row(start_c, -1),
            "entity_ends": per_row(end_c, -1),
            "entity_types": per_row(e_kind, ""),
            "entity_texts": per_row(surface, ""),
            "entity_scores": per_row(score, 0.0),
            "num_entities": tf.cast(
                tf.math.bincount(tf.cast(e_rows, tf.int32), minlength=tf.cast(nrows, tf.int32)),
                tf.int32,
            ),
        }

    def signatures(self):
        return {
            "serving_default": (self._entities, [tf.TensorSpec([None], tf.string)], ["text"]),
            "tag_words": (
                self._tag_words,
                [tf.TensorSpec([None, None], tf.string), tf.TensorSpec([None], tf.int32)],
                ["words", "num_words"],
            ),
        }
