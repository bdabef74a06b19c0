"""The pretraining step's numbers at a small size on random records: two replicas sum their
clipped gradients (the LAMB moments and weights checked against numpy), evaluation weighs every
masked position alike on one device and on two replicas, and XLA and plain steps agree."""

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

tf = pytest.importorskip("tensorflow")

SEQ, PRED = 24, 6


def _write_records(path, n, predictions, seed=0, vocab=211):
    """n random examples at SEQ/PRED; example i has predictions(i) real masked positions."""
    import random

    from bioalbert_tf import features
    from tfrecords_builder import writer

    rng = random.Random(seed)
    enc = writer.PretrainingExampleEncoder(features.pretraining_features(SEQ, PRED), vocab)
    w = writer.AtomicTFRecordWriter(str(path))
    for i in range(n):
        length = rng.randint(8, SEQ)
        len_a = rng.randint(1, length - 4)
        ids = [2] + [rng.randrange(5, vocab) for _ in range(length - 3)] + [3]
        ids.insert(len_a + 1, 3)  # [CLS] A [SEP] B [SEP]
        candidates = [p for p in range(1, length - 1) if ids[p] != 3]
        positions = sorted(rng.sample(candidates, predictions(i)))
        labels = [rng.randrange(5, vocab) for _ in positions]
        w.write(enc.encode(ids, len_a, bytes(length), positions, labels, rng.randint(0, 1)))
    w.commit()
    return str(path)


def _small_setup(tmp_path, n=16, predictions=lambda i: 1 + i % PRED, **overrides):
    """A small config file, random records and a PretrainingConfig for them."""
    from bioalbert_tf.training import pretraining
    from tests.conftest import small_config

    config_file = tmp_path / "albert_config.json"
    small_config(max_position_embeddings=SEQ).to_json_file(str(config_file))
    records = _write_records(tmp_path / "train.tfrecord", n, predictions)
    values = dict(
        input_file=(records,),
        output_dir=str(tmp_path / "out"),
        albert_config_file=str(config_file),
        train_batch_size=4,
        eval_batch_size=4,
        max_seq_length=SEQ,
        max_predictions_per_seq=PRED,
        learning_rate=0.01,
        num_train_steps=10,
        num_warmup_steps=0,
        jit_compile=False,
    )
    return pretraining.PretrainingConfig(**{**values, **overrides})


MIRRORED_STEP = """
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from bioalbert_tf import checkpoints
from bioalbert_tf.training import pretraining
from bioalbert_tf.modeling import AlbertPretrainer, pretraining_losses

config = pretraining.PretrainingConfig(**eval(sys.argv[1]))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
trainer = pretraining.Trainer(config, strategy)
# two replicas: XLA compiles each one's gradients; the update, which all-reduces, stays outside
assert getattr(trainer._gradients, "_jit_compile", False) is config.jit_compile
assert trainer._replica_step == trainer._step_fn
names = checkpoints.pretrainer_variable_map(trainer.model)
out = {"init|" + n: v.numpy() for n, v in names.items()}
batch = next(iter(pretraining.make_dataset(list(config.input_file), 4, config, is_training=False)))
halves = [{k: v[2 * i : 2 * i + 2] for k, v in batch.items()} for i in range(2)]
per_replica = strategy.experimental_distribute_values_from_function(
    lambda ctx: halves[ctx.replica_id_in_sync_group]
)
tf.function(lambda b: strategy.run(trainer._step_fn, args=(b,)))(per_replica)
opt = trainer.optimizer
for n, v in names.items():
    out["after|" + n] = v.numpy()
    out["m|" + n] = opt._m[opt._get_variable_index(v)].numpy()
    out["v|" + n] = opt._v[opt._get_variable_index(v)].numpy()
# Each replica's raw gradients, on one device from the same weights (clipping is left to numpy).
single = AlbertPretrainer(trainer.albert_config)
single_vars = checkpoints.pretrainer_variable_map(single)
for n, v in single_vars.items():
    v.assign(out["init|" + n])
for i, half in enumerate(halves):
    with tf.GradientTape() as tape:
        loss = pretraining_losses(single(half, training=True), half)["loss"]
    grads = tape.gradient(loss, list(single_vars.values()))
    for n, g in zip(single_vars, grads):
        out[f"grad{i}|" + n] = tf.convert_to_tensor(g).numpy()
np.savez(sys.argv[2], **out)
"""


@pytest.mark.parametrize("jit_compile", [True, False])
def test_two_replicas_sum_their_clipped_gradients(tmp_path, jit_compile):
    """MirroredStrategy over 2 logical CPUs, one step: the LAMB moments hold the sum of the two
    replicas' gradients each clipped to norm 1 (as the reference's cross_replica_sum; a mean
    would make them half as large), and the weights follow the numpy LAMB step with that sum."""
    import dataclasses

    from tests.test_optimization import numpy_step

    config = _small_setup(tmp_path, jit_compile=jit_compile)
    result = tmp_path / "result.npz"
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_STEP, repr(dataclasses.asdict(config)), str(result)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = dict(np.load(result))
    names = [k.split("|", 1)[1] for k in got if k.startswith("init|")]
    assert len(names) == 32
    clipped = []
    for i in range(2):
        grads = {n: got[f"grad{i}|{n}"].astype(np.float64) for n in names}
        norm = np.sqrt(sum((g**2).sum() for g in grads.values()))
        assert norm > 1.5, norm  # clipping binds, so clip-then-sum differs from sum-then-clip
        clipped.append({n: g / max(norm, 1.0) for n, g in grads.items()})
    for n in names:
        g = clipped[0][n] + clipped[1][n]
        np.testing.assert_allclose(got[f"m|{n}"], 0.1 * g, rtol=2e-4, atol=1e-7, err_msg=n)
        np.testing.assert_allclose(got[f"v|{n}"], 0.001 * g**2, rtol=5e-4, atol=1e-10, err_msg=n)
        excluded = "LayerNorm" in n or "bias" in n
        w, _, _ = numpy_step(
            got[f"init|{n}"].astype(np.float64), g, 0.0, 0.0, 0.01, excluded, lamb=True
        )
        np.testing.assert_allclose(got[f"after|{n}"], w, rtol=1e-5, atol=1e-6, err_msg=n)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_eval_weighs_every_masked_position_alike(tmp_path):
    """Eval batches with 1, 6 and 3 masked positions per example: mlm_loss and mlm_accuracy are
    means over all 40 masked positions (the reference's weighted tf.metrics), checked in numpy
    from the model's logits, and differ from a mean of per-batch means."""
    from bioalbert_tf.training import pretraining

    counts = [1, 6, 3]
    config = _small_setup(
        tmp_path,
        n=12,
        predictions=lambda i: counts[i // 4],
        max_eval_steps=3,
        do_eval=True,
        jit_compile=False,
    )
    trainer = pretraining.Trainer(config, tf.distribute.get_strategy())
    rng = np.random.default_rng(0)
    bias = trainer.model.mlm_output_bias
    values = 3.0 * rng.standard_normal(bias.shape)  # confident, varied predictions
    ds = pretraining.make_dataset(list(config.input_file), 4, config, is_training=False)
    values[next(iter(ds.skip(1)))["masked_lm_ids"].numpy()[0, 0]] = 30.0  # some hits
    bias.assign(values.astype(np.float32))
    got = trainer.evaluate()
    nll, correct, weights, sop_nll, batch_means = [], [], [], [], []
    for batch in ds.take(3):
        out = trainer.model(batch, training=False)
        logp = _log_softmax(out["mlm_logits"].numpy().astype(np.float64))
        labels, w = batch["masked_lm_ids"].numpy(), batch["masked_lm_weights"].numpy()
        label_logp = np.take_along_axis(logp, labels[..., None], -1)[..., 0]
        nll.append(-label_logp[w > 0])
        correct.append((logp.argmax(-1) == labels)[w > 0])
        weights.append(w.sum())
        batch_means.append(-(label_logp * w).sum() / w.sum())
        sop = _log_softmax(out["sop_logits"].numpy().astype(np.float64))
        sop_nll.append(-np.take_along_axis(sop, batch["next_sentence_labels"].numpy(), -1)[:, 0])
    assert weights == [4.0, 24.0, 12.0]
    want = np.concatenate(nll).mean()
    assert got["mlm_loss"] == pytest.approx(want, rel=1e-5)
    assert got["mlm_accuracy"] == pytest.approx(np.concatenate(correct).mean(), abs=1e-6)
    assert got["mlm_accuracy"] > 0
    assert got["sop_loss"] == pytest.approx(np.concatenate(sop_nll).mean(), rel=1e-5)
    assert abs(want - np.mean(batch_means)) > 100 * 1e-5 * want  # the check tells them apart


@pytest.mark.slow
def test_xla_and_plain_steps_agree(tmp_path):
    """From the same initial weights and batches, XLA-compiled and plain training steps give the
    same losses over 4 steps and the same weights after them (so the same LAMB updates), within
    float32 round-off."""
    import dataclasses

    from bioalbert_tf import checkpoints
    from bioalbert_tf.training import pretraining

    config = _small_setup(tmp_path, n=32)
    runs = {}
    for jit in (True, False):
        c = dataclasses.replace(config, jit_compile=jit, output_dir=str(tmp_path / f"jit{jit}"))
        trainer = pretraining.Trainer(c, tf.distribute.get_strategy())
        # one device: the whole replica step, the LAMB update included, is one XLA computation
        assert getattr(trainer._replica_step, "_jit_compile", False) is jit
        weights = checkpoints.pretrainer_variable_map(trainer.model)
        initial = {n: v.numpy() for n, v in weights.items()}
        losses = [trainer.train_steps(1) for _ in range(4)]
        runs[jit] = initial, losses, {n: v.numpy() for n, v in weights.items()}
    (init_x, losses_x, after_x), (init_p, losses_p, after_p) = runs[True], runs[False]
    for n in init_x:
        np.testing.assert_array_equal(init_x[n], init_p[n], err_msg=n)
    for step, (x, p) in enumerate(zip(losses_x, losses_p, strict=True)):
        for k in ("loss", "mlm_loss", "sop_loss"):
            assert x[k] == pytest.approx(p[k], rel=1e-5), (step, k)
    assert losses_x[0]["loss"] != pytest.approx(losses_x[-1]["loss"], rel=1e-3)  # it trains
    for n in after_x:
        # every weight moved, but the key bias: a softmax ignores what adds the same to each score
        assert n.endswith("key/bias") or np.abs(after_x[n] - init_x[n]).max() > 1e-4, n
        np.testing.assert_allclose(after_x[n], after_p[n], rtol=1e-4, atol=1e-5, err_msg=n)


MIRRORED_EVAL = """
import dataclasses, json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from bioalbert_tf.training import pretraining

config = pretraining.PretrainingConfig(**eval(sys.argv[1]))
two = pretraining.Trainer(config, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
bias = np.random.default_rng(0).standard_normal(two.model.mlm_output_bias.shape)
two.model.mlm_output_bias.assign(3.0 * bias.astype(np.float32))  # losses that vary by position
one = pretraining.Trainer(dataclasses.replace(config, output_dir=config.output_dir + "1"),
                          tf.distribute.get_strategy())
for a, b in zip(one.model.weights, two.model.weights, strict=True):
    a.assign(b.numpy())
print(json.dumps({"two": two.evaluate(), "one": one.evaluate()}))
"""


def test_eval_over_two_replicas_gives_the_one_device_metrics(tmp_path):
    """Each step the first replica gets two examples with 1 masked position, the second two with
    6: the weighted metrics over the 12 examples are those of one device reading them four at a
    time (a mean of the replicas' means is not)."""
    import dataclasses
    import json

    config = _small_setup(
        tmp_path, n=12, predictions=lambda i: (1, 6)[i // 2 % 2], max_eval_steps=3, do_eval=True
    )
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED_EVAL, repr(dataclasses.asdict(config))],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for k in ("mlm_loss", "sop_loss", "mlm_accuracy", "sop_accuracy"):
        assert got["two"][k] == pytest.approx(got["one"][k], rel=1e-6), k
    assert got["one"]["mlm_loss"] > 1.0
