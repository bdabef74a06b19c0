"""Fine-tuning's dev evaluation and resume checkpoints: the Keras callback that scores dev after
every round of `eval_every_steps` and keeps the best weights, and `Resume`, which saves the model,
the optimizer, the dropout seed state and the record of evaluations so that an interrupted run
continues to the same weights."""

from __future__ import annotations

import json
import math

import keras
from absl import logging

from bioalbert_tf import fileio
from bioalbert_tf.evaluation import scoring
from bioalbert_tf.training.finetuning_config import FinetuningConfig

BEST_WEIGHTS = "best.weights.h5"


class DevEvaluation(keras.callbacks.Callback):
    """After every round of `eval_every_steps`: scores dev with the evaluation core and saves the
    weights when the main metric improves; without dev rows, saves the last weights."""

    def __init__(self, task, dev, config: FinetuningConfig):
        super().__init__()
        self.task, self.dev, self.config = task, dev, config
        # fit() runs `rounds` epochs of `per_round` steps; dev is scored after each
        self.rounds = math.ceil(config.num_train_steps / config.eval_every_steps)
        self.per_round = math.ceil(config.num_train_steps / self.rounds)
        self.weights_path = fileio.join(config.output_dir, BEST_WEIGHTS)
        self.best: dict = {}
        self.history: list[dict] = []
        self.steps = 0
        self.resume = Resume(self)

    def main_score(self, predictions) -> float:
        """The dev main metric of predictions on the dev rows."""
        return scoring.evaluate(self.dev, lambda rows: predictions).scores["main_score"]

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        every = self.config.save_checkpoints_steps
        if every and self.steps % every == 0 and self.steps % self.per_round:
            self.resume.save()  # a round's end saves after its evaluation

    def on_epoch_end(self, epoch, logs=None):
        # The loss of a round that a resume cut is the mean over its steps after the resume.
        entry = {"step": self.steps, "loss": float((logs or {}).get("loss", float("nan")))}
        self.history.append(entry)
        self._evaluate()
        self.resume.save()

    def _evaluate(self):
        if not self.dev:
            self.best = {"step": self.steps}
            self.task.model.save_weights(self.weights_path)
            return
        scores = scoring.evaluate(
            self.dev, lambda rows: self.task.predict(rows, self.config.eval_batch_size)
        ).scores
        entry = self.history[-1]
        entry["dev"] = scores["main_score"]
        logging.info(
            "step %d/%d: loss %.4f, dev %s %s",
            self.steps,
            self.rounds * self.per_round,
            entry["loss"],
            scores["main_key"],
            entry["dev"],
        )
        # An undefined dev score (None: STS on constant predictions) is worse than any number.
        if not self.best or _better(scores["main_score"], self.best["main_score"]):
            self.best = {
                "step": self.steps,
                **{k: v for k, v in scores.items() if not isinstance(v, dict)},
            }
            self.task.model.save_weights(self.weights_path)


RESUME_DIR = "resume"


class Resume:
    """`<output_dir>/resume/ckpt-<step>`, written after every dev evaluation and every
    `save_checkpoints_steps`: the model, the optimizer (slots and step), the dropout seed state
    and the evaluation's record (best, history, steps done). An interrupted run continues from
    it, with the training batches it had taken skipped, and ends with the same weights as an
    uninterrupted run; it is removed once metrics.json is written."""

    def __init__(self, dev_eval: DevEvaluation):
        import tensorflow as tf

        self.dev_eval = dev_eval
        model = dev_eval.task.model
        self.record = tf.Variable("", dtype=tf.string, trainable=False)
        model.optimizer.build(model.trainable_variables)  # its slots exist before a restore
        self.folder = fileio.join(dev_eval.config.output_dir, RESUME_DIR)
        # The seed generators' state is among the model's variables but not in its object graph.
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=model.optimizer,
            record=self.record,
            non_trainable=list(model.non_trainable_variables),
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.folder, max_to_keep=1, checkpoint_name="ckpt"
        )

    def restore(self) -> int:
        """Restores the latest checkpoint, if any; returns the steps it had taken."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        self.checkpoint.restore(latest).assert_existing_objects_matched()
        done = json.loads(self.record.numpy().decode("utf-8"))
        ev = self.dev_eval
        ev.best, ev.history, ev.steps = done["best"], done["history"], done["steps"]
        logging.info("resumed from %s at step %d of %d", latest, ev.steps, ev.rounds * ev.per_round)
        return ev.steps

    def save(self) -> None:
        ev = self.dev_eval
        record = {"steps": ev.steps, "best": ev.best, "history": ev.history}
        self.record.assign(json.dumps(record, default=float))
        self.manager.save(checkpoint_number=ev.steps)

    def remove(self) -> None:
        if fileio.exists(self.folder):
            fileio.rmtree(self.folder)


def _better(score: float | None, best: float | None) -> bool:
    return score is not None and (best is None or score > best)
