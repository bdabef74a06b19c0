"""ALBERT's LAMB / AdamW against a numpy transcription of the formulas, and the schedule."""

import numpy as np
import pytest

from bioalbert_tf.training import optimization

keras = pytest.importorskip("keras")


def numpy_step(w, g, m, v, lr, excluded, lamb, b1=0.9, b2=0.999, eps=1e-6, wd=0.01):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    update = m / (np.sqrt(v) + eps)
    if not excluded:
        update = update + wd * w
    ratio = 1.0
    if lamb and not excluded:
        w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
        ratio = w_norm / u_norm if (w_norm > 0 and u_norm > 0) else 1.0
    return w - ratio * lr * update, m, v


@pytest.mark.parametrize("lamb", [True, False])
def test_matches_numpy_over_several_steps(lamb):
    rng = np.random.default_rng(0)
    names = {
        "dense_kernel": (4, 3),  # decayed, adapted
        "dense_bias": (3,),  # excluded
        "LayerNorm_gamma": (3,),  # excluded
        "zero_init_kernel": (2, 2),  # ||w|| = 0: trust ratio 1
    }
    initial = {n: rng.standard_normal(s).astype(np.float32) for n, s in names.items()}
    initial["zero_init_kernel"][:] = 0.0
    variables = [keras.Variable(initial[n], name=n) for n in names]
    paths = list(names)
    schedule = optimization.AlbertWarmupPolynomialDecay(
        0.01, num_train_steps=10, num_warmup_steps=3
    )
    opt = (optimization.lamb if lamb else optimization.adamw)(schedule)
    ref = {n: (initial[n].astype(np.float64), 0.0, 0.0) for n in names}
    for step in range(6):
        grads = {n: rng.standard_normal(s).astype(np.float32) for n, s in names.items()}
        grads["dense_bias"] *= 0.0 if step == 2 else 1.0  # a zero gradient once
        opt.apply_gradients(
            [
                (keras.ops.convert_to_tensor(grads[n]), var)
                for n, var in zip(paths, variables, strict=True)
            ]
        )
        lr = 0.01 * step / 3 if step < 3 else 0.01 * (1 - step / 10)
        for n in names:
            w, m, v = ref[n]
            ref[n] = numpy_step(
                w,
                grads[n].astype(np.float64),
                m,
                v,
                lr,
                excluded=("bias" in n or "LayerNorm" in n),
                lamb=lamb,
            )
        for n, var in zip(paths, variables, strict=True):
            np.testing.assert_allclose(
                var.numpy(), ref[n][0], rtol=2e-5, atol=1e-7, err_msg=f"{n} step {step}"
            )
    assert not np.allclose(variables[0].numpy(), initial["dense_kernel"])
    assert np.allclose(variables[3].numpy(), ref["zero_init_kernel"][0])


def test_schedule_breakpoints():
    s = optimization.AlbertWarmupPolynomialDecay(
        0.00176, num_train_steps=200_000, num_warmup_steps=3125
    )
    at = lambda step: float(s(step))  # noqa: E731
    assert at(0) == 0.0
    np.testing.assert_allclose(at(1), 0.00176 / 3125, rtol=1e-6)
    np.testing.assert_allclose(at(3124), 0.00176 * 3124 / 3125, rtol=1e-6)
    np.testing.assert_allclose(
        at(3125), 0.00176 * (1 - 3125 / 200_000), rtol=1e-6
    )  # decay counted from step 0
    np.testing.assert_allclose(at(100_000), 0.00088, rtol=1e-5)
    assert at(200_000) == 0.0 and at(250_000) == 0.0
    squared = optimization.AlbertWarmupPolynomialDecay(1.0, 100, 0, power=2.0)
    np.testing.assert_allclose(float(squared(50)), 0.25, rtol=1e-6)


def test_exclusions_are_the_reference_ones_on_our_model():
    """Exactly the variables whose TF1 names contain LayerNorm or bias are excluded."""
    from bioalbert_tf import checkpoints
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.modeling import AlbertPretrainer
    from tests.conftest import ROOT

    model = AlbertPretrainer(
        AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json"))
    )
    opt = optimization.lamb(0.001)
    for name, var in checkpoints.pretrainer_variable_map(model).items():
        assert opt.excluded(var) == ("LayerNorm" in name or "bias" in name), (name, var.path)


def test_fine_tuning_adamw_clips_a_large_gradient_to_global_norm_one():
    """The reference clips every gradient to global norm 1.0 before AdamW. An embedding-style
    sparse gradient (row 1 listed twice) counts with its rows summed, as a dense gradient would."""
    import tensorflow as tf

    from bioalbert_tf.training.finetuning import FinetuningConfig, make_optimizer

    rng = np.random.default_rng(1)
    w0 = {"kernel": rng.standard_normal((3, 2)), "embeddings": rng.standard_normal((4, 2))}
    variables = {n: keras.Variable(v.astype(np.float32), name=n) for n, v in w0.items()}
    g_kernel = 40.0 * rng.standard_normal((3, 2))
    rows, values = np.array([1, 3, 1]), 30.0 * rng.standard_normal((3, 2))
    g_embed = np.zeros((4, 2))
    np.add.at(g_embed, rows, values)
    sparse = tf.IndexedSlices(
        tf.constant(values, tf.float32), tf.constant(rows), tf.constant([4, 2])
    )
    config = FinetuningConfig(
        "gad", "-", "-", "-", "-", learning_rate=0.1, num_train_steps=10, num_warmup_steps=0
    )
    opt = make_optimizer(config)
    assert opt.global_clipnorm == optimization.CLIP_NORM == 1.0
    # Step 1: norm > 50, clipped to 1. Step 2: norm 0.5, left alone. Adam's moments mix the two,
    # so the result depends on the clipping (a single Adam step would hide it: m / sqrt(v)).
    small = {
        "kernel": 0.01 * rng.standard_normal((3, 2)),
        "embeddings": 0.01 * rng.standard_normal((4, 2)),
    }
    scale = 0.5 / np.sqrt(sum((v**2).sum() for v in small.values()))
    small = {n: v * scale for n, v in small.items()}
    norm = np.sqrt((g_kernel**2).sum() + (g_embed**2).sum())
    assert norm > 50
    opt.apply_gradients(
        [
            (tf.constant(g_kernel, tf.float32), variables["kernel"]),
            (sparse, variables["embeddings"]),
        ]
    )
    opt.apply_gradients([(tf.constant(small[n], tf.float32), variables[n]) for n in variables])
    for name, g in (("kernel", g_kernel), ("embeddings", g_embed)):
        w, m, v = numpy_step(w0[name], g / norm, 0.0, 0.0, lr=0.1, excluded=False, lamb=False)
        w, _, _ = numpy_step(w, small[name], m, v, lr=0.1 * 0.9, excluded=False, lamb=False)
        np.testing.assert_allclose(np.asarray(variables[name]), w, rtol=1e-5, atol=1e-6)
