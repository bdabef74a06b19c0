"""Every command the docs show runs a project module that exists, with flags that module accepts.

The commands are read from README.md, docs/*.md, docs/notes/*.md and the Makefile's recipes by
the rules in tests/docs_commands.py (tested in tests/test_docs_commands_reading.py).

What is checked
  - `python -m M ...` (also python3, .venv/bin/python, any .../bin/python): when M's top-level
    package is one of this repository's, M exists (found without importing it; a package needs
    a __main__), and every `--flag`, `--flag=value` or `--noflag` it passes is one that M
    accepts. Only the flag NAME is checked: values may be shell variables or placeholders.
    M's flags come from running it once with --helpfull (absl) or --help (argparse) in a
    subprocess; a module with neither accepts no flags. tfrecords_builder.build_pretraining_data
    passes the flags it does not define to Beam, so there a name is also accepted when the
    builder's own check (pipeline.unknown_pipeline_args) accepts it. Modules outside the
    repository (pytest, pip) and other programs (docker, curl, gcloud, gsutil, tensorboard)
    are not checked.
  - `--flagfile=F`: F exists, and every flag in it (nested flagfiles included) is one M
    accepts; repository paths named in its comments exist. Every *.flags file in a folder that
    the docs use this way is checked against the same module, named by the docs or not.
  - flag values that are repository config paths (`configs/...`) exist.
  - `make T`: the Makefile has target T.

One test per module (so pytest-xdist spreads the --helpfull subprocesses), one for make
targets and `python script.py` paths, one that the reading rules find what the docs show,
and a test of the reporting rules themselves (a wrong flag, module or flagfile is reported).
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import subprocess
import sys

import pytest

from tests.docs_commands import (
    ASSIGNMENT,
    PYTHON,
    ROOT,
    all_commands,
    commands_in_markdown,
    flag_words,
    makefile,
    module_origin,
    project_modules,
)

# Repository paths named in flagfile comments.
REPO_PATH = re.compile(
    r"\b(?:bioalbert_tf|tfrecords_builder|bench|research|tpu_scripts|configs|tests)/[\w./-]*\w"
)

# ---------------------------------------------------------------------------------------------
# The flags each module accepts, and what is wrong with a module's commands


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def parse_absl_help(text: str) -> set[str]:
    """Flag names in absl's --helpfull output (`--[no]name` gives name and noname)."""
    names = set()
    for match in re.finditer(r"^  (?:-\S,)?--(\[no\])?([^\s:\[]+):", text, re.MULTILINE):
        names.add(match[2])
        if match[1]:
            names.add("no" + match[2])
    return names


def parse_argparse_help(text: str) -> set[str]:
    """Option names in argparse's --help output (`  -h, --help  show ...`)."""
    names = set()
    for line in text.splitlines():
        if re.match(r"^\s+-", line):
            options = re.split(r"\s{2,}", line.strip())[0]
            names.update(re.findall(r"--([\w-]+)", options))
    return names


@functools.cache
def accepted_flags(module: str) -> set[str]:
    """The flag names `python -m module` accepts, from its own help output."""
    _, path = module_origin(module)
    source = path.read_text(encoding="utf-8")
    if re.search(r"^\s*(?:from absl import|import absl)", source, re.MULTILINE):
        proc = _run(["-m", module, "--helpfull"])
        names = parse_absl_help(proc.stdout.rpartition("\nflags:\n")[2])
        if "flagfile" not in names:  # absl always defines it: the help was not printed
            raise AssertionError(
                f"`python -m {module} --helpfull` printed no absl flags (exit {proc.returncode}):"
                f"\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return names
    if "argparse" in source:
        proc = _run(["-m", module, "--help"])
        names = parse_argparse_help(proc.stdout)
        if "help" not in names:
            raise AssertionError(
                f"`python -m {module} --help` printed no argparse options (exit {proc.returncode}):"
                f"\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return names
    return set()  # reads sys.argv itself: no --flags


BEAM_CHECK = """
import json, sys
from tfrecords_builder.pipeline import unknown_pipeline_args
runners = [[]] + [[f"--runner={r}"] for r in json.loads(sys.argv[1])]
known = []
for name in sys.argv[2:]:
    for runner in runners:  # a runner's module may define options of its own (DaskOptions)
        try:
            unknown = unknown_pipeline_args([*runner, f"--{name}=1"])
        except SystemExit:  # Beam's parser knows the option and rejects the value "1"
            unknown = []
        if not unknown:
            known.append(name)
            break
print(json.dumps(known))
"""
# Modules that hand the flags they do not define to another parser: module -> that check.
PASSED_ON = {"tfrecords_builder.build_pretraining_data": BEAM_CHECK}


def unknown_names(module: str, names: set[str], runners=()) -> set[str]:
    """Those of `names` that `module` does not accept (`runners`: the --runner values the
    commands name, for a module that passes flags on to Beam)."""
    if not names:  # nothing to check: the module is not run
        return set()
    unknown = names - accepted_flags(module)
    if unknown and module in PASSED_ON:
        proc = _run(["-c", PASSED_ON[module], json.dumps(sorted(runners)), *sorted(unknown)])
        assert proc.returncode == 0, proc.stderr[-2000:]
        unknown -= set(json.loads(proc.stdout.strip().splitlines()[-1]))
    return unknown


def _is_literal_path(value: str) -> bool:
    return bool(value) and not re.search(r"[$<>*?{}]|PLACEHOLDER|\.\.\.", value)


def flagfile_flags(path: pathlib.Path, seen=()) -> list[tuple[str, str, str | None]]:
    """(file:line, name, value) of each flag in an absl flagfile, nested flagfiles included,
    plus ('file:line', '', problem) for a line that is no flag or a missing nested file."""
    out = []
    where = path.relative_to(ROOT)
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        if not line.startswith("-"):
            out.append((f"{where}:{number}", "", f"`{line}` is not a flag"))
            continue
        (name, value), *_ = flag_words([line]) or [(line, None)]
        if name == "flagfile" and value and path not in seen:
            nested = ROOT / value
            if nested.is_file():
                out += flagfile_flags(nested, (*seen, path))
            else:
                out.append((f"{where}:{number}", "", f"flagfile {value} does not exist"))
        out.append((f"{where}:{number}", name, value))
    return out


def flagfile_comment_paths(path: pathlib.Path) -> list[str]:
    problems = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith(("#", "//")):
            for named in REPO_PATH.findall(line):
                if not (ROOT / named).exists():
                    problems.append(
                        f"{path.relative_to(ROOT)}:{number}: names {named}, which does not exist"
                    )
    return problems


def flagfile_folders(commands) -> set[pathlib.Path]:
    """Folders whose flagfiles these commands pass."""
    folders = set()
    for command in commands:
        for name, value in flag_words(command.args()):
            if name == "flagfile" and value and _is_literal_path(value):
                folders.add((ROOT / value).parent)
    return folders


def problems_of(module: str, commands) -> list[str]:
    """What is wrong with the docs' commands of one module, one line per finding."""
    problems = []
    status, _ = module_origin(module)
    if status == "missing":
        return [f"{c.where}: `{c.text}`: no module {module}" for c in commands]
    uses: list[tuple[str, str, str]] = []  # (where, command, flag name)
    runners = set()
    for command in commands:
        for name, value in flag_words(command.args()):
            uses.append((command.where, command.text, name))
            if name == "runner" and value:
                runners.add(value)
            if not value or not _is_literal_path(value):
                continue
            if name == "flagfile":
                if not (ROOT / value).is_file():
                    problems.append(
                        f"{command.where}: `{command.text}`: flagfile {value} does not exist"
                    )
            elif value.startswith("configs/") and not (ROOT / value).exists():
                problems.append(f"{command.where}: `{command.text}`: {value} does not exist")
    for folder in sorted(flagfile_folders(commands)):
        for path in sorted(folder.glob("*.flags")):
            problems += flagfile_comment_paths(path)
            for where, name, value in flagfile_flags(path):
                if not name:
                    problems.append(f"{where}: {value}")
                    continue
                uses.append((where, f"--flagfile={path.relative_to(ROOT)} of {module}", name))
                if value and value.startswith("configs/") and not (ROOT / value).exists():
                    problems.append(f"{where}: {value} does not exist")
    unknown = unknown_names(module, {name for _, _, name in uses}, runners)
    for where, text, name in uses:
        if name in unknown:
            problems.append(f"{where}: `{text}`: --{name} is not a flag of {module}")
    return problems


# ---------------------------------------------------------------------------------------------
# The tests


@pytest.mark.parametrize("module", project_modules())
def test_documented_commands_of(module):
    commands = [c for c in all_commands() if c.module == module]
    problems = problems_of(module, commands)
    assert not problems, f"{len(problems)} problem(s) in documented commands:\n" + "\n".join(
        problems
    )


def test_make_targets_and_scripts_exist():
    targets, _ = makefile()
    problems = []
    for command in all_commands():
        first = command.words[0]
        if first == "make":
            for word in command.words[1:]:
                if not word.startswith("-") and not ASSIGNMENT.match(word) and word not in targets:
                    problems.append(f"{command.where}: `{command.text}`: no make target {word}")
        elif PYTHON.search(first) and command.module is None:
            script = next((w for w in command.words[1:] if not w.startswith("-")), None)
            if script and script.endswith(".py") and not (ROOT / script).is_file():
                problems.append(f"{command.where}: `{command.text}`: no script {script}")
    assert not problems, "\n".join(problems)


def test_the_docs_commands_are_found():
    """The reading rules find what the docs show (so the checks above are not vacuous)."""
    found = {(c.where.split(":")[0], c.module or c.words[0]) for c in all_commands()}
    for expected in [
        ("README.md", "make"),
        ("README.md", "tfrecords_builder.build_pretraining_data"),
        ("README.md", "bioalbert_tf.run_finetuning"),
        ("README.md", "bioalbert_tf.benchmark.score"),
        ("docs/pretraining.md", "bioalbert_tf.run_pretraining"),
        ("docs/benchmarks.md", "bench.domain_bench"),
        ("docs/serving.md", "curl"),
        ("Makefile", "bioalbert_tf.demo"),
    ]:
        assert expected in found
    assert len(project_modules()) >= 10


def test_wrong_flags_and_modules_are_reported(monkeypatch):
    """A renamed flag, a moved module and a missing flagfile, with file, line and command."""
    monkeypatch.setattr(
        sys.modules[__name__], "accepted_flags", lambda module: {"data_dir", "do_x", "nodo_x"}
    )
    doc = (
        "```\n"
        "python -m bioalbert_tf.run_finetuning --data_dir=$D --nodo_x \\\n"
        "  --dataset_name=y --flagfile=configs/none/x.flags\n"
        "python -m bioalbert_tf.datasets --x=1\n"
        "```\n"
    )
    commands = commands_in_markdown(doc, "doc.md")
    assert problems_of("bioalbert_tf.run_finetuning", commands[:1]) == [
        "doc.md:2: `python -m bioalbert_tf.run_finetuning --data_dir=$D --nodo_x "
        "--dataset_name=y --flagfile=configs/none/x.flags`: "
        "flagfile configs/none/x.flags does not exist",
        "doc.md:2: `python -m bioalbert_tf.run_finetuning --data_dir=$D --nodo_x "
        "--dataset_name=y --flagfile=configs/none/x.flags`: "
        "--dataset_name is not a flag of bioalbert_tf.run_finetuning",
        "doc.md:2: `python -m bioalbert_tf.run_finetuning --data_dir=$D --nodo_x "
        "--dataset_name=y --flagfile=configs/none/x.flags`: "
        "--flagfile is not a flag of bioalbert_tf.run_finetuning",
    ]
    assert problems_of("bioalbert_tf.datasets", commands[1:]) == [
        "doc.md:4: `python -m bioalbert_tf.datasets --x=1`: no module bioalbert_tf.datasets"
    ]
