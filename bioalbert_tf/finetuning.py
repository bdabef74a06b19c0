"""Fine-tuning as a library function (run_finetuning.py is its command line).

Trains a task model from a pretrained checkpoint (TF1 or ours) with AdamW, linear warm-up and
polynomial decay; evaluates on dev every `eval_every_steps` with the benchmark's metric code and
keeps the best weights; predicts test; writes predictions, metrics.json and the SavedModel.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

from absl import logging

from bioalbert_tf import checkpoints, datasets, fileio


@dataclasses.dataclass(frozen=True)
class FinetuningConfig:
    dataset: str
    data_dir: str
    output_dir: str
    albert_config_file: str
    spm_model_file: str
    init_checkpoint: str | None = None
    # The paper's Table 5: AdamW, lr 1e-5, batch 32, 10000 steps, 320 warm-up, lowercased;
    # max length 512 for NER and 128 otherwise (None: the dataset registry's).
    learning_rate: float = 1e-5
    train_batch_size: int = 32
    eval_batch_size: int = 64
    num_train_steps: int = 10000
    num_warmup_steps: int = 320
    max_seq_length: int | None = None
    eval_every_steps: int = 1000
    use_train_dev: bool = False
    do_lower_case: bool = True
    random_seed: int = 12345
    weight_decay_rate: float = 0.01


def evaluate(name: str, examples, predictions) -> dict:
    """The benchmark's metrics for predictions on gold examples; `main` is the headline number."""
    from bioalbert_tf.benchmark import metrics
    from bioalbert_tf.benchmark import tasks as bench

    spec, bench_spec = datasets.get(name), bench.get(name)
    if spec.task == datasets.NER:
        out = metrics.ner_scores([e.tags for e in examples], predictions)
    elif spec.task == datasets.RE:
        out = metrics.re_scores(
            [e.label for e in examples],
            predictions,
            bench_spec.negative_labels,
            bench_spec.positive_labels,
        )
    elif spec.task == datasets.DOC:
        vec = lambda labels: [int(str(j) in labels) for j in range(len(datasets.HOC_LABELS))]  # noqa: E731
        out = metrics.hoc_scores(
            [e.id for e in examples],
            [vec(e.label) for e in examples],
            [vec(p) for p in predictions],
        )
    elif spec.task == datasets.NLI:
        out = metrics.classification_scores([e.label for e in examples], predictions)
    elif spec.task == datasets.STS:
        out = metrics.sts_scores([float(e.label) for e in examples], predictions)
    else:
        raise ValueError(f"{name}: use the benchmark runner to score {spec.task} (golden files)")
    out["main"] = out[bench_spec.main_key]
    out["main_metric"] = bench_spec.main_key
    return out


def write_predictions(path: str, name: str, examples, predictions) -> None:
    """In the formats `python -m bioalbert_tf.benchmark.score` reads."""
    spec = datasets.get(name)
    with fileio.open_file(path, "w") as f:
        if spec.task == datasets.NER:
            for e, tags in zip(examples, predictions, strict=True):
                f.write("".join(f"{w}\t{t}\n" for w, t in zip(e.words, tags, strict=True)) + "\n")
        elif spec.task == datasets.DOC:
            for e, p in zip(examples, predictions, strict=True):
                f.write(
                    f"{e.id}\t"
                    + ",".join(f"{j}_{int(str(j) in p)}" for j in range(len(datasets.HOC_LABELS)))
                    + "\n"
                )
        else:
            for e, p in zip(examples, predictions, strict=True):
                f.write(f"{e.id}\t{p}\n")


def _qa_train(data_dir: str):
    """SQuAD-format training files of a BioASQ folder (BioBERT layout: *train*.json)."""
    files = [
        p
        for p in fileio.glob(fileio.join(data_dir, "*.json"))
        if "train" in fileio.basename(p).lower()
    ]
    if not files:
        raise FileNotFoundError(f"{data_dir}: no SQuAD-format training file (*train*.json)")
    return [e for path in files for e in datasets.read_squad(path)]


def _qa_test(task, config: FinetuningConfig) -> dict:
    """Every test batch of the year: top-5 answers per question (merged over its snippets),
    written as {question_id: [answers]} and scored against the golden file."""
    import collections

    from bioalbert_tf.benchmark import data as bench_data
    from bioalbert_tf.benchmark import metrics
    from bioalbert_tf.benchmark import tasks as bench
    from bioalbert_tf.benchmark.runner import merge_answers

    year = config.dataset[len("bioasq") :]
    per_batch = {}
    for name, test_file, golden_file in bench_data.bioasq_batches(config.data_dir, year):
        examples = datasets.read_squad(test_file)
        grouped = collections.defaultdict(lambda: ([], []))
        for e, answers in zip(
            examples, task.predict(examples, config.eval_batch_size), strict=True
        ):
            texts, probs = grouped[bench_data.question_id(e.id)]
            texts.append([a for a, _ in answers])
            probs.append([p for _, p in answers])
        merged = {qid: merge_answers(t, p) for qid, (t, p) in grouped.items()}
        with fileio.open_file(fileio.join(config.output_dir, f"predictions-{name}.json"), "w") as f:
            json.dump(merged, f, indent=1)
        golden = bench_data.read_bioasq_golden(golden_file)
        per_batch[name] = metrics.bioasq_factoid_scores(golden, merged)
    out = metrics.bioasq_year_scores(per_batch)
    key = bench.get(config.dataset).main_key
    out["main"], out["main_metric"] = out[key], key
    return out


def run(config: FinetuningConfig) -> dict:
    import keras

    from bioalbert_tf import export
    from bioalbert_tf.config import AlbertConfig
    from bioalbert_tf.optimization import AlbertWarmupPolynomialDecay, adamw
    from bioalbert_tf.tasks import create_task

    spec = datasets.get(config.dataset)
    keras.utils.set_random_seed(config.random_seed)
    albert_config = AlbertConfig.from_json_file(config.albert_config_file)
    with fileio.open_file(config.spm_model_file, "rb") as f:
        spm_model = f.read()
    labels = datasets.labels_for(config.dataset, config.data_dir)
    max_len = config.max_seq_length or spec.max_seq_length
    task = create_task(spec, labels, albert_config, spm_model, max_len, config.do_lower_case)
    init = "random"
    if config.init_checkpoint:
        init = checkpoints.load_init_checkpoint(task.encoder, config.init_checkpoint)
    if spec.task == datasets.QA:
        train, dev, test = _qa_train(config.data_dir), [], []
    else:
        split = "train_dev" if config.use_train_dev else "train"
        train = datasets.read_split(config.dataset, config.data_dir, split)
        dev = datasets.read_split(config.dataset, config.data_dir, "dev")
        test = datasets.read_split(config.dataset, config.data_dir, "test")
    logging.info(
        "%s: %d train, %d dev, %d test examples; labels %s; init %s",
        spec.name,
        len(train),
        len(dev),
        len(test),
        labels,
        init,
    )
    fileio.makedirs(config.output_dir)
    schedule = AlbertWarmupPolynomialDecay(
        config.learning_rate, config.num_train_steps, config.num_warmup_steps
    )
    task.model.compile(
        optimizer=adamw(schedule, weight_decay_rate=config.weight_decay_rate), loss=task.loss()
    )
    rounds = math.ceil(config.num_train_steps / config.eval_every_steps)
    per_round = math.ceil(config.num_train_steps / rounds)
    best = {"main": -math.inf}
    best_weights = fileio.join(config.output_dir, "best.weights.h5")
    history = []

    class DevEval(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            step = (epoch + 1) * per_round
            if not dev:  # BioASQ has no dev split with answers: keep the last weights
                history.append(
                    {"step": step, "loss": float((logs or {}).get("loss", float("nan")))}
                )
                best.update(step=step)
                task.model.save_weights(best_weights)
                return
            scores = evaluate(config.dataset, dev, task.predict(dev, config.eval_batch_size))
            history.append(
                {
                    "step": step,
                    "loss": float((logs or {}).get("loss", float("nan"))),
                    "dev": scores["main"],
                }
            )
            logging.info(
                "step %d/%d: loss %.4f, dev %s %.4f",
                step,
                rounds * per_round,
                history[-1]["loss"],
                scores["main_metric"],
                scores["main"],
            )
            if scores["main"] > best["main"]:
                best.update(scores, step=step)
                task.model.save_weights(best_weights)

    start = time.time()
    task.model.fit(
        task.train_dataset(train, config.train_batch_size, config.random_seed),
        steps_per_epoch=per_round,
        epochs=rounds,
        callbacks=[DevEval()],
        verbose=0,
    )
    train_seconds = time.time() - start
    task.model.load_weights(best_weights)
    if spec.task == datasets.DOC:
        task.choose_threshold(
            dev, lambda ex, pred: evaluate(config.dataset, ex, pred)["main"], config.eval_batch_size
        )
    if spec.task == datasets.QA:
        test_scores = _qa_test(task, config)
    else:
        predictions = task.predict(test, config.eval_batch_size)
        path = fileio.join(config.output_dir, "test_predictions.tsv")
        write_predictions(path, config.dataset, test, predictions)
        test_scores = evaluate(config.dataset, test, predictions) if test else None
    result = {
        "dataset": config.dataset,
        "task": spec.task,
        "init_checkpoint": config.init_checkpoint,
        "init": init,
        "best_dev": {k: v for k, v in best.items() if not isinstance(v, dict)},
        "history": history,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_1000_steps": round(1000 * train_seconds / (rounds * per_round), 1),
        "config": dataclasses.asdict(config),
    }
    if spec.task == datasets.DOC:
        result["threshold"] = task.threshold
    if test_scores is not None:
        result["test"] = test_scores
    export.export_task(
        task, fileio.join(config.output_dir, "saved_model"), {"best_dev_step": best.get("step")}
    )
    with fileio.open_file(fileio.join(config.output_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2, default=float)
    return result
