"""The demo's stage bookkeeping: skip a finished stage, redo it (and what follows) when settings
change."""

import pathlib
import sys

import pytest
from absl import flags

from bioalbert_tf import demo, demo_recipe, tokenization
from bioalbert_tf.config import AlbertConfig


def _stage_commands(tmp_path, monkeypatch) -> dict[str, tuple]:
    """(marker folder, settings, command) of each of the demo's stages up to the export, which
    is recorded and stopped."""
    commands = {}

    class Stop(Exception):
        pass

    def record(name, marker_dir, settings, command):
        commands[name] = (marker_dir, settings, command)
        if name == "export":
            raise Stop

    with monkeypatch.context() as m:
        m.setattr(demo, "_stage", record)
        flags.FLAGS(["demo", f"--output_dir={tmp_path}/demo", f"--corpus_dir={tmp_path}"])
        try:
            with pytest.raises(Stop):
                demo.main([])
        finally:
            flags.FLAGS.unparse_flags()
    return commands


def _flags(command: list[str]) -> dict[str, str]:
    return dict((a[2:] + "=").split("=")[:2] for a in command if a[:2] == "--")


def test_stages_skip_and_redo(tmp_path, capsys):
    log = tmp_path / "runs.txt"
    cmd = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('x')"]

    def pipeline(first_setting):
        demo._UPSTREAM.clear()
        demo._stage("first", str(tmp_path / "a"), {"v": first_setting}, cmd)
        demo._stage("second", str(tmp_path / "b"), {"v": 1}, cmd)

    pipeline(1)
    assert log.read_text() == "xx"
    pipeline(1)  # same settings: both skipped
    assert log.read_text() == "xx" and "already done" in capsys.readouterr().out
    (tmp_path / "b" / "stale.txt").write_text("old output")
    pipeline(2)  # the first stage changed: it and the stage after it run again, afresh
    assert log.read_text() == "xxxx"
    said = capsys.readouterr().out
    assert f"  settings v: 1 in {tmp_path}/a/.first.json, 2 now" in said
    assert said.count("redone afresh") == 2
    assert not (tmp_path / "b" / "stale.txt").exists()


def test_a_stage_interrupted_after_writing_is_rerun_with_overwrite(
    small_text_corpus, tmp_path, monkeypatch
):
    """The vocabulary and export commands refuse to replace files without --overwrite; the demo
    owns their folders, so it passes it, and a stage killed after writing (a .model, no marker)
    runs again instead of stopping at the refusal."""
    commands = _stage_commands(tmp_path, monkeypatch)
    assert "--overwrite" in commands["export"][2]
    marker_dir, settings, command = commands["vocabulary"]
    assert "--overwrite" in command
    # The demo's vocabulary command, on the small corpus, after a run killed once the .model was
    # written: it runs again and writes a usable model.
    small = {"--input_files": str(small_text_corpus), "--vocab_size": "1000"}
    command = [
        f"{a.split('=')[0]}={small[a.split('=')[0]]}" if a.split("=")[0] in small else a
        for a in command
    ]
    prefix = next(a.split("=", 1)[1] for a in command if a.startswith("--model_prefix="))
    pathlib.Path(marker_dir).mkdir(parents=True)
    pathlib.Path(prefix + ".model").write_bytes(b"half of a model")
    demo._UPSTREAM.clear()
    demo._stage("vocabulary", marker_dir, settings, command)
    assert tokenization.load_sentencepiece(prefix + ".model").get_piece_size() == 1000
    assert (pathlib.Path(marker_dir) / ".vocabulary.json").exists()


def test_the_demo_pretrains_on_the_records_it_builds_with_positions_for_them(tmp_path, monkeypatch):
    commands = _stage_commands(tmp_path, monkeypatch)
    records, pretraining = _flags(commands["tfrecords"][2]), _flags(commands["pretraining"][2])
    # The recipe's values are in the commands (so in the stages' manifests), not a flagfile's path.
    assert demo_recipe.flagfile_values(demo_recipe.BUILDER_FLAGS).items() <= records.items()
    recipe = demo_recipe.flagfile_values(demo_recipe.PRETRAINING_FLAGS)
    assert {
        k: v for k, v in recipe.items() if k in ("learning_rate", "train_batch_size")
    }.items() <= (pretraining.items())
    for flag in ("max_seq_length", "max_predictions_per_seq"):
        assert records[flag] == pretraining[flag], flag
    assert pretraining["input_file"].startswith(records["output_dir"])
    config = AlbertConfig.from_json_file(pretraining["albert_config_file"])
    assert config.max_position_embeddings >= int(pretraining["max_seq_length"])
    # ALBERT's 15%: the cap on predictions is what a sequence's 15% rounds to
    assert int(records["max_predictions_per_seq"]) == round(0.15 * int(records["max_seq_length"]))
    assert int(pretraining["num_warmup_steps"]) < int(pretraining["num_train_steps"])
    # fine-tuning runs the recipe's flagfile at the pretrained length, with the pretrained model
    assert int(pretraining["max_seq_length"]) == demo_recipe.SEQ
    finetuning = _flags(demo_recipe.finetuning_args(300, 30))
    assert demo_recipe.flagfile_values(demo_recipe.FINETUNING_FLAGS).items() <= finetuning.items()
    assert finetuning["max_seq_length"] == pretraining["max_seq_length"]
    assert finetuning["albert_config_file"] == pretraining["albert_config_file"]
    assert (finetuning["num_train_steps"], finetuning["num_warmup_steps"]) == ("300", "30")
    # a short run (--finetuning_steps / --pretraining_steps) warms up for at most a tenth of it
    for steps in (1, 10, 299):
        short = _flags(demo_recipe.finetuning_args(steps, 30))
        assert 1 <= int(short["num_warmup_steps"]) <= max(1, steps // 10), steps
        short = _flags(demo_recipe.pretraining_args(steps))
        assert 1 <= int(short["num_warmup_steps"]) <= max(1, steps // 10), steps


def test_a_fill_mask_answer_counts_only_the_expected_whole_word():
    assert demo_recipe.names_expected(["\u2581the", "\u2581protein", ","], "protein")
    assert not demo_recipe.names_expected(["\u2581proteins", "\u2581", "protein-"], "protein")


def test_fill_mask_ids_are_the_sentence_ids_with_the_slot_masked(tiny_spm):
    """The model reads a fill-mask sentence as it read its training text: the ids of the sentence
    with a one-piece word in the slot, that piece replaced by [MASK]. A slot followed by "." or
    "," gets no word-boundary piece of its own between the mask and the punctuation."""
    tok = tokenization.Tokenizer(tiny_spm)
    pieces = [tok.id_to_piece(i) for i in range(tok.sp.get_piece_size())]
    sentences = (
        "The cells were treated by [MASK].",
        "[MASK], and then the patients",
        "Expression of the [MASK] was measured.",
        "in the [MASK]",
    )
    words = [
        p[1:]
        for p in pieces
        if p.startswith("\u2581")
        and len(p) > 4
        and p[1:].isalpha()
        and not any(p[1:] in s.lower() for s in sentences)
    ][:5]
    assert words
    for word in words:
        for sentence in sentences:
            ids = [2, *tok.encode([sentence.replace("[MASK]", word)])[0], 3]
            slot = ids.index(pieces.index("\u2581" + word))
            expected = ids[:slot] + [tokenization.MASK_ID] + ids[slot + 1 :]
            assert demo_recipe.fill_mask_ids(tok, sentence, tokenization.MASK_ID) == expected, (
                word,
                sentence,
            )


def test_every_flag_the_demo_passes_is_defined_by_its_stage(tmp_path, monkeypatch):
    """A flag renamed or dropped in a stage's module fails here, not minutes into `make demo`."""
    import subprocess

    commands = _stage_commands(tmp_path, monkeypatch)
    assert set(commands) >= {"vocabulary", "tfrecords", "pretraining", "export"}
    # the fine-tuning stage (it needs --data_dir and the pretrained SavedModel): its recipe
    commands["finetuning"] = (
        None,
        None,
        ["python", "-m", "bioalbert_tf.run_finetuning", *demo_recipe.finetuning_args(300, 30)],
    )
    for name, (_, _, command) in commands.items():
        module = command[command.index("-m") + 1]
        listing = subprocess.run(
            [
                sys.executable,
                "-c",
                "import importlib, sys; from absl import flags; "
                f"importlib.import_module({module!r}); print(' '.join(flags.FLAGS))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for flag in _flags(command):
            assert flag in listing or (flag[:2] == "no" and flag[2:] in listing), (name, flag)


def test_the_expected_rank_counts_the_pieces_scored_above_the_expected_word(tiny_spm):
    import numpy as np

    tok = tokenization.Tokenizer(tiny_spm)
    pieces = [tok.id_to_piece(i) for i in range(tok.sp.get_piece_size())]
    word = next(p[1:] for p in pieces if p.startswith("\u2581") and len(p) > 3 and p[1:].isalpha())
    logits = np.linspace(-1.0, 1.0, len(pieces))  # the last id scores highest
    rank = demo_recipe.expected_rank(logits, tok, word)
    assert rank == len(pieces) - pieces.index("\u2581" + word)
    logits[pieces.index("\u2581" + word)] = 5.0
    assert demo_recipe.expected_rank(logits, tok, word) == 1
    assert demo_recipe.expected_rank(logits, tok, "xqzvwk") is None  # not one piece
