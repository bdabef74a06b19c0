"""run_pretraining end to end at tiny size: training, eval/best, TF1 init and export, resumption
after SIGKILL with identical weights, and clear failures."""

import json
import os
import re
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
    proc = _run(
        _cmd(
            data,
            out,
            "--num_train_steps=8",
            "--save_checkpoints_steps=4",
            "--iterations_per_loop=4",
            "--do_eval",
            "--max_eval_steps=2",
            "--export_tf1",
            "--jit_compile",
        )
    )
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
    # eval only: the weights kept as model.ckpt-best are the imported ones
    _run(
        _cmd(
            data,
            out,
            "--nodo_train",
            "--do_eval",
            "--max_eval_steps=1",
            f"--init_checkpoint={tmp_path}/google",
        )
    )
    got = _model_weights(str(out / "model.ckpt-best"))
    for name, value in values.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_unreachable_tpu_fails_within_bounded_time(data, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    proc = subprocess.run(
        _cmd(data, tmp_path, f"--tpu=grpc://127.0.0.1:{port}", "--tpu_connect_timeout=5"),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert time.time() - start < 120
    assert f"--tpu='grpc://127.0.0.1:{port}'" in proc.stderr


def test_bad_batch_and_missing_input_are_named(data, tmp_path):
    proc = subprocess.run(
        _cmd(data, tmp_path, "--num_train_steps=1", "--num_warmup_steps=0", "--max_seq_length=128"),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (
        proc.returncode == 1
        and "--max_seq_length=128 exceeds max_position_embeddings=64" in proc.stderr
    )
    cmd = _cmd(data, tmp_path, "--num_train_steps=1", "--num_warmup_steps=0")
    cmd[3] = f"--input_file={tmp_path}/none-*.tfrecord"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "no TFRecord files match" in proc.stderr


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


@pytest.fixture(scope="module")
def four_steps(data, tmp_path_factory):
    """A finished 4-step run (checkpoints at 2 and 4, one metrics line per step)."""
    out = tmp_path_factory.mktemp("four_steps") / "run"
    _pretrain(_config(data, out))
    return out


def _files(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resuming_with_other_settings_is_refused_before_anything_is_written(
    data, four_steps, tmp_path
):
    import shutil

    from bioalbert_tf.manifest import SettingsMismatchError

    out = tmp_path / "run"
    shutil.copytree(four_steps, out)
    values = json.loads((data / "albert_config.json").read_text())
    (tmp_path / "other_config.json").write_text(json.dumps({**values, "num_hidden_layers": 3}))
    before = _files(out)
    with pytest.raises(SettingsMismatchError) as e:
        _pretrain(
            _config(
                data,
                out,
                train_batch_size=16,
                num_train_steps=6,
                albert_config_file=str(tmp_path / "other_config.json"),
            )
        )
    message = str(e.value)
    assert "ckpt-4" in message and "2 differ" in message
    assert f"--train_batch_size: 8 in {out}/run_settings.json, 16 now" in message
    assert "albert_config.json num_hidden_layers: 5 in" in message and "3 in " in message
    assert _files(out) == before  # albert_config.json, checkpoints, metrics untouched
    # A longer run with the same settings resumes (extending a run is allowed).
    result = _pretrain(_config(data, out, num_train_steps=6))
    assert result["step"] == 6


def test_resuming_on_other_input_files_or_replicas_is_refused(data, four_steps, tmp_path):
    """run_settings.json records each input and eval file's name and size and the replica count;
    another file set, a file of another size, other eval files or another replica count is
    refused before anything is written. The same files in another folder resume (compared by
    name and size, not path)."""
    import shutil

    from bioalbert_tf.manifest import SettingsMismatchError

    out = tmp_path / "run"
    shutil.copytree(four_steps, out)
    settings_file = out / "run_settings.json"
    recorded = json.loads(settings_file.read_text())
    shards = sorted((data / "tfrecords").glob("*.tfrecord"))
    sizes = [p.stat().st_size for p in shards]
    assert recorded["input_files"] == [[p.name, n] for p, n in zip(shards, sizes, strict=True)]
    assert recorded["num_replicas_in_sync"] == 1
    before = _files(out)
    with pytest.raises(SettingsMismatchError) as e:  # one shard of the two
        _pretrain(_config(data, out, num_train_steps=6, input_file=(str(shards[0]),)))
    assert (
        f"  --input_file: 2 file(s) in {settings_file}, 1 now; recorded but not given now: "
        f"{shards[1].name} ({sizes[1]} bytes)\n"
    ) in str(e.value)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(shards[0], other / shards[0].name)
    (other / shards[1].name).write_bytes(shards[1].read_bytes()[:-100])  # rebuilt, another size
    with pytest.raises(SettingsMismatchError) as e:
        _pretrain(_config(data, out, num_train_steps=6, input_file=(f"{other}/*.tfrecord",)))
    assert (
        f"recorded but not given now: {shards[1].name} ({sizes[1]} bytes); given now but not "
        f"recorded: {shards[1].name} ({sizes[1] - 100} bytes)"
    ) in str(e.value)
    assert _files(out) == before
    # Recorded without --eval_input_file (eval would use the input files), resumed with one.
    assert recorded["eval_input_files"] == []
    with pytest.raises(SettingsMismatchError) as e:
        _pretrain(
            _config(
                data,
                out,
                num_train_steps=6,
                do_eval=True,
                max_eval_steps=1,
                eval_input_file=(str(shards[0]),),
            )
        )
    assert (
        f"  --eval_input_file: 0 file(s) in {settings_file}, 1 now; given now but not "
        f"recorded: {shards[0].name} ({sizes[0]} bytes)\n"
    ) in str(e.value)
    assert "1 differ" in str(e.value)
    assert _files(out) == before
    # Recorded by a run on 2 replicas (MirroredStrategy), resumed on 1.
    settings_file.write_text(json.dumps({**recorded, "num_replicas_in_sync": 2}))
    before = _files(out)
    with pytest.raises(SettingsMismatchError) as e:
        _pretrain(_config(data, out, num_train_steps=6))
    assert f"  replicas in sync: 2 in {settings_file}, 1 now" in str(e.value)
    assert "1 differ" in str(e.value) and "the same number of replicas" in str(e.value)
    assert _files(out) == before
    # The same shards copied elsewhere (as to a bucket) resume.
    settings_file.write_text(json.dumps(recorded))
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in shards:
        shutil.copy(p, moved / p.name)
    result = _pretrain(_config(data, out, num_train_steps=6, input_file=(f"{moved}/*.tfrecord",)))
    assert result["step"] == 6


def test_each_logged_learning_rate_is_the_one_its_last_update_used(data, tmp_path):
    # lr 0.005, warm-up 1, 4 steps: the reference's update k (global_step k before it) uses
    # 0.005 * k / 1 while k < 1, else 0.005 * (1 - k / 4). A loop of 2 steps logs its mean
    # metrics at steps 2 and 4, after updates 1 and 3.
    out = tmp_path / "run"
    _pretrain(_config(data, out, iterations_per_loop=2))
    logged = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [2, 4]
    np.testing.assert_allclose([m["learning_rate"] for m in logged], [0.00375, 0.00125], rtol=1e-6)


def test_resume_drops_metrics_logged_after_the_checkpoint(data, four_steps, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(four_steps, out)
    # As if killed after logging steps 3-5 but before saving ckpt-4: the newest checkpoint is
    # ckpt-2.
    for p in out.glob("ckpt-4.*"):
        p.unlink()
    (out / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n'
    )
    with open(out / "train_metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "loss": 1.0}) + "\n")
    _pretrain(_config(data, out))
    steps = [
        json.loads(line)["step"] for line in (out / "train_metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4]


def test_a_checkpoint_never_evaluated_is_evaluated_on_resume(data, four_steps, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(four_steps, out)  # ckpt-4 was saved by a run without --do_eval
    _pretrain(_config(data, out, num_train_steps=6, do_eval=True, max_eval_steps=1))
    evaluated = sorted(p.name for p in out.glob("eval_results-*.json"))
    assert evaluated == ["eval_results-4.json", "eval_results-6.json"]
    best = json.loads((out / "best_eval.json").read_text())
    scores = [json.loads((out / name).read_text())["mlm_accuracy"] for name in evaluated]
    assert best["mlm_accuracy"] == max(scores)


def test_inputs_that_cannot_feed_the_run_are_refused(data, tiny_spm, tmp_path):
    import shutil

    from bioalbert_tf.training.run_settings import InputMismatchError

    records = f"{data}/tfrecords"
    with pytest.raises(
        InputMismatchError,
        match=rf"{records}/stats.json: the TFRecords were built with "
        r"--max_seq_length=64, this run has --max_seq_length=32",
    ):
        _pretrain(_config(data, tmp_path / "a", max_seq_length=32))
    values = json.loads((data / "albert_config.json").read_text())
    (tmp_path / "small_vocab.json").write_text(json.dumps({**values, "vocab_size": 500}))
    small_vocab = str(tmp_path / "small_vocab.json")
    with pytest.raises(
        InputMismatchError,
        match=r"stats.json \(vocab_size\): the vocabulary has 1000 pieces, "
        r"but vocab_size in .*small_vocab.json is 500",
    ):
        _pretrain(_config(data, tmp_path / "b", albert_config_file=small_vocab))
    # Without the builder's stats.json: the first record and --spm_model_file are checked.
    bare = tmp_path / "bare"
    bare.mkdir()
    shard = sorted((data / "tfrecords").glob("*.tfrecord"))[0]
    shutil.copy(shard, bare / shard.name)
    bare_input = (f"{bare}/*.tfrecord",)
    with pytest.raises(
        InputMismatchError,
        match=rf"{bare}/{shard.name}: its examples have "
        r"max_predictions_per_seq 10, this run has --max_predictions_per_seq=5",
    ):
        _pretrain(_config(data, tmp_path / "c", input_file=bare_input, max_predictions_per_seq=5))
    with pytest.raises(InputMismatchError, match=rf"{tiny_spm}: the vocabulary has 1000 pieces"):
        _pretrain(
            _config(
                data,
                tmp_path / "d",
                input_file=bare_input,
                albert_config_file=small_vocab,
                spm_model_file=tiny_spm,
            )
        )


def test_empty_input_fails_with_the_files_named(data, tmp_path):
    (tmp_path / "empty-0.tfrecord").write_bytes(b"")
    (tmp_path / "empty-1.tfrecord").write_bytes(b"")
    cmd = _cmd(data, tmp_path / "run", "--num_train_steps=2", "--num_warmup_steps=0")
    cmd[3] = f"--input_file={tmp_path}/empty-*.tfrecord"
    # Before: an endless loop over a repeated empty dataset, with no message.
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert proc.returncode == 1
    assert (
        f"--input_file: no records in any of the 2 file(s): {tmp_path}/empty-0.tfrecord, "
        f"{tmp_path}/empty-1.tfrecord"
    ) in proc.stderr


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(learning_rate=0.0), "--learning_rate must be > 0, got 0.0"),
        (dict(learning_rate=-1e-4), "--learning_rate must be > 0, got -0.0001"),
        (
            dict(num_warmup_steps=5000, num_train_steps=1000),
            "--num_warmup_steps=5000 exceeds --num_train_steps=1000",
        ),
    ],
)
def test_settings_that_cannot_train_are_refused(kw, message):
    from bioalbert_tf.training.pretraining import PretrainingConfig

    config = PretrainingConfig(input_file=("x",), output_dir="o", albert_config_file="c", **kw)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


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


def test_a_truncated_shard_is_refused_before_step_1(data, tmp_path):
    """A shard cut short (a copy that did not finish) is named, with the offset, before training
    starts and before anything is written, instead of failing at the record mid-run."""
    shards = tmp_path / "shards"
    shards.mkdir()
    for shard in sorted((data / "tfrecords").glob("*.tfrecord")):
        (shards / shard.name).write_bytes(shard.read_bytes())
    cut = sorted(shards.glob("*.tfrecord"))[-1]
    cut.write_bytes(cut.read_bytes()[:-100])
    out = tmp_path / "out"
    cmd = _cmd(data, out, "--num_train_steps=4")
    cmd[3] = f"--input_file={shards}/*.tfrecord"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1
    assert re.search(rf"error: {cut}: the file ends inside record \d+ \(at byte \d+", proc.stderr)
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not list(out.glob("ckpt-*"))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _two_workers(data, out, *extra) -> list[str]:
    """run_pretraining as the two workers of a TF_CONFIG cluster on this machine
    (MultiWorkerMirroredStrategy); returns their stderr."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        cmd = _cmd(data, out, "--save_checkpoints_steps=2", "--iterations_per_loop=2", *extra)
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
            )
        )
    logs = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-4000:]
        logs.append(err)
    return logs


def test_two_workers_train_checkpoint_once_and_resume(data, tmp_path):
    """Two processes as a TF_CONFIG cluster: both train (2 replicas), only the chief writes
    output_dir (one checkpoint per save, one metrics line per loop, one event file); resumed,
    both restart from the chief's last checkpoint, and evaluation keeps one best."""
    out = tmp_path / "out"
    logs = _two_workers(data, out, "--num_train_steps=4")
    assert all("2 replicas" in log for log in logs)
    assert sorted(p.name for p in out.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    lines = [json.loads(x) for x in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [2, 4]
    assert len(list((out / "train").iterdir())) == 1
    assert not list(out.glob(".worker-*"))
    logs = _two_workers(data, out, "--num_train_steps=6", "--do_eval", "--max_eval_steps=2")
    assert all(f"resumed from {out}/ckpt-4 at step 4" in log for log in logs)
    lines = [json.loads(x) for x in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [2, 4, 6]
    assert (out / "best_eval.json").exists() and (out / "eval_results-6.json").exists()
    assert (out / "model.ckpt-best.index").exists() and not list(out.glob(".worker-*"))
    # One event file per run and folder: the chief's (two workers would write two per run).
    assert len(list((out / "train").iterdir())) == len(list((out / "eval").iterdir())) == 2


def test_an_output_dir_under_a_file_is_one_line(data, tmp_path):
    in_the_way = tmp_path / "a_file"
    in_the_way.write_text("not a folder\n")
    proc = subprocess.run(
        _cmd(data, in_the_way / "out", "--num_train_steps=4"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"error: {in_the_way}" in proc.stderr and "a file is in the way" in proc.stderr


def test_a_full_disk_at_a_checkpoint_save_is_one_line(data, small_disk):
    """A checkpoint that does not fit ends the run with one line naming the file and the cause;
    what was saved before stays, so the rerun (with space) resumes."""
    out = small_disk(64) / "out"
    proc = subprocess.run(
        _cmd(data, out, "--num_train_steps=4", "--save_checkpoints_steps=2"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("error: "))
    assert f"{out}/ckpt-2" in line and "No space left on device (no space left" in line, line
    assert "function_node" not in line and "[Op:" not in line
