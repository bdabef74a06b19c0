"""Resuming a pretraining run: other settings, input or eval files, or another replica count than
run_settings.json records are refused before anything is written (the same files elsewhere
resume); metrics logged after the last checkpoint are dropped, and a checkpoint never evaluated
is evaluated."""

import json

import pytest

from tests.conftest import folder_bytes
from tests.pretraining_helpers import (
    _config,
    _pretrain,
    pretraining_data,  # noqa: F401 (the fixture `data`)
)

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def four_steps(data, tmp_path_factory):
    """A finished 4-step run (checkpoints at 2 and 4, one metrics line per step)."""
    out = tmp_path_factory.mktemp("four_steps") / "run"
    _pretrain(_config(data, out))
    return out


def test_resuming_with_other_settings_is_refused_before_anything_is_written(
    data, four_steps, tmp_path
):
    import shutil

    from bioalbert_tf.manifest import SettingsMismatchError

    out = tmp_path / "run"
    shutil.copytree(four_steps, out)
    values = json.loads((data / "albert_config.json").read_text())
    (tmp_path / "other_config.json").write_text(json.dumps({**values, "num_hidden_layers": 3}))
    before = folder_bytes(out)
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
    assert folder_bytes(out) == before  # albert_config.json, checkpoints, metrics untouched
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
    before = folder_bytes(out)
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
    assert folder_bytes(out) == before
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
    assert folder_bytes(out) == before
    # Recorded by a run on 2 replicas (MirroredStrategy), resumed on 1.
    settings_file.write_text(json.dumps({**recorded, "num_replicas_in_sync": 2}))
    before = folder_bytes(out)
    with pytest.raises(SettingsMismatchError) as e:
        _pretrain(_config(data, out, num_train_steps=6))
    assert f"  replicas in sync: 2 in {settings_file}, 1 now" in str(e.value)
    assert "1 differ" in str(e.value) and "the same number of replicas" in str(e.value)
    assert folder_bytes(out) == before
    # The same shards copied elsewhere (as to a bucket) resume.
    settings_file.write_text(json.dumps(recorded))
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in shards:
        shutil.copy(p, moved / p.name)
    result = _pretrain(_config(data, out, num_train_steps=6, input_file=(f"{moved}/*.tfrecord",)))
    assert result["step"] == 6


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
