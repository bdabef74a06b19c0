"""TF1 ALBERT checkpoints <-> our Keras model: the name map, import, export, auto-detection.

The map is structural (built from the model's attributes, not from Keras variable paths), and
every variable keeps its TF1 shape, so import and export are plain copies: a TF1 -> Keras -> TF1
round trip is bitwise identical.

Our own checkpoints are TensorFlow object checkpoints of `tf.train.Checkpoint(model=pretrainer)`
(pretraining adds `optimizer` and `step` beside `model`), found with `tf.train.latest_checkpoint`.
"""

from __future__ import annotations

import dataclasses

from absl import logging

from bioalbert_tf import fileio

# Variables of a TF1 checkpoint that are not model weights: optimizer slots and counters.
IGNORED_SUFFIXES = (
    "/adam_m",
    "/adam_v",
    "/lamb_m",
    "/lamb_v",
    "/Momentum",
    "/ExponentialMovingAverage",
)
IGNORED_NAMES = ("global_step", "good_steps", "loss_scale")
ENCODER_PREFIX = "bert/"
CONFIG_NAME = "albert_config.json"


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model; the message lists every offending variable."""


def encoder_variable_map(encoder) -> dict:
    """TF1 name -> variable for an AlbertEncoder."""
    m = {}
    e = encoder.embeddings
    m["bert/embeddings/word_embeddings"] = e.word_embeddings
    m["bert/embeddings/token_type_embeddings"] = e.token_type_embeddings
    m["bert/embeddings/position_embeddings"] = e.position_embeddings
    m["bert/embeddings/LayerNorm/gamma"] = e.layer_norm.gamma
    m["bert/embeddings/LayerNorm/beta"] = e.layer_norm.beta
    mapping = encoder.embedding_hidden_mapping_in  # None where embedding_size == hidden_size
    if mapping is not None:
        m["bert/encoder/embedding_hidden_mapping_in/kernel"] = mapping.kernel
        m["bert/encoder/embedding_hidden_mapping_in/bias"] = mapping.bias
    c = encoder.config
    for g in range(c.num_hidden_groups):
        for j in range(c.inner_group_num):
            b = encoder.block(g, j)
            p = f"bert/encoder/transformer/group_{g}/inner_group_{j}/"
            for tf1, layer in (
                ("attention_1/self/query", b.query),
                ("attention_1/self/key", b.key),
                ("attention_1/self/value", b.value),
                ("attention_1/output/dense", b.attention_output),
                ("ffn_1/intermediate/dense", b.intermediate),
                ("ffn_1/intermediate/output/dense", b.ffn_output),
            ):
                m[p + tf1 + "/kernel"] = layer.kernel
                m[p + tf1 + "/bias"] = layer.bias
            for tf1, norm in (("LayerNorm", b.layer_norm), ("LayerNorm_1", b.layer_norm_1)):
                m[p + tf1 + "/gamma"] = norm.gamma
                m[p + tf1 + "/beta"] = norm.beta
    m["bert/pooler/dense/kernel"] = encoder.pooler.kernel
    m["bert/pooler/dense/bias"] = encoder.pooler.bias
    return m


def pretrainer_variable_map(pretrainer) -> dict:
    """TF1 name -> variable for an AlbertPretrainer (encoder + cls/ heads)."""
    m = encoder_variable_map(pretrainer.encoder)
    m["cls/predictions/transform/dense/kernel"] = pretrainer.mlm_transform.kernel
    m["cls/predictions/transform/dense/bias"] = pretrainer.mlm_transform.bias
    m["cls/predictions/transform/LayerNorm/gamma"] = pretrainer.mlm_layer_norm.gamma
    m["cls/predictions/transform/LayerNorm/beta"] = pretrainer.mlm_layer_norm.beta
    m["cls/predictions/output_bias"] = pretrainer.mlm_output_bias
    m["cls/seq_relationship/output_weights"] = pretrainer.sop_output_weights
    m["cls/seq_relationship/output_bias"] = pretrainer.sop_output_bias
    return m


def variable_map(model) -> dict:
    return (
        pretrainer_variable_map(model)
        if hasattr(model, "sop_output_weights")
        else encoder_variable_map(model)
    )


def is_ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


@dataclasses.dataclass
class ImportReport:
    loaded: int
    ignored: int  # optimizer slots and counters
    unused: int  # weights of heads the model does not have (e.g. cls/ when loading an encoder)
    global_step: int | None = None


def config_for(checkpoint_path: str, albert_config_file: str | None = None):
    """The AlbertConfig given, or the albert_config.json beside the checkpoint (Google's tarballs,
    our conversions and pretraining runs all keep one there)."""
    from bioalbert_tf.config import AlbertConfig

    path = albert_config_file
    if not path:
        folder = (
            checkpoint_path if fileio.isdir(checkpoint_path) else fileio.dirname(checkpoint_path)
        )
        path = fileio.join(folder, CONFIG_NAME)
        if not fileio.exists(path):
            raise FileNotFoundError(
                f"--albert_config_file not given and no {CONFIG_NAME} beside {checkpoint_path}"
            )
    return AlbertConfig.from_json_file(path)


def check_checkpoint_files(prefix: str) -> None:
    """Raises FileNotFoundError naming the data file(s) missing beside `<prefix>.index`
    (a partial copy or download), instead of TensorFlow's OpError at restore time."""
    import re

    if not fileio.exists(prefix + ".index"):
        raise FileNotFoundError(f"checkpoint not found: {prefix} (expected {prefix}.index)")
    found = fileio.glob(prefix + ".data-*-of-*")
    shards = {re.search(r"-of-(\d+)$", p) for p in found} - {None}
    total = max((int(m.group(1)) for m in shards), default=1)
    expected = [f"{prefix}.data-{i:05d}-of-{total:05d}" for i in range(total)]
    missing = [p for p in expected if p not in found]
    if missing:
        raise FileNotFoundError(
            f"checkpoint {prefix}: {prefix}.index is there but its data file(s) are missing: "
            + ", ".join(missing)
            + " (an incomplete copy or download?)"
        )


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a prefix or a folder (local or gs://).

    A folder resolves through its `checkpoint` state file; without one (as in Google's unpacked
    ALBERT tarballs) to `model.ckpt-best`, else to the single or highest-numbered `*.index` in it.
    """
    import re

    import tensorflow as tf

    if fileio.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is not None:
            check_checkpoint_files(latest)
            return latest
        prefixes = [p[: -len(".index")] for p in fileio.glob(fileio.join(path, "*.index"))]
        if not prefixes:
            raise FileNotFoundError(
                f"{path}: folder holds no checkpoint (no `checkpoint` state file, no *.index)"
            )
        best = [p for p in prefixes if fileio.basename(p) == "model.ckpt-best"]
        if best:
            check_checkpoint_files(best[0])
            return best[0]

        def step(p):
            m = re.search(r"-(\d+)$", p)
            return int(m.group(1)) if m else -1

        chosen = max(prefixes, key=step)
        check_checkpoint_files(chosen)
        return chosen
    check_checkpoint_files(path)
    return path


def is_tf1_checkpoint(prefix: str) -> bool:
    """TF1 name-based checkpoints hold `bert/...` names; object checkpoints hold an object graph."""
    import tensorflow as tf

    names = [n for n, _ in tf.train.list_variables(prefix)]
    return (
        any(n.startswith(ENCODER_PREFIX) for n in names)
        and "_CHECKPOINTABLE_OBJECT_GRAPH" not in names
    )


def load_tf1_checkpoint(model, prefix: str) -> ImportReport:
    """Copies a TF1 ALBERT checkpoint into `model` (AlbertPretrainer or AlbertEncoder).

    Raises CheckpointMismatchError listing every unknown, missing or mis-shaped variable.
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    targets = variable_map(model)
    encoder_only = not hasattr(model, "sop_output_weights")
    ignored = unused = 0
    unknown, mis_shaped = [], []
    for name in sorted(shapes):
        if is_ignored(name):
            ignored += 1
        elif name in targets:
            want = tuple(targets[name].shape)
            if tuple(shapes[name]) != want:
                mis_shaped.append(
                    f"  {name}: checkpoint {list(shapes[name])}, model expects {list(want)}"
                )
        elif encoder_only and not name.startswith(ENCODER_PREFIX):
            unused += 1
        else:
            unknown.append(f"  {name} {list(shapes[name])}")
    missing = [f"  {n} {list(v.shape)}" for n, v in sorted(targets.items()) if n not in shapes]
    if unknown or missing or mis_shaped:
        parts = [f"{prefix} does not fit the model:"]
        for title, rows in (
            ("mis-shaped", mis_shaped),
            ("missing from the checkpoint", missing),
            ("unknown to the model", unknown),
        ):
            if rows:
                parts.append(f"{len(rows)} {title}:")
                parts.extend(rows)
        raise CheckpointMismatchError("\n".join(parts))
    for name, var in targets.items():
        var.assign(reader.get_tensor(name))
    step = int(reader.get_tensor("global_step")) if "global_step" in shapes else None
    report = ImportReport(loaded=len(targets), ignored=ignored, unused=unused, global_step=step)
    logging.info("loaded %s: %s", prefix, report)
    return report


def save_tf1_checkpoint(model, prefix: str, global_step: int | None = None) -> list[str]:
    """Writes the model's weights under the original TF1 names (a V2 checkpoint bundle)."""
    import tensorflow as tf

    targets = variable_map(model)
    names = sorted(targets)
    tensors = [tf.convert_to_tensor(targets[n]) for n in names]
    if global_step is not None:
        names.append("global_step")
        tensors.append(tf.constant(global_step, tf.int64))
    folder = fileio.dirname(prefix)
    fileio.makedirs(folder)
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors
    )
    # A state file, so tf.train.latest_checkpoint(folder) finds it as it finds the original ones.
    with fileio.open_file(fileio.join(folder, "checkpoint"), "w") as f:
        base = fileio.basename(prefix)
        f.write(f'model_checkpoint_path: "{base}"\nall_model_checkpoint_paths: "{base}"\n')
    return names


def object_checkpoint(model):
    """The object graph our checkpoints use: the pretrainer under `model`, its encoder under
    `encoder`."""
    import tensorflow as tf

    if hasattr(model, "sop_output_weights"):
        return tf.train.Checkpoint(model=model)
    return tf.train.Checkpoint(model=tf.train.Checkpoint(encoder=model))


def save_keras_checkpoint(pretrainer, output_dir: str, step: int | None = None) -> str:
    """Writes `<output_dir>/ckpt-N` (+ `checkpoint` state file and albert_config.json).

    `step` (e.g. a TF1 checkpoint's global_step) is stored beside the model, as pretraining does.
    """
    import tensorflow as tf

    fileio.makedirs(output_dir)
    ckpt = object_checkpoint(pretrainer)
    if step is not None:
        ckpt.step = tf.Variable(step, dtype=tf.int64, trainable=False)
    path = ckpt.save(fileio.join(output_dir, "ckpt"))
    pretrainer.config.to_json_file(fileio.join(output_dir, CONFIG_NAME))
    return path


def shape_mismatches(root, prefix: str) -> list[str]:
    """Variables of the object graph `root` whose shape in the checkpoint `prefix` differs, as
    "name: (checkpoint shape) in the checkpoint, (shape) in the model" lines. Keys are found as
    the checkpoint's object graph names them: the first path from the root, breadth first."""
    import tensorflow as tf

    saved = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    view = tf.train.TrackableView(root)
    queue, seen, rows = [(root, "")], {id(root)}, []
    while queue:
        obj, path = queue.pop(0)
        for name, child in view.children(obj).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            key = f"{path}/{name}" if path else name
            shape = getattr(child, "shape", None)
            value = f"{key}/.ATTRIBUTES/VARIABLE_VALUE"
            if shape is not None and value in saved and list(saved[value]) != list(shape):
                rows.append(
                    f"{key}: {tuple(saved[value])} in the checkpoint, {tuple(shape)} in the model"
                )
            queue.append((child, key))
    return rows


def load_keras_checkpoint(model, prefix: str) -> None:
    """Restores one of our object checkpoints (conversion or pretraining output) into `model`;
    a checkpoint of another model size is refused, listing the variables that differ."""
    root = object_checkpoint(model)
    mismatched = shape_mismatches(root, prefix)
    if mismatched:
        shown = "\n  ".join(mismatched[:12])
        more = f"\n  and {len(mismatched) - 12} more" if len(mismatched) > 12 else ""
        beside = fileio.join(fileio.dirname(prefix), CONFIG_NAME)
        raise CheckpointMismatchError(
            f"{prefix} is of another model size than the albert_config given: "
            f"{len(mismatched)} variable(s) differ in shape:\n  {shown}{more}\n"
            f"(the checkpoint's own config, if kept, is {beside})"
        )
    status = root.read(prefix)
    status.expect_partial()  # optimizer state and step are for pretraining, not for the weights
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise CheckpointMismatchError(f"{prefix} does not fit the model: {e}") from None


def load_init_checkpoint(model, path: str) -> str:
    """`--init_checkpoint`: a TF1 prefix (Google ALBERT / BioALBERT) or ours, detected
    automatically.

    `path` may be a prefix or a folder with a `checkpoint` state file (local or gs://).
    Returns "tf1" or "keras".
    """
    prefix = resolve_checkpoint(path)
    if is_tf1_checkpoint(prefix):
        load_tf1_checkpoint(model, prefix)
        return "tf1"
    load_keras_checkpoint(model, prefix)
    return "keras"
