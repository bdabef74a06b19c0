"""One source for every setting: each command line's flags are generated from its config
dataclass, with the field's default and help; a command defines by hand only flags that are not
settings of its config (where to run, --overwrite, ...)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import pytest
from absl import app, flags

from bioalbert_tf import settings
from tests.conftest import ROOT

# command line -> (its config class, the flags it may define by hand: not settings of the config)
COMMANDS = {
    "bioalbert_tf.run_pretraining": (
        "bioalbert_tf.training.pretraining_config:PretrainingConfig",
        {"tpu", "tpu_zone", "gcp_project", "tpu_connect_timeout"},
    ),
    "bioalbert_tf.run_finetuning": (
        "bioalbert_tf.training.finetuning_config:FinetuningConfig",
        {"overwrite"},
    ),
    "tfrecords_builder.build_pretraining_data": (
        "tfrecords_builder.pipeline:BuildConfig",
        {"overwrite", "runner"},
    ),
    "tfrecords_builder.build_vocab": (
        "tfrecords_builder.vocab:VocabConfig",
        {"existing_model", "overwrite"},
    ),
    "bioalbert_tf.benchmark": (
        "bioalbert_tf.benchmark.runner:RunConfig",
        {"suite", "report", "references", "overwrite"},
    ),
}

INSPECT = textwrap.dedent(
    """
    import dataclasses, importlib, json, sys
    from absl import flags

    module = importlib.import_module(sys.argv[1])
    where, name = sys.argv[2].split(":")
    config = getattr(importlib.import_module(where), name)
    key = {f.name for f in flags.FLAGS.get_key_flags_for_module(module)}
    fields = {}
    for field in dataclasses.fields(config):
        default = None if field.default is dataclasses.MISSING else field.default
        fields[field.name] = {"default": list(default) if isinstance(default, tuple) else default,
                              "help": field.metadata.get("help")}
    flag = {n: {"default": flags.FLAGS[n].default, "help": flags.FLAGS[n].help} for n in key}
    print(json.dumps({"fields": fields, "flags": flag}))
    """
)


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_a_command_line_takes_its_defaults_and_help_from_its_config(module):
    config, by_hand = COMMANDS[module]
    proc = subprocess.run(
        [sys.executable, "-c", INSPECT, module, config],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    fields, defined = seen["fields"], seen["flags"]
    assert set(defined) - set(fields) <= by_hand, "flags that are neither settings nor allowed"
    for name, flag in defined.items():
        if name in fields:
            field = fields[name]
            assert field["help"], f"{module}: the config gives --{name} no help"
            assert flag["help"].endswith(field["help"]), name  # an enum's starts "<a|b>: "
            default = field["default"] if field["default"] != [] else None
            assert flag["default"] == default, name


@dataclasses.dataclass(frozen=True)
class _Example:
    name: str = settings.setting(help="Required.")
    files: tuple[str, ...] = settings.setting((), "A list.")
    steps: int = settings.setting(10, "Steps.")
    rate: float | None = settings.setting(None, "A rate.")
    on: bool = settings.setting(True, "A switch.")
    kind: str = settings.setting("a", "A choice.", choices=("a", "b"))
    hidden: int = settings.setting(7, "Not a flag of this command line.")


def test_flags_from_a_config_parse_to_it():
    values = flags.FlagValues()
    settings.define_flags(_Example, flag_values=values, exclude=("hidden",))
    values(["prog", "--name=x", "--files=a,b", "--steps=3", "--rate=0.5", "--noon", "--kind=b"])
    assert settings.from_flags(_Example, values) == _Example("x", ("a", "b"), 3, 0.5, False, "b")
    assert "hidden" not in values
    values = flags.FlagValues()
    settings.define_flags(_Example, flag_values=values)
    values(["prog", "--name=x"])
    assert settings.from_flags(_Example, values, steps=4) == _Example("x", steps=4)
    with pytest.raises(flags.IllegalFlagValueError):
        values(["prog", "--kind=c"])
    values = flags.FlagValues()
    settings.define_flags(_Example, flag_values=values)
    values(["prog"])
    with pytest.raises(app.UsageError, match="--name is required"):
        settings.from_flags(_Example, values)


def _flagfile_config(path) -> tuple:
    from bioalbert_tf.evaluation import datasets
    from bioalbert_tf.training.finetuning_config import FinetuningConfig

    values = flags.FlagValues()
    settings.define_flags(FinetuningConfig, flag_values=values)
    values(
        [
            "run_finetuning",
            f"--flagfile={path}",
            "--data_dir=d",
            "--output_dir=o",
            "--albert_config_file=c",
            "--spm_model_file=s",
        ]
    )
    config = settings.from_flags(FinetuningConfig, values)
    return config, datasets.get(config.dataset)


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "finetuning").glob("*.flags")))
def test_each_finetuning_flagfile_gives_the_papers_setting(path):
    """Table 5: AdamW, lr 1e-5, batch 32, 10000 steps, 320 warm-up, lowercased; 512 tokens for
    NER and 128 otherwise; the flagfile's name is its dataset."""
    if path.stem == "table5":
        return
    config, spec = _flagfile_config(path.relative_to(ROOT))
    assert config.dataset == path.stem
    recipe = {
        "learning_rate": 1e-5,
        "train_batch_size": 32,
        "num_train_steps": 10000,
        "num_warmup_steps": 320,
        "eval_every_steps": 1000,
        "do_lower_case": True,
    }
    assert {k: getattr(config, k) for k in recipe} == recipe
    length = config.max_seq_length or spec.max_seq_length
    assert length == (512 if spec.task == "ner" else 128)


def test_console_scripts_run_the_command_lines():
    """Each console script of setup.cfg is a function of bioalbert_tf.console that runs the main()
    of an existing command line; an installed one answers --helpfull with that command's flags."""
    import configparser
    import importlib.util
    import os
    import shutil

    from bioalbert_tf import console

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    scripts = dict(
        line.split(" = ")
        for line in parser["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert set(scripts) == set(console.COMMANDS)
    for name, target in scripts.items():
        module, function = target.split(":")
        assert module == "bioalbert_tf.console" and callable(getattr(console, function)), name
        command = importlib.util.find_spec(console.COMMANDS[name])
        assert command is not None, name
    script = shutil.which("bioalbert-finetune", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("console scripts not installed in this environment (make setup installs them)")
    proc = subprocess.run([script, "--helpfull"], capture_output=True, text=True, timeout=120)
    assert "--save_checkpoints_steps" in proc.stdout, proc.stderr[-2000:]
