"""Our encoder weights as a keras-hub `AlbertBackbone` preset, for keras-hub users.

keras-hub's AlbertBackbone computes the same function as our encoder (post-LN blocks, tanh-GELU,
LayerNorm 1e-12, tanh pooler) but repeats groups in equal runs, so it can hold a model only when
num_hidden_layers is a multiple of num_hidden_groups (true of every released ALBERT). Kernels
move from TF1's [hidden, hidden] to keras-hub's [hidden, heads, head_size] by reshaping.
"""

from __future__ import annotations

import numpy as np


def to_keras_hub_backbone(encoder):
    import keras_hub

    c = encoder.config
    if c.num_hidden_layers % c.num_hidden_groups:
        raise ValueError(
            f"keras-hub's AlbertBackbone needs num_hidden_layers ({c.num_hidden_layers}) to be a "
            f"multiple of num_hidden_groups ({c.num_hidden_groups}); this model cannot be "
            "expressed as a keras-hub preset"
        )
    if c.hidden_act not in ("gelu", "gelu_new"):
        raise ValueError(
            f"keras-hub's AlbertBackbone uses tanh-GELU; this model uses {c.hidden_act!r}"
        )
    backbone = keras_hub.models.AlbertBackbone(
        vocabulary_size=c.vocab_size,
        num_layers=c.num_hidden_layers,
        num_heads=c.num_attention_heads,
        embedding_dim=c.embedding_size,
        hidden_dim=c.hidden_size,
        intermediate_dim=c.intermediate_size,
        num_groups=c.num_hidden_groups,
        num_inner_repetitions=c.inner_group_num,
        dropout=c.hidden_dropout_prob,
        max_sequence_length=c.max_position_embeddings,
        num_segments=c.type_vocab_size,
    )

    def put(variable, value):
        variable.assign(np.reshape(np.asarray(value), tuple(variable.shape)))

    e = encoder.embeddings
    put(backbone.token_embedding.embeddings, e.word_embeddings)
    put(backbone.position_embedding.position_embeddings, e.position_embeddings)
    put(backbone.segment_embedding.embeddings, e.token_type_embeddings)
    put(backbone.embeddings_layer_norm.gamma, e.layer_norm.gamma)
    put(backbone.embeddings_layer_norm.beta, e.layer_norm.beta)
    mapping = encoder.embedding_hidden_mapping_in
    if mapping is None:  # equal widths: keras-hub always projects, so project by the identity
        put(backbone.embeddings_projection.kernel, np.eye(c.hidden_size, dtype=np.float32))
        put(backbone.embeddings_projection.bias, np.zeros(c.hidden_size, np.float32))
    else:
        put(backbone.embeddings_projection.kernel, mapping.kernel)
        put(backbone.embeddings_projection.bias, mapping.bias)
    for g in range(c.num_hidden_groups):
        for j in range(c.inner_group_num):
            ours, theirs = encoder.block(g, j), backbone.get_layer(f"group_{g}_inner_layer_{j}")
            attention = theirs._self_attention_layer
            for src, dst in (
                (ours.query, attention.query_dense),
                (ours.key, attention.key_dense),
                (ours.value, attention.value_dense),
                (ours.attention_output, attention.output_dense),
                (ours.intermediate, theirs._feedforward_intermediate_dense),
                (ours.ffn_output, theirs._feedforward_output_dense),
            ):
                put(dst.kernel, src.kernel)
                put(dst.bias, src.bias)
            for src, dst in (
                (ours.layer_norm, theirs._self_attention_layer_norm),
                (ours.layer_norm_1, theirs._feedforward_layer_norm),
            ):
                put(dst.gamma, src.gamma)
                put(dst.beta, src.beta)
    put(backbone.pooled_dense.kernel, encoder.pooler.kernel)
    put(backbone.pooled_dense.bias, encoder.pooler.bias)
    return backbone


def save_keras_hub_preset(encoder, preset_dir: str, spm_model_file: str | None = None) -> str:
    """Writes a keras-hub preset folder
    (`keras_hub.models.AlbertBackbone.from_preset(preset_dir)`)."""
    import keras_hub

    to_keras_hub_backbone(encoder).save_to_preset(preset_dir)
    if spm_model_file:
        from bioalbert_tf import fileio

        with fileio.open_file(spm_model_file, "rb") as f:
            proto = f.read()
        keras_hub.models.AlbertTokenizer(proto=proto).save_to_preset(preset_dir)
    return preset_dir
