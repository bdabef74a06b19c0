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

# command line -> (its config classes, the fields that are deliberately not flags)
COMMANDS = {
    "bioalbert_tf.run_pretraining": (
        [
            "bioalbert_tf.training.pretraining_config:PretrainingConfig",
            "bioalbert_tf.training.distribute:TpuOptions",
        ],
        set(),
    ),
    "bioalbert_tf.run_finetuning": (
        [
            "bioalbert_tf.training.finetuning_config:FinetuningConfig",
            "bioalbert_tf.training.finetuning_config:FinetuningOptions",
        ],
        set(),
    ),
    "tfrecords_builder.build_pretraining_data": (
        ["tfrecords_builder.plan:BuildConfig", "tfrecords_builder.plan:BuildOptions"],
        {"min_line_chars", "output_prefix"},
    ),
    "tfrecords_builder.build_vocab": (
        ["tfrecords_builder.vocab:VocabConfig", "tfrecords_builder.vocab:VocabOptions"],
        {"model_type", "num_threads"},
    ),
    "tfrecords_builder.default_corpus": (["tfrecords_builder.default_corpus:CorpusConfig"], set()),
    "bioalbert_tf.benchmark.__main__": (
        ["bioalbert_tf.benchmark.runner:RunConfig", "bioalbert_tf.benchmark.runner:SuiteOptions"],
        {"fold"},
    ),
    "bioalbert_tf.benchmark.score": (["bioalbert_tf.evaluation.scoring:ScoreConfig"], set()),
    "bioalbert_tf.benchmark.report": (["bioalbert_tf.benchmark.reporting:ReportConfig"], set()),
    "bioalbert_tf.convert_checkpoint": (["bioalbert_tf.conversion:ConversionConfig"], set()),
    "bioalbert_tf.export_saved_model": (["bioalbert_tf.serving.export:ExportConfig"], set()),
    "bioalbert_tf.demo": (["bioalbert_tf.demo_recipe:DemoConfig"], set()),
}

INSPECT = textwrap.dedent(
    """
    import dataclasses, importlib, json, sys
    from absl import flags

    module = importlib.import_module(sys.argv[1])
    fields = {}
    for spec in sys.argv[2:]:
        where, name = spec.split(":")
        for field in dataclasses.fields(getattr(importlib.import_module(where), name)):
            default = None if field.default is dataclasses.MISSING else field.default
            fields[field.name] = {
                "default": list(default) if isinstance(default, tuple) else default,
                "help": field.metadata.get("help"),
            }
    key = {f.name for f in flags.FLAGS.get_key_flags_for_module(module)}
    flag = {n: {"default": flags.FLAGS[n].default, "help": flags.FLAGS[n].help} for n in key}
    print(json.dumps({"fields": fields, "flags": flag}))
    """
)


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_a_command_line_takes_every_flag_default_and_help_from_its_configs(module):
    configs, not_flags = COMMANDS[module]
    proc = subprocess.run(
        [sys.executable, "-c", INSPECT, module, *configs],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    fields, defined = seen["fields"], seen["flags"]
    assert set(defined) - set(fields) == set(), "flags that no config owns"
    assert set(fields) - set(defined) == not_flags, "fields that should be flags, or are not"
    for name, flag in defined.items():
        field = fields[name]
        assert field["help"], f"{module}: the config gives --{name} no help"
        assert flag["help"].endswith(field["help"]), name  # an enum's starts "<a|b>: "
        default = field["default"] if field["default"] != [] else None
        assert flag["default"] == default, name


def test_no_module_defines_a_flag_by_hand():
    """Every flag of every command line (the benches' and research scripts' too) is generated
    from a config dataclass field by settings.define_flags: no module calls absl's DEFINE
    functions itself."""
    import re

    pattern = re.compile(r"\bflags\.DEFINE_\w+\(")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("bioalbert_tf", "tfrecords_builder", "tpu_scripts", "bench", "research")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "settings.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_every_console_script_command_is_checked_here():
    from bioalbert_tf import console

    assert set(console.COMMANDS.values()) <= set(COMMANDS)


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
    where = os.path.dirname(sys.executable)
    if shutil.which("bioalbert-finetune", path=where) is None:
        pytest.skip("console scripts not installed in this environment (make setup installs them)")
    for name, module in console.COMMANDS.items():
        # every flag of the command's configs, in the installed script's --helpfull
        where_, config = COMMANDS[module][0][0].split(":")
        fields = dataclasses.fields(getattr(importlib.import_module(where_), config))
        proc = subprocess.run(
            [shutil.which(name, path=where), "--helpfull"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-2000:])  # absl exits 1
        not_flags = COMMANDS[module][1]
        missing = [f.name for f in fields if f.name not in not_flags]
        missing = [
            n for n in missing if f"--{n}:" not in proc.stdout and f"--[no]{n}:" not in proc.stdout
        ]
        assert missing == [], name
