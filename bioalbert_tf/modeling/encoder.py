"""The ALBERT encoder: factorised embeddings, cross-layer parameter sharing, tanh pooler."""

from __future__ import annotations

import keras
from keras import ops

from bioalbert_tf.config import AlbertConfig
from bioalbert_tf.modeling.layers import (
    AlbertBlock,
    AlbertConfigSerializable,
    AlbertEmbeddings,
    dense,
)

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")


@keras.saving.register_keras_serializable(package="bioalbert_tf")
class AlbertEncoder(AlbertConfigSerializable, keras.Model):
    """{input_ids, input_mask, segment_ids} [batch, seq] int -> sequence_output, pooled_output.

    Layer i runs the `inner_group_num` blocks of group
    int(i / num_hidden_layers * num_hidden_groups), as ALBERT does; any number of groups and inner
    groups works.
    """

    def __init__(self, config: AlbertConfig, **kwargs):
        kwargs.setdefault("name", "albert_encoder")
        super().__init__(**kwargs)
        self.config = config
        dtype = self.dtype_policy
        self.embeddings = AlbertEmbeddings(config, name="embeddings", dtype=dtype)
        # As the reference's transformer_model: the projection exists only where the widths
        # differ; with embedding_size == hidden_size there is no such variable to load or save.
        self.embedding_hidden_mapping_in = (
            dense(config.hidden_size, config, "embedding_hidden_mapping_in", dtype=dtype)
            if config.embedding_size != config.hidden_size
            else None
        )
        # One attribute per block (group g, inner group j): TensorFlow object checkpoints follow
        # attributes, not the lists Keras wraps.
        for g in range(config.num_hidden_groups):
            for j in range(config.inner_group_num):
                name = f"group_{g}_inner_group_{j}"
                setattr(self, name, AlbertBlock(config, name=name, dtype=dtype))
        self.pooler = dense(config.hidden_size, config, "pooler", activation="tanh", dtype=dtype)
        self.build()

    def build(self, input_shape=None):
        c = self.config
        self.embeddings.build()
        if self.embedding_hidden_mapping_in is not None:
            self.embedding_hidden_mapping_in.build((None, None, c.embedding_size))
        for g in range(c.num_hidden_groups):
            for j in range(c.inner_group_num):
                self.block(g, j).build()
        self.pooler.build((None, c.hidden_size))
        self.built = True

    def block(self, group: int, inner: int) -> AlbertBlock:
        return getattr(self, f"group_{group}_inner_group_{inner}")

    def call(self, inputs, training=False):
        input_ids = ops.cast(inputs["input_ids"], "int32")
        input_mask = inputs.get("input_mask")
        input_mask = (
            ops.ones_like(input_ids) if input_mask is None else ops.cast(input_mask, "int32")
        )
        segment_ids = inputs.get("segment_ids")
        segment_ids = (
            ops.zeros_like(input_ids) if segment_ids is None else ops.cast(segment_ids, "int32")
        )
        x = self.embeddings(input_ids, segment_ids, training=training)
        if self.embedding_hidden_mapping_in is not None:
            x = self.embedding_hidden_mapping_in(x)  # [batch, seq, embedding] -> [..., hidden]
        c = self.config
        for layer in range(c.num_hidden_layers):
            group = c.group_of_layer(layer)
            for inner in range(c.inner_group_num):
                x = self.block(group, inner)(x, input_mask, training=training)
        pooled = self.pooler(x[:, 0])
        return {"sequence_output": x, "pooled_output": pooled}
