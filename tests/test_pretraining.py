"""run_pretraining end to end at tiny size: training, eval/best, TF1 init and export, resumption
after SIGKILL with identical weights, and clear failures."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.tf1_names import write_random_tf1_checkpoint

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def data(small_text_corpus, tiny_spm, tmp_path_factory):
    """TFRecords at seq 64 from the MEDLINE sample, and a tiny config with the vocabulary's size."""
    from bioalbert_tf.config import AlbertConfig
    from tfrecords_builder import pipeline

    folder = tmp_path_factory.mktemp("pretraining_data")
    pipeline.run(
        pipeline.BuildConfig(input_files=(str(small_text_corpus),), output_dir=str(folder / "tfrecords"), spm_model_file=tiny_spm,
                             max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1, num_shards=2),
        ["--direct_num_workers=1"],
    )  # fmt: skip
    values = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")).to_dict()
    values["vocab_size"] = 1000
    (folder / "albert_config.json").write_text(json.dumps(values))
    return folder


def _cmd(data, out, *extra):
    return [
        sys.executable, "-m", "bioalbert_tf.run_pretraining", f"--input_file={data}/tfrecords/*.tfrecord",
        f"--output_dir={out}", f"--albert_config_file={data}/albert_config.json", "--train_batch_size=8",
        "--max_seq_length=64", "--max_predictions_per_seq=10", "--learning_rate=0.005", "--num_warmup_steps=3",
        *extra,
    ]  # fmt: skip


def _run(cmd, timeout=600):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _model_weights(prefix) -> dict:
    """The pretrainer's weights in a training checkpoint, by TF1 name (restored by object graph)."""
    from bioalbert_tf import checkpoints
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.modeling import AlbertPretrainer

    folder = os.path.dirname(prefix)
    model = AlbertPretrainer(
        AlbertConfig.from_json_file(os.path.join(folder, "albert_config.json"))
    )
    checkpoints.load_keras_checkpoint(model, prefix)
    return {n: v.numpy() for n, v in checkpoints.pretrainer_variable_map(model).items()}


def test_sigkill_and_restart_gives_the_same_weights(data, tmp_path):
    steps = ["--num_train_steps=24", "--save_checkpoints_steps=6", "--iterations_per_loop=3"]
    clean = tmp_path / "clean"
    _run(_cmd(data, clean, *steps))
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(data, killed, *steps), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while not (killed / "ckpt-6.index").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # preemption: no cleanup
    assert proc.wait() == -signal.SIGKILL
    assert not (killed / "ckpt-24.index").exists()
    resumed = _run(_cmd(data, killed, *steps))
    assert "resumed from" in resumed.stderr
    a, b = _model_weights(str(clean / "ckpt-24")), _model_weights(str(killed / "ckpt-24"))
    assert a.keys() == b.keys() and len(a) == 80
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name
    assert (
        tf.train.load_variable(
            str(killed / "ckpt-24"), "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
        )
        == 24
    )


def test_eval_keeps_the_best_and_exports_tf1(data, tmp_path):
    out = tmp_path / "run"
    proc = _run(_cmd(data, out, "--num_train_steps=8", "--save_checkpoints_steps=4", "--iterations_per_loop=4",
                     "--do_eval", "--max_eval_steps=2", "--export_tf1"))  # fmt: skip
    assert "mlm_acc" in proc.stderr and "examples/s" in proc.stderr  # progress in the console
    best = json.loads((out / "best_eval.json").read_text())
    assert best["global_step"] in (4, 8) and 0.0 <= best["mlm_accuracy"] <= 1.0
    assert {"eval_results-4.json", "eval_results-8.json"} <= {p.name for p in out.iterdir()}
    assert tf.train.latest_checkpoint(str(out)).endswith("ckpt-8")
    names = dict(tf.train.list_variables(str(out / "tf1" / "model.ckpt-8")))
    assert names["bert/embeddings/word_embeddings"] == [1000, 5] and "global_step" in names
    assert (out / "tf1" / "model.ckpt-best.index").exists()
    events = list((out / "train").glob("events.out.tfevents.*"))
    assert events  # TensorBoard summaries
    from bioalbert_tf import checkpoints
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.modeling import AlbertPretrainer

    model = AlbertPretrainer(AlbertConfig.from_json_file(str(out / "albert_config.json")))
    assert checkpoints.load_init_checkpoint(model, str(out / "model.ckpt-best")) == "keras"


def test_starts_from_a_tf1_checkpoint(data, tmp_path):
    from bioalbert_tf.config import AlbertConfig

    config = AlbertConfig.from_json_file(str(data / "albert_config.json"))
    values = write_random_tf1_checkpoint(config, str(tmp_path / "google" / "model.ckpt-best"))
    out = tmp_path / "run"
    # learning rate 0: the weights after training are the imported ones
    _run(_cmd(data, out, "--num_train_steps=2", "--iterations_per_loop=2", f"--init_checkpoint={tmp_path}/google",
              "--learning_rate=0"))  # fmt: skip
    got = _model_weights(str(out / "ckpt-2"))
    for name, value in values.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_unreachable_tpu_fails_within_bounded_time(data, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    proc = subprocess.run(_cmd(data, tmp_path, f"--tpu=grpc://127.0.0.1:{port}", "--tpu_connect_timeout=5"),
                          capture_output=True, text=True, timeout=180, cwd=ROOT)  # fmt: skip
    assert proc.returncode != 0
    assert time.time() - start < 120
    assert f"--tpu='grpc://127.0.0.1:{port}'" in proc.stderr


def test_bad_batch_and_missing_input_are_named(data, tmp_path):
    proc = subprocess.run(
        _cmd(data, tmp_path, "--num_train_steps=1", "--max_seq_length=128"),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (
        proc.returncode == 1
        and "--max_seq_length=128 exceeds max_position_embeddings=64" in proc.stderr
    )
    cmd = _cmd(data, tmp_path, "--num_train_steps=1")
    cmd[3] = f"--input_file={tmp_path}/none-*.tfrecord"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "no TFRecord files match" in proc.stderr
