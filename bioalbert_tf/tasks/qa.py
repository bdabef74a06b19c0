"""Factoid QA (BioASQ 4b/5b/6b): span extraction over [CLS] question [SEP] snippet [SEP].

Long snippets are cut into overlapping windows (stride half a window); every window proposes
its best spans (top-20 starts x top-20 ends, at most 30 pieces long); spans from all windows of
a snippet are merged, identical answers (case-insensitive) keep their best score, and the 20
best come back with probabilities (softmax over those 20), as BERT's SQuAD n-best list does
(n_best_size 20). The evaluation core merges a question's answers over its snippets
(`evaluation.predictions.merge_answers`, BioBERT's rule by default) and keeps 5.
Answers are substrings of the normalised (lowercased) snippet; BioASQ matching is
case-insensitive. Training answers are located in the normalised snippet by their first
occurrence.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from bioalbert_tf.tasks import preprocessing as pp
from bioalbert_tf.tasks.base import Task
from bioalbert_tf.tokenization import preprocess_text

MAX_ANSWER_PIECES = 30
N_BEST = 20  # answers per snippet: BERT's / BioBERT's n_best_size
TOP_K = N_BEST  # start and end candidates per window, as in BERT's run_squad


def span_loss(y_true, y_pred):
    """Mean of the start and end cross-entropies; y_true [batch, 2] positions,
    y_pred [batch, seq, 2]."""
    y_true = tf.cast(y_true, tf.int32)
    start = keras.losses.sparse_categorical_crossentropy(
        y_true[:, 0], y_pred[:, :, 0], from_logits=True
    )
    end = keras.losses.sparse_categorical_crossentropy(
        y_true[:, 1], y_pred[:, :, 1], from_logits=True
    )
    return tf.reduce_mean(start + end) / 2.0


def rank_within_rows(rows, scores):
    """Indices that order candidates by row, then by score from high to low: a stable two-key
    sort (scores first, then rows, each stable), exact for any number of rows and any scores."""
    by_score = tf.argsort(scores, direction="DESCENDING", stable=True)
    by_row = tf.argsort(tf.gather(rows, by_score), stable=True)
    return tf.gather(by_score, by_row)


class QATask(Task):
    _answers_graph = None  # predict()'s traced _answers

    @property
    def max_query_length(self) -> int:
        return max(4, self.max_seq_length // 4)

    @property
    def width(self) -> int:  # context pieces per window
        return self.max_seq_length - 3 - self.max_query_length

    def build_model(self):
        inputs = self.model_inputs()
        seq = self.encoder(inputs)["sequence_output"]
        logits = self.head(2, "span_classifier")(seq)  # [batch, seq, 2]: start, end
        return keras.Model(inputs, logits, name=f"{self.spec.name}_span")

    def loss(self):
        return span_loss

    def _windows(self, question, context):
        """Pack every window; returns inputs, per-window example/start/length, context offsets."""
        question, context = pp.same_batch(question=question, context=context)
        q = self.text_encoder.tokenize(question)[:, : self.max_query_length]
        norm = self.text_encoder.normalize(context)
        ids, starts, ends = self.text_encoder.tokenizer.tokenize_with_offsets(norm)
        n = tf.cast(ids.row_lengths(), tf.int32)
        stride = max(1, self.width // 2)
        count = 1 + tf.maximum(0, (n - self.width + stride - 1) // stride)
        example = tf.repeat(tf.range(tf.shape(n)[0]), count)
        start = tf.ragged.range(count).flat_values * stride
        offsets = start[:, None] + tf.range(self.width)[None, :]
        valid = offsets < tf.gather(n, example)[:, None]
        flat_index = tf.where(
            valid, tf.cast(tf.gather(ids.row_starts(), example), tf.int32)[:, None] + offsets, 0
        )
        length = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
        ctx = tf.RaggedTensor.from_tensor(
            pp.gather_or(ids.flat_values, flat_index, valid, 0), lengths=length
        )
        inputs = pp.pack([tf.gather(q, example), ctx], self.max_seq_length)
        ctx_offset = tf.cast(tf.gather(q.row_lengths(), example), tf.int32) + 2  # [CLS] q [SEP]
        return inputs, example, start, length, ctx_offset, norm, ids, starts, ends

    # --- training ------------------------------------------------------------------------------
    def _answer_bytes(self, examples):
        """(examples kept, byte start, byte end) of each training answer in the normalised
        snippet."""
        kept, b0, b1 = [], [], []
        for e in examples:
            if not e.answers:
                continue
            ctx = preprocess_text(e.context, self.text_encoder.do_lower_case)
            ans = preprocess_text(e.answers[0], self.text_encoder.do_lower_case)
            at = ctx.find(ans) if ans else -1
            if at < 0:
                continue
            kept.append(e)
            b0.append(len(ctx[:at].encode("utf-8")))
            b1.append(len(ctx[: at + len(ans)].encode("utf-8")))
        if not kept:
            raise ValueError("no training example has an answer found in its snippet")
        return kept, np.array(b0, np.int32), np.array(b1, np.int32)

    def train_dataset(self, examples, batch_size: int, seed: int):
        kept, b0, b1 = self._answer_bytes(examples)
        q = tf.constant([e.question for e in kept])
        c = tf.constant([e.context for e in kept])
        ds = tf.data.Dataset.from_tensor_slices((q, c, b0, b1))
        ds = (
            ds.shuffle(len(kept), seed=seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch_size, drop_remainder=True)
        )

        def to_windows(question, context, ans_start, ans_end):
            inputs, example, start, length, ctx_offset, _, ids, starts, ends = self._windows(
                question, context
            )
            # answer pieces: the first piece ending after the answer start, the last starting
            # before its end
            s_piece = tf.reduce_sum(
                tf.cast(tf.cast(ends, tf.int32) <= ans_start[:, None], tf.int32), axis=1
            )
            e_piece = (
                tf.reduce_sum(
                    tf.cast(tf.cast(starts, tf.int32) < ans_end[:, None], tf.int32), axis=1
                )
                - 1
            )
            s, e = tf.gather(s_piece, example) - start, tf.gather(e_piece, example) - start
            inside = (s >= 0) & (e < length) & (e >= s)
            labels = tf.stack(
                [tf.where(inside, s + ctx_offset, 0), tf.where(inside, e + ctx_offset, 0)], axis=1
            )
            return inputs, labels

        return ds.map(to_windows, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)

    # --- prediction ----------------------------------------------------------------------------
    def _answers(self, question, context):
        inputs, example, start, length, ctx_offset, norm, ids, starts, ends = self._windows(
            question, context
        )
        logits = self.model(inputs, training=False)
        seq_len = tf.shape(logits)[1]
        pos = tf.range(seq_len)[None, :]
        in_ctx = (pos >= ctx_offset[:, None]) & (pos < (ctx_offset + length)[:, None])
        neg = tf.fill(tf.shape(logits[:, :, 0]), -1e9)
        s_logit, e_logit = (
            tf.where(in_ctx, logits[:, :, 0], neg),
            tf.where(in_ctx, logits[:, :, 1], neg),
        )
        k = tf.minimum(TOP_K, seq_len)
        s_val, s_idx = tf.math.top_k(s_logit, k)
        e_val, e_idx = tf.math.top_k(e_logit, k)
        score = s_val[:, :, None] + e_val[:, None, :]
        ok = (e_idx[:, None, :] >= s_idx[:, :, None]) & (
            e_idx[:, None, :] - s_idx[:, :, None] < MAX_ANSWER_PIECES
        )
        ok &= (s_val[:, :, None] > -1e8) & (e_val[:, None, :] > -1e8)
        win = tf.broadcast_to(tf.range(tf.shape(logits)[0])[:, None, None], tf.shape(score))
        sel = tf.where(ok)
        w = tf.gather_nd(win, sel)
        sp = tf.gather_nd(tf.broadcast_to(s_idx[:, :, None], tf.shape(score)), sel)
        ep = tf.gather_nd(tf.broadcast_to(e_idx[:, None, :], tf.shape(score)), sel)
        sc = tf.gather_nd(score, sel)
        ex = tf.gather(example, w)
        base = (
            tf.cast(tf.gather(ids.row_starts(), ex), tf.int32)
            + tf.gather(start, w)
            - tf.gather(ctx_offset, w)
        )
        b0 = tf.cast(tf.gather(starts.flat_values, base + sp), tf.int32)
        b1 = tf.cast(tf.gather(ends.flat_values, base + ep), tf.int32)
        text = tf.strings.strip(tf.strings.substr(tf.gather(norm, ex), b0, b1 - b0))
        keep = tf.strings.length(text) > 0
        ex, text, sc = (
            tf.boolean_mask(ex, keep),
            tf.boolean_mask(text, keep),
            tf.boolean_mask(sc, keep),
        )
        key = tf.strings.join(
            [tf.strings.as_string(ex), tf.strings.lower(text, encoding="utf-8")], "\t"
        )
        uniq, idx = tf.unique(key)
        best = tf.math.unsorted_segment_max(sc, idx, tf.size(uniq))
        u_ex = tf.math.unsorted_segment_max(ex, idx, tf.size(uniq))
        u_text = tf.gather(
            text, tf.math.unsorted_segment_min(tf.range(tf.size(idx)), idx, tf.size(uniq))
        )
        order = rank_within_rows(u_ex, best)
        u_ex, u_text, best = (
            tf.gather(u_ex, order),
            tf.gather(u_text, order),
            tf.gather(best, order),
        )
        nrows = tf.shape(question)[0]
        texts = tf.RaggedTensor.from_value_rowids(
            u_text, tf.cast(u_ex, tf.int64), nrows=tf.cast(nrows, tf.int64)
        )
        scores = tf.RaggedTensor.from_value_rowids(
            best, tf.cast(u_ex, tf.int64), nrows=tf.cast(nrows, tf.int64)
        )
        scores = scores[:, :N_BEST]
        probs = tf.nn.softmax(scores - tf.reduce_max(scores, axis=1, keepdims=True), axis=1)
        return {
            "answers": texts[:, :N_BEST].to_tensor(default_value="", shape=[None, N_BEST]),
            "answer_probabilities": probs.to_tensor(default_value=0.0, shape=[None, N_BEST]),
        }

    def predict(self, examples, batch_size: int = 32):
        """[(answer, probability)] of each (question, snippet) example: its N_BEST best."""
        if self._answers_graph is None:  # one graph for every batch (the serving signature's)
            string = tf.TensorSpec([None], tf.string)
            self._answers_graph = tf.function(self._answers, input_signature=[string, string])
        out = []
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            r = self._answers_graph(
                tf.constant([e.question for e in chunk]), tf.constant([e.context for e in chunk])
            )
            for row, p in zip(r["answers"].numpy(), r["answer_probabilities"].numpy(), strict=True):
                out.append(
                    [(a.decode("utf-8"), float(s)) for a, s in zip(row, p, strict=True) if a]
                )
        return out

    def signatures(self):
        string = tf.TensorSpec([None], tf.string)
        return {"serving_default": (self._answers, [string, string], ["question", "context"])}
