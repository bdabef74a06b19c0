"""The benchmark imports no modeling code and no TensorFlow (it scores any SavedModel with our
signatures), and the evaluation core imports nothing downstream of it: checked by what a fresh
process loads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytest.importorskip("tensorflow")


def _modules_loaded_by(imports: str, top: tuple, prefixes: tuple) -> list[str]:
    """Modules of `top` packages or under `prefixes` that a fresh process loads for `imports`."""
    code = (
        f"import sys, pkgutil, importlib\n{imports}\n"
        "print([m for m in sys.modules "
        f"if m.split('.')[0] in {top!r} or m.startswith({prefixes!r})])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return eval(proc.stdout.strip().splitlines()[-1])


def test_benchmark_imports_no_modeling_code_and_no_tensorflow():
    downstream = (
        "bioalbert_tf.modeling",
        "bioalbert_tf.checkpoints",
        "bioalbert_tf.tasks",
        "bioalbert_tf.training.pretraining",
        "bioalbert_tf.training.finetuning",
    )
    # the library, and each command line in a process of its own (each defines its flags)
    for imports in (
        "import bioalbert_tf.benchmark.runner, bioalbert_tf.benchmark.reporting",
        "import bioalbert_tf.benchmark.__main__",
        "import bioalbert_tf.benchmark.score",
        "import bioalbert_tf.benchmark.report",
    ):
        assert _modules_loaded_by(imports, ("tensorflow",), downstream) == [], imports


def test_the_evaluation_core_imports_nothing_downstream():
    """Fine-tuning and the runner import the evaluation core, never the other way round."""
    imports = (
        "import bioalbert_tf.evaluation as ev\nfor m in pkgutil.iter_modules(ev.__path__):\n"
        "    importlib.import_module('bioalbert_tf.evaluation.' + m.name)"
    )
    downstream = (
        "bioalbert_tf.benchmark",
        "bioalbert_tf.training.finetuning",
        "bioalbert_tf.tasks",
        "bioalbert_tf.modeling",
        "bioalbert_tf.run_",
    )
    loaded = _modules_loaded_by(imports, ("tensorflow", "keras"), downstream)
    assert loaded == []
    # the check sees what it should: the runner does load the evaluation core
    assert "bioalbert_tf.evaluation.scoring" in _modules_loaded_by(
        "import bioalbert_tf.benchmark.runner", (), ("bioalbert_tf.evaluation",)
    )
