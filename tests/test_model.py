"""The Keras ALBERT: config, GELU, group assignment, sharing, losses, mixed precision."""

import json
import math

import numpy as np
import pytest

from bioalbert_tf.config import AlbertConfig, ConfigError
from tests.conftest import ROOT, small_config

keras = pytest.importorskip("keras")


def test_configs_round_trip_unchanged():
    for name in ("albert_base.json", "albert_large.json", "albert_tiny.json"):
        text = (ROOT / "configs" / name).read_text()
        config = AlbertConfig.from_json_file(str(ROOT / "configs" / name))
        assert json.loads(config.to_json_string()) == json.loads(text)
        assert list(json.loads(config.to_json_string())) == list(json.loads(text))  # key order kept


def test_unknown_keys_survive_a_round_trip():
    values = {
        "hidden_size": 16,
        "num_attention_heads": 4,
        "intermediate_size": 20,
        "layer_norm_eps": 1e-12,
    }
    config = AlbertConfig.from_dict(values)
    assert config.to_dict()["layer_norm_eps"] == 1e-12
    assert list(config.to_dict())[:4] == list(values)


def test_base_and_large_sizes_are_the_recipe():
    base = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_base.json"))
    large = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_large.json"))
    assert (
        base.hidden_size,
        base.num_hidden_layers,
        base.num_attention_heads,
        base.intermediate_size,
    ) == (768, 12, 12, 3072)
    assert (
        large.hidden_size,
        large.num_hidden_layers,
        large.num_attention_heads,
        large.intermediate_size,
    ) == (1024, 24, 16, 4096)
    assert base.embedding_size == large.embedding_size == 128 and base.vocab_size == 30000


@pytest.mark.parametrize(
    "values,message",
    [
        (
            {"hidden_size": 10, "num_attention_heads": 3},
            r"hidden_size \(10\) must be a multiple of num_attention_heads \(3\)",
        ),
        ({"hidden_act": "swish"}, r"hidden_act must be one of .* got 'swish'"),
        ({"num_hidden_layers": 0}, r"num_hidden_layers must be a positive integer, got 0"),
        ({"vocab_size": "30000"}, r"vocab_size must be a positive integer, got '30000'"),
        ({"num_hidden_groups": 13}, r"num_hidden_groups \(13\) exceeds num_hidden_layers \(12\)"),
        ({"hidden_dropout_prob": 1.5}, r"hidden_dropout_prob must be in \[0, 1\), got 1.5"),
    ],
)
def test_config_errors_name_field_and_value(values, message, tmp_path):
    path = tmp_path / "albert_config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=message) as e:
        AlbertConfig.from_json_file(str(path))
    assert str(path) in str(e.value)


def test_gelu_is_the_tanh_approximation():
    from bioalbert_tf.modeling.layers import gelu

    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0], np.float32)
    # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated in float64 by hand
    expected = [
        0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        for v in x.tolist()
    ]
    np.testing.assert_allclose(np.asarray(gelu(x)), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(gelu(np.float32(1.0))), 0.8411919906082768, rtol=1e-6)
    exact_erf = 0.5 * 1.0 * (1 + math.erf(1 / math.sqrt(2)))  # 0.8413447: the other GELU
    assert abs(float(np.asarray(gelu(np.float32(1.0)))) - exact_erf) > 1e-4


@pytest.mark.parametrize(
    "layers,groups,expected",
    [
        (12, 1, [0] * 12),
        (5, 2, [0, 0, 0, 1, 1]),
        (12, 5, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]),
        (4, 4, [0, 1, 2, 3]),
        (24, 2, [0] * 12 + [1] * 12),
    ],
)
def test_group_of_layer_golden(layers, groups, expected):
    config = AlbertConfig(
        num_hidden_layers=layers, num_hidden_groups=groups, hidden_size=12, num_attention_heads=3
    )
    assert [config.group_of_layer(i) for i in range(layers)] == expected


def test_encoder_runs_each_layer_through_its_group(monkeypatch):
    """Record which block each of the 5 layers runs: group_of_layer order, inner groups in
    sequence."""
    from bioalbert_tf.modeling import AlbertEncoder
    from bioalbert_tf.modeling.layers import AlbertBlock

    config = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json"))
    encoder = AlbertEncoder(config)
    calls = []
    original = AlbertBlock.call

    def spy(self, x, input_mask, training=False):
        calls.append(self.name)
        return original(self, x, input_mask, training=training)

    monkeypatch.setattr(AlbertBlock, "call", spy)
    encoder(
        {
            "input_ids": np.array([[2, 5, 3]]),
            "input_mask": np.ones((1, 3)),
            "segment_ids": np.zeros((1, 3)),
        }
    )
    groups = [0, 0, 0, 1, 1]
    assert calls == [f"group_{g}_inner_group_{j}" for g in groups for j in (0, 1)]


def test_parameters_are_shared_across_layers():
    from bioalbert_tf.modeling import AlbertEncoder

    base = AlbertConfig()
    twelve = AlbertEncoder(base).count_params()
    twenty_four = AlbertEncoder(AlbertConfig(num_hidden_layers=24)).count_params()
    assert twelve == twenty_four  # layers reuse their group's weights
    assert 11_000_000 < twelve < 12_000_000  # ALBERT-base: ~11.7M encoder parameters


def test_losses_match_numpy():
    from bioalbert_tf.modeling import pretraining_losses

    rng = np.random.default_rng(0)
    mlm_logits = rng.standard_normal((2, 4, 7)).astype(np.float32)
    sop_logits = rng.standard_normal((2, 2)).astype(np.float32)
    ids = np.array([[1, 6, 0, 0], [3, 2, 5, 0]])
    weights = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], np.float32)
    sop = np.array([[1], [0]])
    out = pretraining_losses(
        {"mlm_logits": mlm_logits, "sop_logits": sop_logits},
        {"masked_lm_ids": ids, "masked_lm_weights": weights, "next_sentence_labels": sop},
    )

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lp = log_softmax(mlm_logits.astype(np.float64))
    per = -np.take_along_axis(lp, ids[..., None], -1)[..., 0]
    mlm = (per * weights).sum() / (weights.sum() + 1e-5)
    sop_loss = -np.mean(np.take_along_axis(log_softmax(sop_logits.astype(np.float64)), sop, -1))
    np.testing.assert_allclose(float(out["mlm_loss"]), mlm, rtol=1e-5)
    np.testing.assert_allclose(float(out["sop_loss"]), sop_loss, rtol=1e-5)
    np.testing.assert_allclose(float(out["loss"]), mlm + sop_loss, rtol=1e-5)
    acc = ((mlm_logits.argmax(-1) == ids) * weights).sum() / (weights.sum() + 1e-5)
    np.testing.assert_allclose(float(out["mlm_accuracy"]), acc, rtol=1e-5)
    np.testing.assert_allclose(
        float(out["sop_accuracy"]), np.mean(sop_logits.argmax(-1) == sop[:, 0])
    )


def test_padding_does_not_change_real_positions():
    from bioalbert_tf.modeling import AlbertEncoder

    encoder = AlbertEncoder(AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")))
    ids = np.array([[2, 7, 8, 9, 3]])
    short = encoder(
        {"input_ids": ids, "input_mask": np.ones((1, 5)), "segment_ids": np.zeros((1, 5))}
    )
    padded = encoder(
        {
            "input_ids": np.array([[2, 7, 8, 9, 3, 0, 0, 0]]),
            "input_mask": np.array([[1] * 5 + [0] * 3]),
            "segment_ids": np.zeros((1, 8)),
        }
    )
    np.testing.assert_allclose(
        np.asarray(padded["sequence_output"])[:, :5],
        np.asarray(short["sequence_output"]),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        np.asarray(padded["pooled_output"]), np.asarray(short["pooled_output"]), atol=1e-6
    )


def test_mixed_bfloat16_runs_and_tracks_float32():
    from bioalbert_tf.modeling import AlbertPretrainer, pretraining_losses

    config = small_config()
    fp32 = AlbertPretrainer(config)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        bf16 = AlbertPretrainer(config)
    finally:
        keras.config.set_dtype_policy(previous)
    for a, b in zip(fp32.weights, bf16.weights, strict=True):
        assert b.dtype == "float32"
        b.assign(a)
    rng = np.random.default_rng(0)
    inputs = {
        "input_ids": rng.integers(5, 211, (2, 16)),
        "input_mask": np.ones((2, 16)),
        "segment_ids": np.zeros((2, 16)),
        "masked_lm_positions": np.array([[1, 3], [2, 5]]),
    }
    out16, out32 = bf16(inputs), fp32(inputs)
    assert out16["mlm_logits"].dtype == "float32" and out16["sequence_output"].dtype == "bfloat16"
    feats = {
        "masked_lm_ids": np.array([[7, 8], [9, 10]]),
        "masked_lm_weights": np.ones((2, 2)),
        "next_sentence_labels": np.array([[0], [1]]),
    }
    l16, l32 = (
        float(pretraining_losses(out16, feats)["loss"]),
        float(pretraining_losses(out32, feats)["loss"]),
    )
    assert math.isfinite(l16) and abs(l16 - l32) < 0.05 * abs(l32)
    np.testing.assert_allclose(
        np.asarray(out16["sop_logits"]), np.asarray(out32["sop_logits"]), atol=0.1
    )
