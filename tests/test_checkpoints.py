"""TF1 <-> Keras checkpoints: the published BioALBERT index, round trips, errors, auto-detection."""

import subprocess
import sys

import numpy as np
import pytest

from bioalbert_tf import checkpoints
from bioalbert_tf.config import AlbertConfig
from tests.conftest import ROOT, SHARED_DATA
from tests.tf1_names import tf1_pretraining_shapes, write_random_tf1_checkpoint

tf = pytest.importorskip("tensorflow")
TINY = str(ROOT / "configs" / "albert_tiny.json")


def _tiny():
    return AlbertConfig.from_json_file(TINY)


def _pretrainer(config):
    from bioalbert_tf.modeling import AlbertPretrainer

    return AlbertPretrainer(config)


def test_published_bioalbert_checkpoint_maps_completely():
    index = SHARED_DATA / "checkpoints" / "bioalbert-1.0.1-pubmed-base" / "model.ckpt-best.index"
    if not index.exists():
        pytest.skip(f"{index} not present (../shared/data)")
    published = dict(tf.train.list_variables(str(index)[: -len(".index")]))
    model = _pretrainer(AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_base.json")))
    mapping = checkpoints.pretrainer_variable_map(model)
    weights = {n: s for n, s in published.items() if not checkpoints.is_ignored(n)}
    assert len(published) == 97 and len(weights) == 32  # + 64 adam slots + global_step
    assert set(weights) == set(mapping)
    for name, shape in weights.items():
        assert list(mapping[name].shape) == shape, name
    assert {id(v) for v in mapping.values()} == {id(v) for v in model.weights}  # every weight, once


def test_map_matches_the_recipe_names_for_groups_and_inner_groups():
    config = _tiny()  # 2 groups x 2 inner groups
    mapping = checkpoints.pretrainer_variable_map(_pretrainer(config))
    expected = tf1_pretraining_shapes(config)
    assert {n: tuple(v.shape) for n, v in mapping.items()} == expected


def test_round_trip_tf1_keras_tf1_is_bitwise(tmp_path):
    config = _tiny()
    src = str(tmp_path / "tf1" / "model.ckpt-best")
    values = write_random_tf1_checkpoint(config, src)
    model = _pretrainer(config)
    report = checkpoints.load_tf1_checkpoint(model, src)
    assert (report.loaded, report.ignored, report.global_step) == (
        len(values),
        2 * len(values) + 1,
        1234,
    )
    checkpoints.save_keras_checkpoint(model, str(tmp_path / "ours"), report.global_step)
    again = _pretrainer(config)
    assert checkpoints.load_init_checkpoint(again, str(tmp_path / "ours")) == "keras"
    out = str(tmp_path / "back" / "model.ckpt-best")
    checkpoints.save_tf1_checkpoint(again, out, global_step=1234)
    reader = tf.train.load_checkpoint(out)
    for name, value in values.items():
        got = reader.get_tensor(name)
        assert got.dtype == value.dtype and got.tobytes() == value.tobytes(), name
    assert reader.get_tensor("global_step") == 1234
    assert tf.train.latest_checkpoint(str(tmp_path / "back")) == out


def test_equal_widths_have_no_projection_and_round_trip(tmp_path):
    """embedding_size == hidden_size: no embedding_hidden_mapping_in (as the reference's
    transformer_model), in the model and in the TF1 checkpoints it reads and writes."""
    from tests.conftest import small_config

    config = small_config(embedding_size=48, hidden_size=48)
    model = _pretrainer(config)
    assert model.encoder.embedding_hidden_mapping_in is None
    assert not any("embedding_hidden_mapping_in" in v.path for v in model.weights)
    mapping = checkpoints.pretrainer_variable_map(model)
    assert {n: tuple(v.shape) for n, v in mapping.items()} == tf1_pretraining_shapes(config)
    assert {id(v) for v in mapping.values()} == {id(v) for v in model.weights}
    src = str(tmp_path / "tf1" / "model.ckpt-1")
    values = write_random_tf1_checkpoint(config, src)
    assert len(values) == 30 and not any("mapping" in n for n in values)
    assert checkpoints.load_tf1_checkpoint(model, src).loaded == 30
    checkpoints.save_keras_checkpoint(model, str(tmp_path / "ours"))
    again = _pretrainer(config)
    assert checkpoints.load_init_checkpoint(again, str(tmp_path / "ours")) == "keras"
    out = str(tmp_path / "back" / "model.ckpt-1")
    checkpoints.save_tf1_checkpoint(again, out)
    reader = tf.train.load_checkpoint(out)
    assert set(reader.get_variable_to_shape_map()) == set(values)
    for name, value in values.items():
        assert reader.get_tensor(name).tobytes() == value.tobytes(), name
    # A checkpoint with a projection does not fit a model without one: the variable is named.
    wide = str(tmp_path / "wide" / "model.ckpt-1")
    tf.io.gfile.makedirs(str(tmp_path / "wide"))
    extra = {
        **values,
        "bert/encoder/embedding_hidden_mapping_in/kernel": np.eye(48, dtype=np.float32),
    }
    tf.raw_ops.SaveV2(
        prefix=wide,
        tensor_names=sorted(extra),
        shape_and_slices=[""] * len(extra),
        tensors=[extra[n] for n in sorted(extra)],
    )
    with pytest.raises(
        checkpoints.CheckpointMismatchError,
        match=(
            r"unknown to the model:\n  "
            r"bert/encoder/embedding_hidden_mapping_in/kernel \[48, 48\]"
        ),
    ):
        checkpoints.load_tf1_checkpoint(_pretrainer(config), wide)


def test_cli_round_trip(tmp_path):
    config = _tiny()
    src = tmp_path / "google" / "model.ckpt-best"
    values = write_random_tf1_checkpoint(config, str(src))
    (tmp_path / "google" / "albert_config.json").write_text(config.to_json_string())
    run = [sys.executable, "-m", "bioalbert_tf.convert_checkpoint"]
    a = subprocess.run(
        run + [f"--tf1_checkpoint={src}", f"--output_dir={tmp_path}/ours"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert a.returncode == 0, a.stderr[-2000:]
    assert '"ignored_optimizer_and_step": 161' in a.stdout and '"global_step": 1234' in a.stdout
    b = subprocess.run(
        run
        + [
            "--to_tf1",
            f"--keras_checkpoint={tmp_path}/ours",
            f"--output_tf1={tmp_path}/back/model.ckpt-best",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert b.returncode == 0, b.stderr[-2000:]
    reader = tf.train.load_checkpoint(f"{tmp_path}/back/model.ckpt-best")
    assert all(reader.get_tensor(n).tobytes() == v.tobytes() for n, v in values.items())
    assert AlbertConfig.from_json_file(f"{tmp_path}/back/albert_config.json") == config


def test_mismatches_are_listed_with_both_shapes(tmp_path):
    config = _tiny()
    src = str(tmp_path / "model.ckpt")
    values = write_random_tf1_checkpoint(config, src, with_optimizer_slots=False)
    del values["bert/pooler/dense/bias"]  # missing
    values["bert/encoder/embedding_hidden_mapping_in/kernel"] = np.zeros(
        (5, 13), np.float32
    )  # mis-shaped
    values["bert/encoder/transformer/group_7/inner_group_0/LayerNorm/beta"] = np.zeros(
        (12,), np.float32
    )  # unknown
    names = sorted(values)
    tf.raw_ops.SaveV2(
        prefix=src,
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[values[n] for n in names],
    )
    with pytest.raises(checkpoints.CheckpointMismatchError) as e:
        checkpoints.load_tf1_checkpoint(_pretrainer(config), src)
    msg = str(e.value)
    assert (
        "bert/encoder/embedding_hidden_mapping_in/kernel: checkpoint [5, 13], model expects [5, 12]"
        in msg
    )
    assert "1 missing from the checkpoint:\n  bert/pooler/dense/bias [12]" in msg
    assert (
        "1 unknown to the model:\n"
        "  bert/encoder/transformer/group_7/inner_group_0/LayerNorm/beta [12]" in msg
    )


def test_config_with_other_sizes_is_refused(tmp_path):
    src = str(tmp_path / "model.ckpt")
    write_random_tf1_checkpoint(_tiny(), src)
    bigger = AlbertConfig.from_dict({**_tiny().to_dict(), "num_hidden_groups": 3})
    with pytest.raises(
        checkpoints.CheckpointMismatchError,
        match=r"missing from the checkpoint:\n  bert/encoder/transformer/group_2/",
    ):
        checkpoints.load_tf1_checkpoint(_pretrainer(bigger), src)


def test_encoder_loads_from_a_pretraining_checkpoint_of_either_kind(tmp_path):
    from bioalbert_tf.modeling import AlbertEncoder

    config = _tiny()
    src = str(tmp_path / "tf1" / "model.ckpt-best")
    values = write_random_tf1_checkpoint(config, src)
    encoder = AlbertEncoder(config)
    report = checkpoints.load_tf1_checkpoint(encoder, src)
    assert report.unused == 7  # the cls/ heads
    np.testing.assert_array_equal(
        encoder.embeddings.word_embeddings.numpy(), values["bert/embeddings/word_embeddings"]
    )
    pre = _pretrainer(config)
    checkpoints.load_tf1_checkpoint(pre, src)
    checkpoints.save_keras_checkpoint(pre, str(tmp_path / "ours"))
    encoder2 = AlbertEncoder(config)
    assert checkpoints.load_init_checkpoint(encoder2, str(tmp_path / "ours")) == "keras"
    assert (
        checkpoints.load_init_checkpoint(AlbertEncoder(config), str(tmp_path / "tf1")) == "tf1"
    )  # folder
    for a, b in zip(encoder.weights, encoder2.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nothing/model.ckpt"):
        checkpoints.load_init_checkpoint(
            _pretrainer(_tiny()), str(tmp_path / "nothing" / "model.ckpt")
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="folder holds no checkpoint"):
        checkpoints.load_init_checkpoint(_pretrainer(_tiny()), str(tmp_path / "empty"))


def test_missing_data_file_is_named(tmp_path):
    prefix = tmp_path / "google" / "model.ckpt-best"
    write_random_tf1_checkpoint(_tiny(), str(prefix))
    (tmp_path / "google" / "model.ckpt-best.data-00000-of-00001").unlink()
    for path in (str(prefix), str(tmp_path / "google")):
        with pytest.raises(FileNotFoundError, match=r"model\.ckpt-best\.data-00000-of-00001"):
            checkpoints.load_init_checkpoint(_pretrainer(_tiny()), path)


def test_cli_replaces_a_conversion_only_with_overwrite_and_never_a_run(tmp_path):
    config = _tiny()
    src = tmp_path / "google" / "model.ckpt-best"
    write_random_tf1_checkpoint(config, str(src))
    run = [
        sys.executable,
        "-m",
        "bioalbert_tf.convert_checkpoint",
        f"--tf1_checkpoint={src}",
        f"--albert_config_file={TINY}",
        f"--output_dir={tmp_path}/pretraining",
    ]
    folder = tmp_path / "pretraining"  # an earlier conversion's folder
    folder.mkdir()
    (folder / "checkpoint").write_text('model_checkpoint_path: "ckpt-200"\n')
    (folder / "albert_config.json").write_text('{"vocab_size": 30000}')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    proc = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert f"{folder}/checkpoint" in proc.stderr and f"{folder}/albert_config.json" in proc.stderr
    assert "--overwrite" in proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # A pretraining run's folder (its settings and metrics beside the checkpoint) is refused
    # even with --overwrite: replacing its checkpoint would end its resumption.
    (folder / "run_settings.json").write_text("{}")
    (folder / "train_metrics.jsonl").write_text("")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    proc = subprocess.run(run + ["--overwrite"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "holds another kind of run" in proc.stderr
    assert f"{folder}/run_settings.json" in proc.stderr and "even with --overwrite" in proc.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    (folder / "run_settings.json").unlink()
    (folder / "train_metrics.jsonl").unlink()
    proc = subprocess.run(run + ["--overwrite"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert AlbertConfig.from_json_file(str(folder / "albert_config.json")) == config
    assert not (folder / ".lock").exists()


def test_cli_refuses_a_non_empty_keras_hub_preset_folder_without_overwrite(tmp_path):
    src = tmp_path / "google" / "model.ckpt-best"
    write_random_tf1_checkpoint(_tiny(), str(src))
    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "config.json").write_text("{}")  # another model's preset
    run = [
        sys.executable,
        "-m",
        "bioalbert_tf.convert_checkpoint",
        f"--tf1_checkpoint={src}",
        f"--albert_config_file={TINY}",
        f"--output_dir={tmp_path}/converted",
        f"--keras_hub_preset_dir={preset}",
    ]
    proc = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert f"{preset} (a non-empty folder)" in proc.stderr and "--overwrite" in proc.stderr
    assert [p.name for p in preset.iterdir()] == ["config.json"]
    assert not (tmp_path / "converted").exists()
