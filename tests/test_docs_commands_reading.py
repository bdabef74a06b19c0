"""The rules that read the docs' commands (tests/docs_commands.py), on written samples: fenced
blocks by tag, prompts, continuations, operators, assignments, placeholders, optional flags and
inline code spans are read into commands; the Makefile's variables and functions are expanded."""

from __future__ import annotations

from tests.docs_commands import commands_in_markdown, expand, flag_words

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
