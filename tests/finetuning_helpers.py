"""What the fine-tuning tests share: the small model config (the `setup` fixture), a small data
folder for each dataset (subsets of the shared files, or written fixtures for the datasets that
are not public), and run_finetuning's small command line and config."""

import json
import pathlib
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_DATA


def _head(src: pathlib.Path, dst: pathlib.Path, lines: int):
    text = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dst.write_text("".join(text[:lines]), encoding="utf-8")


def _ner_subset(src: pathlib.Path, dst: pathlib.Path, sentences: int):
    blocks = src.read_text(encoding="utf-8").split("\n\n")
    dst.write_text("\n\n".join(blocks[:sentences]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module", name="setup")
def finetuning_setup(tiny_spm, tmp_path_factory):
    """A folder holding the small ALBERT config these tests fine-tune (albert_tiny, 2 layers in
    one group, the tiny vocabulary's size): `setup / "albert_config.json"`."""
    from bioalbert_tf.config import AlbertConfig

    folder = tmp_path_factory.mktemp("finetuning")
    values = AlbertConfig.from_json_file(str(ROOT / "configs" / "albert_tiny.json")).to_dict()
    # Two layers in one group: albert_tiny's 5 layers in 2 groups of 2 inner layers (tested in
    # test_model, test_export, test_checkpoints) take 2.5x as long to trace here, 45 s a run.
    values.update(
        vocab_size=1000,
        max_position_embeddings=128,
        num_hidden_layers=2,
        num_hidden_groups=1,
        inner_group_num=1,
    )
    (folder / "albert_config.json").write_text(json.dumps(values))
    return folder


def _shared(*parts) -> pathlib.Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data)")
    return path


def _data(name: str, root: pathlib.Path) -> pathlib.Path:
    """A small data folder for each dataset: subsets of the real files, or written fixtures."""
    d = root / name
    d.mkdir(exist_ok=True)
    if name == "ncbi_disease":
        src = _shared("ner", "NCBI-disease")
        for split, n in (("train", 150), ("devel", 40), ("test", 40)):
            _ner_subset(src / f"{split}.tsv", d / f"{split}.tsv", n)
    elif name == "share_clefe":  # typed tags, -DOCSTART-, as the BLUE layout
        rows = (
            "-DOCSTART-\tO\n\n"
            "The\tO\npatient\tO\nhad\tO\nacute\tB-Disorder\n"
            "renal\tI-Disorder\nfailure\tI-Disorder\n.\tO\n\n"
            "No\tO\nchest\tB-Disorder\npain\tI-Disorder\n.\tO\n"
        )
        for split in ("train", "dev", "test"):
            (d / f"{split}.tsv").write_text(rows * 6)
    elif name == "gad":
        src = _shared("re", "GAD")
        for split, n in (("train", 120), ("dev", 40), ("test", 40)):
            _head(src / f"{split}.tsv", d / f"{split}.tsv", n)
    elif name == "chemprot":
        src = _shared("re", "ChemProt-scibert")
        for split, n in (("train", 120), ("dev", 40), ("test", 40)):
            _head(src / f"{split}.txt", d / f"{split}.txt", n)
    elif name == "i2b2":  # BLUE layout: index, sentence with @problem$/@treatment$, label
        rows = ["index\tsentence\tlabel"] + [
            f"{i}\tThe @treatment$ improved her @problem$ today .\t{lab}"
            for i, lab in enumerate(["TrIP", "false", "TrAP", "false"] * 10)
        ]
        for split in ("train", "dev", "test"):
            (d / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    elif name == "hoc":
        src = _shared("classification", "HoC")
        for split, n in (("train", 150), ("dev", 60), ("test", 60)):
            _head(src / f"{split}.tsv", d / f"{split}.tsv", n)
    elif name == "mednli":  # MedNLI JSON lines, as distributed (credentialed, so written here)
        rows = [
            {
                "sentence1": "The patient has a fever.",
                "sentence2": s,
                "gold_label": g,
                "pairID": str(i),
            }
            for i, (s, g) in enumerate(
                [
                    ("The patient is febrile.", "entailment"),
                    ("The patient is afebrile.", "contradiction"),
                    ("The patient has an infection.", "neutral"),
                ]
                * 8
            )
        ]
        for fname in ("mli_train_v1.jsonl", "mli_dev_v1.jsonl", "mli_test_v1.jsonl"):
            (d / fname).write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif name == "biosses":
        src = _shared("sts", "BIOSSES")
        for split in ("train", "dev", "test"):
            (d / f"{split}.tsv").write_bytes((src / f"{split}.tsv").read_bytes())
    elif name == "bioasq4b":
        src = _shared("qa", "BioASQ")
        for f in [*src.glob("BioASQ-test-factoid-4b-[12].json"), *src.glob("4B[12]_golden.json")]:
            (d / f.name).write_bytes(f.read_bytes())
        test = json.loads((d / "BioASQ-test-factoid-4b-1.json").read_text())
        golden = {
            q["id"]: q.get("exact_answer", [])
            for q in json.loads((d / "4B1_golden.json").read_text())["questions"]
        }
        # a training file in BioBERT's SQuAD layout, answers located in their snippets
        paragraphs = []
        for p in test["data"][0]["paragraphs"]:
            for qa in p["qas"]:
                for syn in golden.get(qa["id"].split("_")[0], []):
                    s = syn[0] if isinstance(syn, list) else syn
                    at = p["context"].lower().find(s.lower())
                    if at >= 0:
                        paragraphs.append(
                            {
                                "context": p["context"],
                                "qas": [
                                    {
                                        "id": qa["id"],
                                        "question": qa["question"],
                                        "answers": [
                                            {
                                                "text": p["context"][at : at + len(s)],
                                                "answer_start": at,
                                            }
                                        ],
                                    }
                                ],
                            }
                        )
                        break
        (d / "BioASQ-train-factoid-4b.json").write_text(
            json.dumps({"data": [{"paragraphs": paragraphs}]})
        )
    return d


def _cli_flags(setup, tiny_spm, data, out, *extra) -> list[str]:
    """run_finetuning's flags for a 2-step i2b2 run of the small model, then `extra`."""
    return [
        "--dataset=i2b2",
        f"--data_dir={data}",
        f"--output_dir={out}",
        f"--albert_config_file={setup}/albert_config.json",
        f"--spm_model_file={tiny_spm}",
        "--num_train_steps=2",
        "--num_warmup_steps=1",
        "--max_seq_length=32",
        *extra,
    ]


def _run_cli(setup, tiny_spm, data, out, *extra) -> subprocess.CompletedProcess:
    """`python -m bioalbert_tf.run_finetuning` with `_cli_flags`, its output captured."""
    flags = _cli_flags(setup, tiny_spm, data, out, *extra)
    command = [sys.executable, "-m", "bioalbert_tf.run_finetuning", *flags]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def _small(setup, tiny_spm, data, out, **kw):
    from bioalbert_tf.training import finetuning

    values = dict(
        dataset="i2b2",
        data_dir=str(data),
        output_dir=str(out),
        albert_config_file=str(setup / "albert_config.json"),
        spm_model_file=tiny_spm,
        learning_rate=1e-3,
        train_batch_size=8,
        num_train_steps=2,
        num_warmup_steps=1,
        max_seq_length=32,
        eval_every_steps=1,
    )
    return finetuning.FinetuningConfig(**{**values, **kw})
