"""ALBERT's pretraining heads (masked LM tied to the word embeddings, sentence order) and losses."""

from __future__ import annotations

import keras
from keras import ops

from bioalbert_tf.config import AlbertConfig
from bioalbert_tf.modeling.encoder import AlbertEncoder
from bioalbert_tf.modeling.layers import (
    AlbertConfigSerializable,
    dense,
    get_activation,
    initializer,
    layer_norm,
)

MLM_LOSS_EPSILON = 1e-5  # added to the number of masked tokens, as in run_pretraining.py


@keras.saving.register_keras_serializable(package="bioalbert_tf")
class AlbertPretrainer(AlbertConfigSerializable, keras.Model):
    """Encoder + `cls/predictions` (MLM) + `cls/seq_relationship` (SOP).

    Inputs: input_ids, input_mask, segment_ids [batch, seq] and masked_lm_positions [batch, preds].
    Outputs: mlm_logits [batch, preds, vocab] (float32), sop_logits [batch, 2] (float32), and the
    encoder's sequence_output / pooled_output.
    """

    def __init__(self, config: AlbertConfig, encoder: AlbertEncoder | None = None, **kwargs):
        kwargs.setdefault("name", "albert_pretrainer")
        super().__init__(**kwargs)
        self.config = config
        self.encoder = encoder or AlbertEncoder(config, dtype=self.dtype_policy)
        self.mlm_transform = dense(
            config.embedding_size,
            config,
            "mlm_transform",
            activation=get_activation(config.hidden_act),
            dtype=self.dtype_policy,
        )
        self.mlm_layer_norm = layer_norm("mlm_LayerNorm")
        self.build()

    def build(self, input_shape=None):
        c = self.config
        self.mlm_transform.build((None, None, c.hidden_size))
        self.mlm_layer_norm.build((None, None, c.embedding_size))
        self.mlm_output_bias = self.add_weight(
            name="mlm_output_bias", shape=(c.vocab_size,), initializer="zeros"
        )
        self.sop_output_weights = self.add_weight(
            name="sop_output_weights", shape=(2, c.hidden_size), initializer=initializer(c)
        )
        self.sop_output_bias = self.add_weight(
            name="sop_output_bias", shape=(2,), initializer="zeros"
        )
        self.built = True

    def mlm_logits(self, hidden):
        """[..., hidden] -> [..., vocab] float32 logits, tied to the word embeddings."""
        x = self.mlm_layer_norm(self.mlm_transform(hidden))
        table = ops.cast(self.encoder.embeddings.word_embeddings, self.compute_dtype)
        logits = ops.matmul(ops.cast(x, self.compute_dtype), ops.transpose(table))
        return ops.cast(logits, "float32") + ops.cast(self.mlm_output_bias, "float32")

    def sop_logits(self, pooled):
        weights = ops.cast(self.sop_output_weights, self.compute_dtype)
        logits = ops.matmul(ops.cast(pooled, self.compute_dtype), ops.transpose(weights))
        return ops.cast(logits, "float32") + ops.cast(self.sop_output_bias, "float32")

    def call(self, inputs, training=False):
        out = self.encoder(inputs, training=training)
        seq = out["sequence_output"]
        positions = ops.cast(inputs["masked_lm_positions"], "int32")
        # Only the masked positions go through the MLM head: [batch, preds, hidden]
        gathered = ops.take_along_axis(seq, positions[:, :, None], axis=1)
        return {
            "mlm_logits": self.mlm_logits(gathered),
            "sop_logits": self.sop_logits(out["pooled_output"]),
            **out,
        }


def pretraining_sums(outputs: dict, features: dict) -> dict:
    """Sums over the batch that ALBERT's losses and eval metrics are made of (float32).

    mlm_loss_sum = sum(w * -log p(label)) and mlm_correct = sum(w * [argmax == label]) over all
    masked positions, mlm_weight = sum(w); sop_loss_sum and sop_correct over the examples.
    Summed over batches (and replicas) they give the reference's weighted eval means.
    """
    mlm_log_probs = ops.log_softmax(outputs["mlm_logits"], axis=-1)
    labels = ops.cast(features["masked_lm_ids"], "int32")
    weights = ops.cast(features["masked_lm_weights"], "float32")
    label_log_probs = ops.squeeze(
        ops.take_along_axis(mlm_log_probs, labels[..., None], axis=-1), -1
    )
    sop_labels = ops.reshape(ops.cast(features["next_sentence_labels"], "int32"), (-1,))
    sop_log_probs = ops.log_softmax(outputs["sop_logits"], axis=-1)
    sop_label_log_probs = ops.squeeze(
        ops.take_along_axis(sop_log_probs, sop_labels[:, None], axis=-1), -1
    )
    mlm_correct = ops.cast(ops.equal(ops.argmax(outputs["mlm_logits"], axis=-1), labels), "float32")
    sop_correct = ops.cast(
        ops.equal(ops.argmax(outputs["sop_logits"], axis=-1), sop_labels), "float32"
    )
    return {
        "mlm_loss_sum": -ops.sum(weights * label_log_probs),
        "mlm_correct": ops.sum(mlm_correct * weights),
        "mlm_weight": ops.sum(weights),
        "sop_loss_sum": -ops.sum(sop_label_log_probs),
        "sop_correct": ops.sum(sop_correct),
        "examples": ops.cast(ops.shape(sop_labels)[0], "float32"),
    }


def pretraining_losses(outputs: dict, features: dict) -> dict:
    """ALBERT's losses and accuracies for one batch (float32).

    mlm_loss = sum(w * -log p(label)) / (sum(w) + 1e-5) over all masked positions of the batch;
    sop_loss = mean over examples of -log p(label); loss = mlm_loss + sop_loss.
    """
    s = pretraining_sums(outputs, features)
    mlm_loss = s["mlm_loss_sum"] / (s["mlm_weight"] + MLM_LOSS_EPSILON)
    sop_loss = s["sop_loss_sum"] / s["examples"]
    return {
        "loss": mlm_loss + sop_loss,
        "mlm_loss": mlm_loss,
        "sop_loss": sop_loss,
        "mlm_accuracy": s["mlm_correct"] / (s["mlm_weight"] + MLM_LOSS_EPSILON),
        "sop_accuracy": s["sop_correct"] / s["examples"],
    }
