"""Every command the docs show runs a project module that exists, with flags that module accepts.

What is read
  README.md, docs/*.md and docs/notes/*.md, plus the Makefile's recipes:
  - fenced code blocks (``` or ~~~) tagged bash, sh, shell, zsh, console or shell-session; in
    console / shell-session blocks only the lines after a `$ ` prompt are commands (the rest is
    output);
  - untagged fenced blocks that look like shell: their first line that is neither blank nor a
    `#` comment starts (after a `$ ` prompt, VAR=value assignments and `time`) with a Python
    interpreter, `make` or a known program (docker, curl, gcloud, pip, ...). Blocks tagged with
    any other language (json, python, text, ...) are never read;
  - inline code spans that are a whole command by the same rule (`python -m ...`, `make demo`),
    since the prose tells readers to run those too;
  - every recipe line of the Makefile, with its variables and `$(if ...)` / `$(or ...)`
    expanded (an `$(if c,then,else)` keeps both branches, so optional flags are checked too).

  A logical line joins backslash-continued lines, drops `# comments`, and splits into commands
  at `&&`, `||`, `;`, `|` and `&`. Each command loses a leading `$ `, VAR=value assignments and
  `time`/`env`/`nohup`/`exec`. `<placeholders>` and `[--optional flags]` are read as values
  and as the flags inside the brackets.

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
targets and `python script.py` paths, and tests of the reading and reporting rules themselves
(a wrong flag, module or flagfile is reported).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import importlib.machinery
import importlib.util
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/*.md", "docs/notes/*.md"]
MAKEFILE = ROOT / "Makefile"

SHELL_TAGS = {"bash", "sh", "shell", "zsh", "console", "shell-session", "shellsession"}
PROMPT_TAGS = {"console", "shell-session", "shellsession"}
# Programs whose commands are shell (an untagged block starting with one is read) but not ours.
OTHER_PROGRAMS = {
    "apt",
    "apt-get",
    "bash",
    "cat",
    "cd",
    "cp",
    "curl",
    "docker",
    "echo",
    "export",
    "gcloud",
    "git",
    "gsutil",
    "kubectl",
    "ls",
    "mkdir",
    "pip",
    "pip3",
    "rm",
    "ruff",
    "saved_model_cli",
    "sh",
    "source",
    "sudo",
    "tar",
    "tensorboard",
    "tensorflow_model_server",
    "wget",
}
PREFIX_WORDS = {"time", "env", "nohup", "exec"}
PYTHON = re.compile(r"(?:^|/)python(?:3(?:\.\d+)?)?$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# `<an image with this project installed>`, `<output_dir>`: a value, whatever is inside.
PLACEHOLDER = re.compile(r"<[^\s<>][^<>\n]*>")
OPERATORS = {"&&", "||", ";", "|", "&", ";;", "|&"}
REDIRECTS = {"<", ">", ">>", ">&", "&>", "<<", "<<<", "2>", "2>>"}
# Repository paths named in flagfile comments.
REPO_PATH = re.compile(
    r"\b(?:bioalbert_tf|tfrecords_builder|bench|tpu_scripts|configs|tests)/[\w./-]*\w"
)

# Documented commands the code refuses and the docs cannot be fixed for (the docs are right,
# the code is not): (module, flag name) -> why. Each still gets a strict xfail test below, so a
# fix in the code shows up as XPASS and this entry has to go.


@dataclasses.dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str  # the logical line it came from
    words: tuple[str, ...]  # without prompt, assignments and prefix words

    @property
    def module(self) -> str | None:
        return python_module(self.words)

    def args(self) -> list[str]:
        """The words after `-m MODULE`."""
        words = list(self.words[1:])
        while words:
            word = words.pop(0)
            if word == "-m":
                return words[1:]
            if word.startswith("-m"):
                return words
        return []


def python_module(words) -> str | None:
    if not words or not PYTHON.search(words[0]):
        return None
    rest = list(words[1:])
    while rest and rest[0].startswith("-"):
        word = rest.pop(0)
        if word == "-m":
            return rest[0] if rest else None
        if word.startswith("-m"):
            return word[2:]
        if word == "-c":
            return None
        if word in ("-X", "-W"):
            rest[:1] = []
    return None


# ---------------------------------------------------------------------------------------------
# Reading commands


def _tokens(line: str) -> list[str]:
    line = PLACEHOLDER.sub("PLACEHOLDER", line)
    # A `#` starts a comment only at the start of a word, as in the shell.
    line = re.sub(r"(^|\s)#.*$", "", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def commands_in_line(text: str, where: str) -> list[Command]:
    """The commands of one logical line (continuations already joined)."""
    try:
        tokens = _tokens(text)
    except ValueError as e:  # unbalanced quotes: a doc error worth reporting
        raise ValueError(f"{where}: cannot split `{text}` into words: {e}") from None
    groups, current = [], []
    for token in tokens:
        if token in OPERATORS:
            groups.append(current)
            current = []
        else:
            current.append(token)
    groups.append(current)
    out = []
    for words in groups:
        words = _without_redirects(words)
        words = _without_brackets(words)
        while words and (words[0] == "$" or ASSIGNMENT.match(words[0]) or words[0] in PREFIX_WORDS):
            words = words[1:]
        if words:
            out.append(Command(where, text.strip(), tuple(words)))
    return out


def _without_redirects(words: list[str]) -> list[str]:
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in REDIRECTS or re.fullmatch(r"\d?[<>]+&?", word):
            skip = True
        else:
            out.append(word)
    return out


def _without_brackets(words: list[str]) -> list[str]:
    """`[--a=1 --b=2]` (optional flags, as usage lines write them) -> `--a=1 --b=2`."""
    out, depth = [], 0
    for word in words:
        while word.startswith("[-"):
            word, depth = word[1:], depth + 1
        while depth and word.endswith("]"):
            word, depth = word[:-1], depth - 1
        if word:
            out.append(word)
    return out


def looks_like_a_command(line: str) -> bool:
    """A line whose first word (after prompt, assignments, `time`) runs a known program."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    try:
        commands = commands_in_line(line, "")
    except ValueError:
        return False
    if not commands:
        return False
    first = commands[0].words[0]
    return bool(PYTHON.search(first)) or first == "make" or first in OTHER_PROGRAMS


def _logical_lines(lines: list[tuple[int, str]], prompt_only: bool) -> list[tuple[int, str]]:
    """Joins backslash continuations; with prompt_only keeps only `$ ` lines (and their
    continuations), without the prompt."""
    out, parts, start = [], [], 0
    for number, line in lines:
        if not parts:
            stripped = line.lstrip()
            if stripped.startswith("$ "):
                stripped = stripped[2:]
            elif prompt_only:
                continue
            start, line = number, stripped
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        out.append((start, " ".join(p.strip() for p in parts)))
        parts = []
    if parts:
        out.append((start, " ".join(p.strip() for p in parts)))
    return out


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n\s*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)


def commands_in_markdown(text: str, name: str) -> list[Command]:
    """The shell commands of one markdown file (see the module docstring for the rules)."""
    commands = []
    lines = text.splitlines()
    prose: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        # A backtick fence's info string holds no backtick (else it is inline code).
        if not fence or (fence[2][0] == "`" and "`" in fence[3]):
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent, marker, info = fence.groups()
        tag = info.strip().split()[0].lower() if info.strip() else ""
        body = []
        i += 1
        while i < len(lines):
            close = re.match(r"^\s*(`{3,}|~{3,})\s*$", lines[i])
            if close and close[1][0] == marker[0] and len(close[1]) >= len(marker):
                break
            line = lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i]
            body.append((i + 1, line))
            i += 1
        i += 1
        prose.append((i, ""))  # no code span runs across a fenced block
        if tag and tag not in SHELL_TAGS:
            continue
        logical = _logical_lines(body, prompt_only=tag in PROMPT_TAGS)
        if not tag:
            first = next(
                (t for _, t in logical if t.strip() and not t.lstrip().startswith("#")), ""
            )
            if not looks_like_a_command(first):
                continue
        for number, line in logical:
            commands += commands_in_line(line, f"{name}:{number}")
    # Inline code spans in the prose.
    starts, joined = [], ""
    for _, line in prose:
        starts.append(len(joined))
        joined += line + "\n"
    for span in CODE_SPAN.finditer(joined):
        content = " ".join(span[2].split())
        if looks_like_a_command(content):
            number = prose[bisect.bisect_right(starts, span.start()) - 1][0]
            commands += commands_in_line(content.removeprefix("$ "), f"{name}:{number}")
    return commands


# ---------------------------------------------------------------------------------------------
# The Makefile


def _closing(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced $( in {text!r}")


def _split_args(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    return parts + [current]


def expand(text: str, variables: dict[str, str]) -> str:
    """Make's $(VAR), $(if c,then,else) (both branches kept) and $(or a,b) (the first)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i):
            end = _closing(text, i + 2)
            inner = text[i + 2 : end]
            function, _, args = inner.partition(" ")
            if function in ("if", "or", "and") and args:
                parts = [expand(p, variables) for p in _split_args(args)]
                out.append(" ".join(parts[1:]) if function == "if" else parts[0])
            else:  # a variable; one the Makefile does not set stands for itself (DATA_DIR)
                out.append(expand(variables.get(inner, inner), variables))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


@functools.cache
def makefile() -> tuple[frozenset[str], tuple[Command, ...]]:
    """The Makefile's targets and its recipe commands."""
    lines = MAKEFILE.read_text().splitlines()
    variables, targets = {}, set()
    for line in lines:
        if line.startswith("\t") or line.lstrip().startswith("#"):
            continue
        assignment = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(?:\?=|:=|::=|\+=|=)\s*(.*)$", line)
        if assignment:
            variables.setdefault(assignment[1], assignment[2].strip())
            continue
        rule = re.match(r"^([^\s:#=][^:=]*?)\s*:(?!=)", line)
        if rule:
            targets.update(t for t in expand(rule[1], variables).split() if not t.startswith("."))
    commands = []
    recipe = [(n, line[1:]) for n, line in enumerate(lines, 1) if line.startswith("\t")]
    for number, line in _logical_lines(recipe, prompt_only=False):
        line = expand(line.lstrip("@-+ "), variables)
        commands += commands_in_line(line, f"Makefile:{number}")
    return frozenset(targets), tuple(commands)


# ---------------------------------------------------------------------------------------------
# Modules and their flags


def doc_files() -> list[pathlib.Path]:
    return sorted({p for pattern in DOCS for p in ROOT.glob(pattern)})


@functools.cache
def all_commands() -> tuple[Command, ...]:
    commands = []
    for path in doc_files():
        commands += commands_in_markdown(
            path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))
        )
    return tuple(commands) + makefile()[1]


def module_origin(module: str) -> tuple[str, pathlib.Path | None]:
    """('project' | 'other' | 'missing', the file `python -m module` runs), found without
    importing anything: each package level is looked up in its parent's folder."""
    top, *rest = module.split(".")
    spec = importlib.machinery.PathFinder.find_spec(top, [str(ROOT)])
    if spec is None:
        return ("other" if importlib.util.find_spec(top) else "missing"), None
    name = top
    for part in rest:
        if not spec.submodule_search_locations:
            return "missing", None
        name = f"{name}.{part}"
        spec = importlib.machinery.PathFinder.find_spec(name, spec.submodule_search_locations)
        if spec is None:
            return "missing", None
    if spec.submodule_search_locations:  # `python -m package` runs package/__main__.py
        spec = importlib.machinery.PathFinder.find_spec(
            f"{name}.__main__", spec.submodule_search_locations
        )
        if spec is None:
            return "missing", None
    return "project", pathlib.Path(spec.origin)


def project_modules() -> list[str]:
    modules = {c.module for c in all_commands() if c.module}
    return sorted(m for m in modules if module_origin(m)[0] != "other")


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


def flag_words(args) -> list[tuple[str, str | None]]:
    """(name, value) of each -flag / --flag[=value] before a bare `--`."""
    out = []
    for word in args:
        if word == "--":
            break
        if re.match(r"^--?[A-Za-z]", word):
            name, eq, value = word.lstrip("-").partition("=")
            out.append((name, value if eq else None))
    return out


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


SAMPLE = """\
Prose with `python -m bioalbert_tf.demo --output_dir=x` and `make demo`, not `build_vocab`.

```bash
FOO=1 python -m a.b --x=1 \\
  --y='two words' && time .venv/bin/python -m c.d --noz | grep e; make test  # --not=this
```

```console
$ python3 -m e.f --g
output --h=1
```

```
# a comment
TF_CONFIG='{"a": 1}' \\
  python -m g.h --i=<a placeholder with spaces> [--j=1 --k=2] > log.txt
```

```json
{"python -m": "no"}
```

```
not a command --l=1
```
"""


def test_reading_rules():
    commands = commands_in_markdown(SAMPLE, "x.md")
    assert [(c.where, c.words) for c in commands] == [
        ("x.md:4", ("python", "-m", "a.b", "--x=1", "--y=two words")),
        ("x.md:4", (".venv/bin/python", "-m", "c.d", "--noz")),
        ("x.md:4", ("grep", "e")),
        ("x.md:4", ("make", "test")),
        ("x.md:9", ("python3", "-m", "e.f", "--g")),
        ("x.md:15", ("python", "-m", "g.h", "--i=PLACEHOLDER", "--j=1", "--k=2")),
        ("x.md:1", ("python", "-m", "bioalbert_tf.demo", "--output_dir=x")),
        ("x.md:1", ("make", "demo")),
    ]
    assert [c.module for c in commands[:2]] == ["a.b", "c.d"]
    assert flag_words(commands[5].args()) == [("i", "PLACEHOLDER"), ("j", "1"), ("k", "2")]


def test_makefile_expansion():
    variables = {"BIN": ".venv/bin", "OUT": "output/$(NAME)", "NAME": "demo"}
    line = "$(BIN)/python -m m --o=$(OUT) $(if $(DATA_DIR),--d=$(DATA_DIR),) --e=$(or $(E),x)"
    assert expand(line, variables).split() == [
        ".venv/bin/python",
        "-m",
        "m",
        "--o=output/demo",
        "--d=DATA_DIR",
        "--e=E",
    ]


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
