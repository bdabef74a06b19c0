"""The pretrainer SavedModel (fresh-process load, saved_model_cli) and the keras-hub preset."""

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bioalbert_tf import checkpoints
from bioalbert_tf.config import AlbertConfig
from tests.conftest import ROOT, small_config
from tests.tf1_names import write_random_tf1_checkpoint

tf = pytest.importorskip("tensorflow")
SAVED_MODEL_CLI = pathlib.Path(sys.executable).parent / "saved_model_cli"


def _export_cmd(tmp, output_dir) -> list[str]:
    """export_saved_model of the pretrainer from the random TF1 checkpoint under tmp/tf1."""
    return [
        sys.executable,
        "-m",
        "bioalbert_tf.export_saved_model",
        "--model=pretrainer",
        f"--checkpoint={tmp}/tf1/model.ckpt-best",
        f"--output_dir={output_dir}",
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random TF1 checkpoint exported through the command line, and our Keras model's outputs."""
    from bioalbert_tf.modeling import AlbertPretrainer

    tmp = tmp_path_factory.mktemp("export")
    config = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json"))
    write_random_tf1_checkpoint(config, str(tmp / "tf1" / "model.ckpt-best"))
    (tmp / "tf1" / "albert_config.json").write_text(config.to_json_string())
    proc = subprocess.run(
        _export_cmd(tmp, tmp / "saved_model"), capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = AlbertPretrainer(config)
    checkpoints.load_init_checkpoint(model, str(tmp / "tf1"))
    ids = np.array([[2, 11, 12, 13, 3, 21, 22, 3], [2, 31, 32, 3, 41, 3, 0, 0]], np.int32)
    mask = (ids > 0).astype(np.int32)
    seg = np.array([[0] * 5 + [1] * 3, [0] * 4 + [1] * 2 + [0] * 2], np.int32)
    out = model.encoder({"input_ids": ids, "input_mask": mask, "segment_ids": seg})
    expected = {
        "sequence_output": np.asarray(out["sequence_output"]),
        "pooled_output": np.asarray(out["pooled_output"]),
        "mlm_logits": np.asarray(model.mlm_logits(out["sequence_output"])),
        "sop_logits": np.asarray(model.sop_logits(out["pooled_output"])),
    }
    np.savez(tmp / "inputs.npz", input_ids=ids, input_mask=mask, segment_ids=seg)
    return tmp, expected


LOADER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    x = np.load(sys.argv[2])
    out = model.signatures["serving_default"](**{k: tf.constant(x[k]) for k in x.files})
    print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}))
    """
)


def test_fresh_process_load_gives_the_keras_outputs(exported):
    tmp, expected = exported
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, str(tmp / "saved_model"), str(tmp / "inputs.npz")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(got) == set(expected)
    shapes = {
        "sequence_output": (2, 8, 12),
        "pooled_output": (2, 12),
        "mlm_logits": (2, 8, 97),
        "sop_logits": (2, 2),
    }
    for k, v in expected.items():
        assert np.asarray(got[k]).shape == shapes[k]
        np.testing.assert_allclose(np.asarray(got[k]), v, atol=1e-5, err_msg=k)


def test_saved_model_cli_show_and_run(exported):
    tmp, expected = exported
    show = subprocess.run(
        [str(SAVED_MODEL_CLI), "show", "--dir", str(tmp / "saved_model"), "--all"],
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0, show.stderr[-2000:]
    for name in (
        "input_ids",
        "input_mask",
        "segment_ids",
        "sequence_output",
        "pooled_output",
        "mlm_logits",
        "sop_logits",
    ):
        assert f"['{name}']" in show.stdout
    exprs = (
        "input_ids=[[2,11,12,13,3,21,22,3]];"
        "input_mask=[[1,1,1,1,1,1,1,1]];"
        "segment_ids=[[0,0,0,0,0,1,1,1]]"
    )
    run = subprocess.run(
        [
            str(SAVED_MODEL_CLI),
            "run",
            "--dir",
            str(tmp / "saved_model"),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            exprs,
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]  # the TF1 session loader, as TF Serving uses
    sop = run.stdout.split("Result for output key sop_logits:")[1].split("]]")[0].replace("[", " ")
    np.testing.assert_allclose(np.array(sop.split(), float), expected["sop_logits"][0], atol=1e-5)


@pytest.mark.parametrize("embedding_size", [16, 48])  # 48 = hidden: no projection of ours
def test_keras_hub_preset_loads_with_from_preset(tmp_path, embedding_size):
    import keras_hub

    from bioalbert_tf.modeling import AlbertEncoder
    from bioalbert_tf.serving.keras_hub_export import save_keras_hub_preset

    config = small_config(
        num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2, embedding_size=embedding_size
    )
    encoder = AlbertEncoder(config)
    rng = np.random.default_rng(0)
    for v in encoder.weights:
        v.assign(v.numpy() + 0.1 * rng.standard_normal(v.shape).astype(np.float32))
    save_keras_hub_preset(encoder, str(tmp_path / "preset"))
    backbone = keras_hub.models.AlbertBackbone.from_preset(str(tmp_path / "preset"))
    ids = rng.integers(5, 211, size=(2, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    seg = np.zeros_like(ids)
    seg[:, 4:] = 1
    ours = encoder({"input_ids": ids, "input_mask": mask, "segment_ids": seg})
    theirs = backbone({"token_ids": ids, "padding_mask": mask, "segment_ids": seg})
    for k in ("sequence_output", "pooled_output"):  # keras-hub's own layers: an independent check
        np.testing.assert_allclose(np.asarray(ours[k]), np.asarray(theirs[k]), atol=1e-5, err_msg=k)


def test_keras_hub_preset_refuses_uneven_groups():
    from bioalbert_tf.modeling import AlbertEncoder
    from bioalbert_tf.serving.keras_hub_export import to_keras_hub_backbone

    encoder = AlbertEncoder(AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")))
    with pytest.raises(
        ValueError, match=r"num_hidden_layers \(5\) to be a multiple of num_hidden_groups \(2\)"
    ):
        to_keras_hub_backbone(encoder)


def test_export_refuses_a_non_empty_output_dir_without_overwrite(exported):
    """A second export into the same folder is refused (the SavedModel left as it was), unless
    --overwrite, which leaves the folder holding the new export and nothing else."""
    tmp, expected = exported
    folder = tmp / "saved_model"
    (folder / "variables" / "stale.txt").write_text("from an earlier export")
    before = {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    cmd = _export_cmd(tmp, folder)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        f"error: 1 output file(s) already exist and would be replaced: {folder} (a non-empty "
        "folder). Choose another --output_dir, or pass --overwrite"
    ) in proc.stderr
    assert {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    proc = subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (folder / "variables" / "stale.txt").exists()
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("saved_model")) == [
        "saved_model"
    ]
    x = np.load(tmp / "inputs.npz")
    out = tf.saved_model.load(str(folder)).signatures["serving_default"](
        **{k: tf.constant(x[k]) for k in x.files}
    )
    for k, v in expected.items():
        np.testing.assert_allclose(out[k].numpy(), v, atol=1e-5, err_msg=k)


def test_a_crash_while_replacing_a_folder_leaves_the_earlier_one_whole(tmp_path):
    """fileio.replace_folder (export_saved_model --overwrite): a write that fails halfway leaves
    the earlier folder as it was; the next one replaces it whole."""
    from bioalbert_tf import fileio

    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_text("earlier")

    def crash(path):
        pathlib.Path(path, "saved_model.pb").write_text("half of it")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fileio.replace_folder(str(folder), crash)
    assert [p.name for p in folder.iterdir()] == ["saved_model.pb"]
    assert (folder / "saved_model.pb").read_text() == "earlier"
    fileio.replace_folder(f"{folder}/", lambda path: pathlib.Path(path, "new.pb").write_text("new"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]
    assert [p.name for p in folder.iterdir()] == ["new.pb"]


def test_export_into_a_read_only_folder_is_one_line(exported):
    tmp, _ = exported
    proc = subprocess.run(
        _export_cmd(tmp, "/sys/bioalbert_export"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("error: "))
    # The first write is the lock beside the SavedModel's folder.
    assert line.startswith("error: /sys/.bioalbert_export.lock") and "permission denied" in line, (
        line
    )
