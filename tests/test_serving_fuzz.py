"""What users send by mistake, to every task SavedModel, through the Python loader and through
TensorFlow's C API (TF Serving's loader path, tests/tf_c_api.py): batches of different sizes in
one request, empty batches, texts without a single token, NUL bytes, very long texts, invalid
UTF-8, word counts that do not fit. Each request gets a result or an InvalidArgument error, both
loaders agree, and no process dies (each runs in its own process; its exit status is checked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import serving_examples, tf_c_api
from tests.conftest import ROOT

tf = pytest.importorskip("tensorflow")

INVALID_ARGUMENT = 3  # TF_Code
TOKENLESS = ["", " ", "\x00", "\u200b", "\u0301", "\t\n", "\u200b \u200b"]
LONG = "BRCA1 mutations cause hereditary breast and ovarian cancer. " * 400  # 24,000 characters
BAD_UTF8 = "\u00ff\u00fe BRCA1 \u00c3"  # sent as latin-1 bytes: ff fe ... c3 (cut short)
OK, INVALID, EITHER = "ok", "invalid", "ok or invalid"
SINGLE = {"ner": "text", "re": "text", "hoc": "text"}
PAIRS = {"nli": ("text_a", "text_b"), "sts": ("text_a", "text_b"), "qa": ("question", "context")}


def cases() -> list[dict]:
    out = []

    def add(task, name, inputs, expect, signature="serving_default", **extra):
        out.append(
            {
                "task": task,
                "signature": signature,
                "name": name,
                "inputs": inputs,
                "expect": expect,
                **extra,
            }
        )

    for task, key in SINGLE.items():
        add(task, "empty batch", {key: []}, OK)
        add(task, "token-less texts", {key: TOKENLESS}, OK)
        for k, text in enumerate(TOKENLESS):
            add(task, f"token-less text {k} alone", {key: [text]}, OK)
        add(task, "token-less and real texts", {key: ["", "BRCA1 mutation", "\u200b"]}, OK)
        add(task, "NUL inside", {key: ["BRCA1\x00 mutation", "a\x00\x00b"]}, OK)
        add(task, "very long", {key: [LONG, "short"]}, OK)
        add(task, "invalid UTF-8", {key: [BAD_UTF8, "fine"]}, EITHER, latin1=True)
    for task, (a, b) in PAIRS.items():
        add(task, "batch 2 and 1", {a: ["x y", "z"], b: ["w"]}, INVALID)
        add(task, "batch 1 and 2", {a: ["x"], b: ["y", "z"]}, INVALID)
        add(task, "batch 0 and 1", {a: [], b: ["y"]}, INVALID)
        add(task, "empty batch", {a: [], b: []}, OK)
        add(task, "token-less pairs", {a: TOKENLESS, b: TOKENLESS[::-1]}, OK)
        for k, text in enumerate(TOKENLESS):
            add(task, f"token-less pair {k} alone", {a: [text], b: [text]}, OK)
        add(task, "NUL inside", {a: ["what\x00 is it"], b: ["BRCA1\x00 is a gene"]}, OK)
        add(task, "very long", {a: ["What causes cancer?"], b: [LONG]}, OK)
        add(task, "invalid UTF-8", {a: [BAD_UTF8], b: ["fine"]}, EITHER, latin1=True)
    words = ["BRCA1", "mutation", "\u200b", ""]
    tag = dict(task="ner", signature="tag_words")
    add(
        **tag,
        name="batch 2 and 1",
        inputs={"words": [words, words], "num_words": [4]},
        expect=INVALID,
    )
    add(
        **tag,
        name="num_words past the columns",
        inputs={"words": [words], "num_words": [5]},
        expect=INVALID,
    )
    add(
        **tag,
        name="negative num_words",
        inputs={"words": [words], "num_words": [-1]},
        expect=INVALID,
    )
    add(**tag, name="no words", inputs={"words": [words, words], "num_words": [0, 0]}, expect=OK)
    add(
        **tag,
        name="token-less words",
        inputs={"words": [["\u200b", "", "\x00"]], "num_words": [3]},
        expect=OK,
    )
    add(
        **tag,
        name="empty batch",
        inputs={"words": [], "num_words": []},
        expect=OK,
        shapes={"words": [0, 0], "num_words": [0]},
    )
    return out


def _tokenless_found_something(case: dict, result: dict) -> bool:
    """NER: an entity (or a tag other than O) for a text or word that has no token."""
    if case["signature"] == "tag_words":
        words, tags = case["inputs"]["words"], result["tags"]["value"]
        width = result["tags"]["shape"][1]  # the longest num_words
        return any(
            tags[r * width + k] not in ("", "O")
            for r, row in enumerate(words)
            for k, w in enumerate(row[:width])
            if w in TOKENLESS and k < case["inputs"]["num_words"][r]
        )
    found = result["num_entities"]["value"]
    return any(
        n for text, n in zip(case["inputs"]["text"], found, strict=True) if text in TOKENLESS
    )


def _run(argv: list[str], request: dict, what: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, *argv],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, f"{what} died (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])["results"]


def _request(case: dict) -> dict:
    keys = ("signature", "inputs", "shapes", "latin1")
    return {k: case[k] for k in keys if k in case}


@pytest.fixture(scope="module")
def models(tiny_spm, tmp_path_factory):
    return serving_examples.build_models(tiny_spm, str(tmp_path_factory.mktemp("fuzz")))


def test_no_request_crashes_either_loader(models):
    all_cases = cases()
    python = _run(
        ["-m", "tests.serving_fuzz"],
        {"models": models, "runs": [{"task": c["task"], **_request(c)} for c in all_cases]},
        "the Python loader",
    )
    c_api = []
    for task, path in models.items():
        mine = [c for c in all_cases if c["task"] == task]
        request = {
            "model_dir": path,
            "libraries": tf_c_api.text_op_libraries(),
            "runs": [_request(c) for c in mine],
            "collect_errors": True,
        }
        c_api += list(
            zip(
                mine,
                _run([str(ROOT / "tests" / "tf_c_api.py")], request, f"the C API loader on {task}"),
                strict=True,
            )
        )
    by_case = dict(zip((id(c) for c in all_cases), python, strict=True))
    failures = []
    for case, c_result in c_api:
        py_result = by_case[id(case)]
        where = f"{case['task']} {case['signature']}: {case['name']}"
        outcomes = []
        for loader, result in (("python", py_result), ("C API", c_result)):
            error = result.get("error")
            if error is None:
                outcomes.append(OK)
            elif error.get("code") == INVALID_ARGUMENT:
                outcomes.append(INVALID)
            else:
                failures.append(f"{where}: {loader} gave {error}")
                outcomes.append("other")
        if outcomes[0] != outcomes[1]:
            failures.append(f"{where}: python {outcomes[0]}, C API {outcomes[1]}")
        elif case["expect"] != EITHER and outcomes[0] != case["expect"]:
            failures.append(
                f"{where}: expected {case['expect']}, got {outcomes[0]} "
                f"({py_result.get('error', '')})"
            )
        elif outcomes[0] == OK:
            shapes = {k: v["shape"] for k, v in py_result.items()}
            if shapes != {k: v["shape"] for k, v in c_result.items()}:
                failures.append(f"{where}: output shapes differ between the loaders")
            if case["task"] == "ner" and _tokenless_found_something(case, py_result):
                failures.append(f"{where}: entities in texts without a token: {py_result}")
    assert not failures, "\n".join(failures)
