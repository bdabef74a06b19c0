"""What the pretraining tests share: TFRecords built from the MEDLINE sample with a tiny config
(the `data` fixture: a few seconds, so each module that uses it builds its own), run_pretraining's
command line on them, and the same run as a PretrainingConfig run in this process."""

import json
import sys

import pytest

from tests.conftest import ROOT

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module", name="data")
def pretraining_data(small_text_corpus, tiny_spm, tmp_path_factory):
    """TFRecords at seq 64 from the MEDLINE sample, and a tiny config with the vocabulary's size."""
    from bioalbert_tf.config import AlbertConfig
    from tfrecords_builder import pipeline

    folder = tmp_path_factory.mktemp("pretraining_data")
    pipeline.run(
        pipeline.BuildConfig(
            input_files=(str(small_text_corpus),),
            output_dir=str(folder / "tfrecords"),
            spm_model_file=tiny_spm,
            max_seq_length=64,
            max_predictions_per_seq=10,
            dupe_factor=1,
            num_shards=2,
        ),
        ["--direct_num_workers=1"],
    )
    values = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")).to_dict()
    values["vocab_size"] = 1000
    (folder / "albert_config.json").write_text(json.dumps(values))
    return folder


def _cmd(data, out, *extra):
    return [
        sys.executable,
        "-m",
        "bioalbert_tf.run_pretraining",
        f"--input_file={data}/tfrecords/*.tfrecord",
        f"--output_dir={out}",
        f"--albert_config_file={data}/albert_config.json",
        "--train_batch_size=8",
        "--max_seq_length=64",
        "--max_predictions_per_seq=10",
        "--learning_rate=0.005",
        "--num_warmup_steps=3",
        *extra,
    ]


def _config(data, out, **kw):
    from bioalbert_tf.training.pretraining import PretrainingConfig

    settings = dict(
        input_file=(f"{data}/tfrecords/*.tfrecord",),
        output_dir=str(out),
        albert_config_file=f"{data}/albert_config.json",
        train_batch_size=8,
        max_seq_length=64,
        max_predictions_per_seq=10,
        learning_rate=0.005,
        num_warmup_steps=1,
        num_train_steps=4,
        save_checkpoints_steps=2,
        iterations_per_loop=1,
        jit_compile=False,
    )
    return PretrainingConfig(**{**settings, **kw})


def _pretrain(config):
    from bioalbert_tf.training import pretraining

    return pretraining.run(config, tf.distribute.get_strategy())
