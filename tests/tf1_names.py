"""The TF1 variable names and shapes of an ALBERT pretraining checkpoint, from the recipe
(RECIPE.md, google-research/albert modeling.py / run_pretraining.py), written out independently
of bioalbert_tf.checkpoints so tests can check the map against it."""


def tf1_pretraining_shapes(c) -> dict:
    e, h, i, v = c.embedding_size, c.hidden_size, c.intermediate_size, c.vocab_size
    shapes = {
        "bert/embeddings/word_embeddings": (v, e),
        "bert/embeddings/token_type_embeddings": (c.type_vocab_size, e),
        "bert/embeddings/position_embeddings": (c.max_position_embeddings, e),
        "bert/embeddings/LayerNorm/beta": (e,),
        "bert/embeddings/LayerNorm/gamma": (e,),
        "bert/pooler/dense/kernel": (h, h),
        "bert/pooler/dense/bias": (h,),
        "cls/predictions/transform/dense/kernel": (h, e),
        "cls/predictions/transform/dense/bias": (e,),
        "cls/predictions/transform/LayerNorm/beta": (e,),
        "cls/predictions/transform/LayerNorm/gamma": (e,),
        "cls/predictions/output_bias": (v,),
        "cls/seq_relationship/output_weights": (2, h),
        "cls/seq_relationship/output_bias": (2,),
    }
    if e != h:  # modeling.py's transformer_model projects only when the widths differ
        shapes["bert/encoder/embedding_hidden_mapping_in/kernel"] = (e, h)
        shapes["bert/encoder/embedding_hidden_mapping_in/bias"] = (h,)
    for g in range(c.num_hidden_groups):
        for j in range(c.inner_group_num):
            p = f"bert/encoder/transformer/group_{g}/inner_group_{j}/"
            for name in ("query", "key", "value"):
                shapes[p + f"attention_1/self/{name}/kernel"] = (h, h)
                shapes[p + f"attention_1/self/{name}/bias"] = (h,)
            shapes[p + "attention_1/output/dense/kernel"] = (h, h)
            shapes[p + "attention_1/output/dense/bias"] = (h,)
            shapes[p + "ffn_1/intermediate/dense/kernel"] = (h, i)
            shapes[p + "ffn_1/intermediate/dense/bias"] = (i,)
            shapes[p + "ffn_1/intermediate/output/dense/kernel"] = (i, h)
            shapes[p + "ffn_1/intermediate/output/dense/bias"] = (h,)
            for norm in ("LayerNorm", "LayerNorm_1"):
                shapes[p + f"{norm}/beta"] = (h,)
                shapes[p + f"{norm}/gamma"] = (h,)
    return shapes


def write_random_tf1_checkpoint(
    config, prefix: str, seed: int = 0, with_optimizer_slots: bool = True, scale: float = 0.2
) -> dict:
    """A TF1 checkpoint with random values under the original names (+ adam slots, global_step)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in tf1_pretraining_shapes(config).items():
        if name.endswith("gamma"):
            values[name] = (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
        else:  # biases non-zero too, so a bias mapped to the wrong place shows
            values[name] = (scale * rng.standard_normal(shape)).astype(np.float32)
    tensors = dict(values)
    if with_optimizer_slots:
        for name in values:
            tensors[name + "/adam_m"] = np.zeros_like(values[name])
            tensors[name + "/adam_v"] = np.ones_like(values[name])
        tensors["global_step"] = np.array(1234, np.int64)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tensors[n] for n in names],
    )
    return values
