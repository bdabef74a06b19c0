"""ALBERT's building blocks, with the original TF1 shapes so checkpoints map one to one.

Every kernel keeps the layout of google-research/albert modeling.py: query/key/value and the
attention output are [hidden, hidden] matrices, dense kernels are [in, out], the SOP weights are
[2, hidden]. Written with keras.ops only, so the layers run on any Keras backend.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from bioalbert_tf.config import AlbertConfig

LAYER_NORM_EPSILON = 1e-12  # tf.contrib.layers.layer_norm's default, used by ALBERT


def gelu(x):
    """ALBERT's "gelu": the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    cdf = 0.5 * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * ops.power(x, 3))))
    return x * cdf


def get_activation(name: str):
    table = {"gelu": gelu, "gelu_new": gelu, "relu": ops.relu, "tanh": ops.tanh, "linear": None}
    if name not in table:
        raise ValueError(f"unsupported hidden_act {name!r}; expected one of {sorted(table)}")
    return table[name]


def initializer(config):
    """ALBERT's truncated normal (stddev initializer_range, cut at 2 standard deviations)."""
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def layer_norm(name: str) -> keras.layers.LayerNormalization:
    # dtype float32 keeps the normalisation in full precision under mixed_bfloat16
    return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name, dtype="float32")


def dense(units: int, config, name: str, activation=None, dtype=None) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=initializer(config), name=name, dtype=dtype
    )


class AlbertConfigSerializable:
    """get_config/from_config for a layer or model made from an AlbertConfig: the config as its
    dict (key order and unknown keys kept) beside Keras's name, trainable and dtype policy.

    The layers and models below hand their dtype policy to the layers they create, so one
    restored under another global policy computes in the dtypes it was saved with.
    """

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return super().from_config({**config, "config": AlbertConfig.from_dict(config["config"])})


@keras.saving.register_keras_serializable(package="bioalbert_tf")
class AlbertEmbeddings(AlbertConfigSerializable, keras.layers.Layer):
    """word + token type + position embeddings, LayerNorm, dropout:
    [batch, seq] -> [batch, seq, embedding]."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.layer_norm = layer_norm("LayerNorm")
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        c, init = self.config, initializer(self.config)
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(c.vocab_size, c.embedding_size), initializer=init
        )
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings",
            shape=(c.type_vocab_size, c.embedding_size),
            initializer=init,
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(c.max_position_embeddings, c.embedding_size),
            initializer=init,
        )
        self.layer_norm.build((None, None, c.embedding_size))
        self.built = True

    def call(self, input_ids, segment_ids, training=False):
        seq_len = ops.shape(input_ids)[1]
        x = ops.take(self.word_embeddings, input_ids, axis=0)
        x = x + ops.take(self.token_type_embeddings, segment_ids, axis=0)
        x = x + ops.expand_dims(self.position_embeddings[:seq_len], 0)
        x = self.layer_norm(x)
        return ops.cast(self.dropout(x, training=training), self.compute_dtype)


@keras.saving.register_keras_serializable(package="bioalbert_tf")
class AlbertBlock(AlbertConfigSerializable, keras.layers.Layer):
    """One `inner_group`: self-attention + residual + LayerNorm, FFN + residual + LayerNorm_1
    (post-LN)."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        c = self.config = config
        dtype = self.dtype_policy
        self.query = dense(c.hidden_size, c, "query", dtype=dtype)
        self.key = dense(c.hidden_size, c, "key", dtype=dtype)
        self.value = dense(c.hidden_size, c, "value", dtype=dtype)
        self.attention_output = dense(c.hidden_size, c, "attention_output", dtype=dtype)
        self.attention_dropout = keras.layers.Dropout(c.attention_probs_dropout_prob, dtype=dtype)
        self.output_dropout = keras.layers.Dropout(c.hidden_dropout_prob, dtype=dtype)
        self.layer_norm = layer_norm("LayerNorm")
        self.intermediate = dense(
            c.intermediate_size,
            c,
            "ffn_intermediate",
            activation=get_activation(c.hidden_act),
            dtype=dtype,
        )
        self.ffn_output = dense(c.hidden_size, c, "ffn_output", dtype=dtype)
        self.ffn_dropout = keras.layers.Dropout(c.hidden_dropout_prob, dtype=dtype)
        self.layer_norm_1 = layer_norm("LayerNorm_1")

    def build(self, input_shape=None):
        h, i = self.config.hidden_size, self.config.intermediate_size
        for layer in (self.query, self.key, self.value, self.attention_output, self.ffn_output):
            layer.build((None, None, h if layer is not self.ffn_output else i))
        self.intermediate.build((None, None, h))
        self.layer_norm.build((None, None, h))
        self.layer_norm_1.build((None, None, h))
        self.built = True

    def _heads(self, x):
        # [batch, seq, hidden] -> [batch, heads, seq, head_size]
        c = self.config
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        return ops.transpose(
            ops.reshape(x, (b, t, c.num_attention_heads, c.head_size)), (0, 2, 1, 3)
        )

    def call(self, x, input_mask, training=False):
        """x: [batch, seq, hidden]; input_mask: [batch, seq] int, 1 for real tokens."""
        c = self.config
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * (1.0 / math.sqrt(c.head_size))
        # ALBERT's additive mask, in float32: 0 for real keys, -10000 for padding keys.
        adder = (1.0 - ops.cast(input_mask, "float32")) * -10000.0
        scores = ops.cast(scores, "float32") + adder[:, None, None, :]  # [batch, heads, seq, seq]
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_dropout(probs, training=training)
        context = ops.transpose(ops.matmul(probs, v), (0, 2, 1, 3))
        context = ops.reshape(context, (ops.shape(x)[0], ops.shape(x)[1], c.hidden_size))
        attention = self.output_dropout(self.attention_output(context), training=training)
        attention = ops.cast(self.layer_norm(attention + x), self.compute_dtype)
        ffn = self.ffn_dropout(self.ffn_output(self.intermediate(attention)), training=training)
        return ops.cast(self.layer_norm_1(ffn + attention), self.compute_dtype)
