"""run_pretraining end to end at tiny size: training, eval/best, TF1 init and export, resumption
after SIGKILL with identical weights, two workers of a TF_CONFIG cluster, and the learning rate
each logged step used."""

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.pretraining_helpers import (
    _cmd,
    _config,
    _pretrain,
    pretraining_data,  # noqa: F401 (the fixture `data`)
)
from tests.tf1_names import write_random_tf1_checkpoint

tf = pytest.importorskip("tensorflow")


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


@pytest.mark.slow
def test_each_logged_learning_rate_is_the_one_its_last_update_used(data, tmp_path):
    # lr 0.005, warm-up 1, 4 steps: the reference's update k (global_step k before it) uses
    # 0.005 * k / 1 while k < 1, else 0.005 * (1 - k / 4). A loop of 2 steps logs its mean
    # metrics at steps 2 and 4, after updates 1 and 3.
    out = tmp_path / "run"
    _pretrain(_config(data, out, iterations_per_loop=2))
    logged = [json.loads(line) for line in (out / "train_metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == [2, 4]
    np.testing.assert_allclose([m["learning_rate"] for m in logged], [0.00375, 0.00125], rtol=1e-6)


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
