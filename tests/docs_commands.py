"""The commands the docs show, read as a shell would: for tests/test_docs_commands.py, which checks
that each runs a project module that exists with flags that module accepts.

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

Also here: which modules those commands run (found without importing them), and the flag words
of a command.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import importlib.machinery
import importlib.util
import pathlib
import re
import shlex

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
