"""The pretraining loop as a library function (run_pretraining.py is its command line).

What it does, as google-research/albert run_pretraining.py did on TPUEstimator:
- input: shuffled files, interleaved, shuffle(100), batched with drop_remainder, int64 -> int32;
- loss: masked-LM + SOP; gradients clipped to global norm 1.0 per replica, then summed over the
  replicas (the reference's `tf.gradients` skips CrossShardOptimizer's 1/num_shards loss scaling,
  and its `apply_gradients` takes the `cross_replica_sum`);
- LAMB (or AdamW) with linear warm-up and polynomial decay from step 0;
- `iterations_per_loop` steps per host call; a checkpoint every `save_checkpoints_steps`;
- eval: masked-LM loss and accuracy weighted over all masked positions of all eval batches.
XLA: with `jit_compile` (run_pretraining's default) the per-replica forward, backward and clipping
are compiled with XLA on CPU and GPU; TPUs compile everything anyway.
What it adds: every run is resumable. Checkpoints hold the model, the optimizer (slots and step)
and (with one replica) the input iterator's position, so a run killed at any point and started
again with the same command continues from the last checkpoint and produces the same weights as
an uninterrupted run (on CPU, where the ops are deterministic). Seeds fix initialisation and data
order.
"""

from __future__ import annotations

import json
import time

from absl import logging

from bioalbert_tf import checkpoints, features, fileio, manifest
from bioalbert_tf.training import record_check, run_settings
from bioalbert_tf.training.pretraining_config import PretrainingConfig

AUTOTUNE = -1


def expand_files(patterns) -> list[str]:
    """The TFRecord files: sorted, unique (`fileio.expand`)."""
    return fileio.expand(patterns, "TFRecord files")


def _compression(path: str) -> str:
    with fileio.open_file(path, "rb") as f:
        return "GZIP" if f.read(2) == b"\x1f\x8b" else ""


def make_dataset(
    files: list[str],
    batch_size: int,
    config: PretrainingConfig,
    is_training: bool,
    input_context=None,
):
    """Per-replica batches of parsed examples (int32 ids, float32 weights)."""
    import tensorflow as tf

    compression = _compression(files[0])
    ds = tf.data.Dataset.from_tensor_slices(files)
    shards = input_context.num_input_pipelines if input_context else 1
    index = input_context.input_pipeline_id if input_context else 0
    shard_records = shards > 1 and len(files) < shards
    if shards > 1 and not shard_records:
        ds = ds.shard(shards, index)  # each worker reads its own files
    if is_training:
        ds = ds.repeat().shuffle(len(files), seed=config.random_seed)
        ds = ds.interleave(
            lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
            cycle_length=min(4, len(files)),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
        if shard_records:
            ds = ds.shard(shards, index)
        ds = ds.shuffle(100, seed=config.random_seed)
    else:
        ds = tf.data.TFRecordDataset(files, compression_type=compression)
        if shard_records or shards > 1:
            ds = ds.shard(shards, index)
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)  # static shapes for TPUs
    seq, pred = config.max_seq_length, config.max_predictions_per_seq
    ds = ds.map(
        lambda b: features.parse_pretraining_examples(b, seq, pred),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return ds.prefetch(AUTOTUNE)


def worker_dir(output_dir: str, strategy) -> str:
    """Where a non-chief worker writes what the chief writes to output_dir (then removes it)."""
    resolver = strategy.cluster_resolver
    return fileio.join(output_dir, f".worker-{resolver.task_type}-{resolver.task_id}")


def _distributed(strategy, files, global_batch, config, is_training):
    import tensorflow as tf

    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(
            f"global batch {global_batch} is not divisible by "
            f"{strategy.num_replicas_in_sync} replicas"
        )

    def fn(ctx: tf.distribute.InputContext):
        return make_dataset(
            files, ctx.get_per_replica_batch_size(global_batch), config, is_training, ctx
        )

    return strategy.distribute_datasets_from_function(fn)


METRICS = ("loss", "mlm_loss", "sop_loss", "mlm_accuracy", "sop_accuracy")


class Trainer:
    """Model, optimizer, input iterator and their checkpoint, under one strategy."""

    def __init__(self, config: PretrainingConfig, strategy):
        import keras
        import tensorflow as tf

        from bioalbert_tf.config import AlbertConfig
        from bioalbert_tf.modeling import AlbertPretrainer
        from bioalbert_tf.training.optimization import AlbertWarmupPolynomialDecay, create_optimizer

        config.validate()
        self.config, self.strategy = config, strategy
        self.albert_config = AlbertConfig.from_json_file(config.albert_config_file)
        if config.max_seq_length > self.albert_config.max_position_embeddings:
            raise ValueError(
                f"--max_seq_length={config.max_seq_length} exceeds max_position_embeddings="
                f"{self.albert_config.max_position_embeddings} of {config.albert_config_file}"
            )
        self.files = expand_files(config.input_file)
        compression = _compression(self.files[0])
        run_settings.check_inputs(
            self.files,
            config,
            self.albert_config,
            compression,
            spm_model_file=config.spm_model_file,
        )
        # Every record whole and matching its CRCs before step 1: a damaged shard is named now,
        # not met by the reader mid-run (and again at every resume).
        record_check.check_files(self.files, compression)
        if config.do_eval and config.eval_input_file:
            eval_files = expand_files(config.eval_input_file)
            compression = _compression(eval_files[0])
            run_settings.check_inputs(
                eval_files, config, self.albert_config, compression, flag="--eval_input_file"
            )
            record_check.check_files(eval_files, compression, "--eval_input_file")
        keras.utils.set_random_seed(config.random_seed)
        if config.use_bfloat16:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        with strategy.scope():
            self.model = AlbertPretrainer(self.albert_config)
            self.schedule = AlbertWarmupPolynomialDecay(
                config.learning_rate,
                config.num_train_steps,
                config.num_warmup_steps,
                config.poly_power,
            )
            self.optimizer = create_optimizer(config.optimizer, self.schedule)
            self.optimizer.build(self.model.trainable_variables)
        self.iterator = iter(
            _distributed(strategy, self.files, config.train_batch_size, config, True)
        )
        state = {"model": self.model, "optimizer": self.optimizer}
        # One replica's iterator is a dataset iterator, which a checkpoint can hold; the one
        # MirroredStrategy or TPUStrategy distributes over several replicas is not.
        if isinstance(self.iterator, tf.__internal__.tracking.Trackable):
            state["iterator"] = self.iterator
        else:
            logging.warning(
                "%d replicas: the input position is not checkpointed; a resumed run restarts "
                "the input pipeline",
                strategy.num_replicas_in_sync,
            )
        self.checkpoint = tf.train.Checkpoint(**state)
        # Several workers (TF_CONFIG): every worker takes part in a save, only the chief's goes
        # to output_dir; the others write to a folder of their own, removed after each save.
        self.chief = strategy.extended.should_checkpoint
        self.save_dir = config.output_dir if self.chief else worker_dir(config.output_dir, strategy)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self.save_dir,
            max_to_keep=config.keep_checkpoint_max,
            checkpoint_name="ckpt",
        )
        # On TPU the whole step is compiled anyway. Elsewhere XLA compiles the replica's
        # forward, backward and clipping, and on one device (the default strategy) the optimizer
        # update too. With several replicas the update stays outside: XLA cannot reach the other
        # replicas' copies of a mirrored variable, which the all-reduce updates.
        xla = config.jit_compile and not isinstance(strategy, tf.distribute.TPUStrategy)
        one_device = not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy()
        self._gradients = self._clipped_gradients
        self._replica_step = self._step_fn
        if xla and one_device:
            self._replica_step = tf.function(self._step_fn, jit_compile=True)
        elif xla:
            self._gradients = tf.function(self._clipped_gradients, jit_compile=True)
        self._train_loop = tf.function(self._loop)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore_or_initialize(self) -> str:
        """Resumes from output_dir's latest checkpoint, else loads --init_checkpoint, else
        random."""
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(self.config.output_dir)  # the chief's, on every worker
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            return f"resumed from {latest} at step {self.step}"
        if self.config.init_checkpoint:
            kind = checkpoints.load_init_checkpoint(self.model, self.config.init_checkpoint)
            return f"initialised from {self.config.init_checkpoint} ({kind})"
        return "initialised at random"

    def save(self) -> str:
        """A checkpoint of model, optimizer and input position at this step (every worker calls
        it; a non-chief worker's copy is removed at once)."""
        path = self.manager.save(checkpoint_number=self.step)
        if not self.chief:
            fileio.rmtree(self.save_dir)
        return path

    def _clipped_gradients(self, batch):
        """One replica's losses and gradients, clipped to global norm 1.0 (as the reference)."""
        import tensorflow as tf

        from bioalbert_tf.modeling import pretraining_losses

        with tf.GradientTape() as tape:
            outputs = self.model(batch, training=True)
            losses = pretraining_losses(outputs, batch)
        grads = tape.gradient(losses["loss"], self.model.trainable_variables)
        # Dense, as the reference's are (token types go through a one-hot matmul, words too on
        # TPU): the global norm of an embedding lookup's IndexedSlices counts each repeated row
        # separately, so clipping it would scale by another norm than the gradient's.
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        grads, _ = tf.clip_by_global_norm(grads, 1.0)
        return losses, grads

    def _step_fn(self, batch):
        losses, grads = self._gradients(batch)
        # apply_gradients all-reduces with SUM: the update uses the sum of the replicas' clipped
        # gradients, as the reference's CrossShardOptimizer.apply_gradients (cross_replica_sum).
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return losses

    def _reduced_step(self):
        import tensorflow as tf

        per_replica = self.strategy.run(self._replica_step, args=(next(self.iterator),))
        return tf.stack(
            [
                self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica[k], axis=None)
                for k in METRICS
            ]
        )

    def _loop(self, steps):
        import tensorflow as tf

        total = tf.zeros([len(METRICS)])
        for _ in tf.range(steps):
            total += self._reduced_step()
        return total

    def train_steps(self, steps: int) -> dict:
        import tensorflow as tf

        total = self._train_loop(tf.constant(steps)).numpy()
        return {k: float(v) / steps for k, v in zip(METRICS, total, strict=True)}

    def learning_rate(self, step: int) -> float:
        """The schedule's learning rate for the update made when the optimizer's step counter
        reads `step`."""
        return float(self.schedule(step))

    def evaluate(self) -> dict:
        """Metrics over max_eval_steps batches of the eval files, as the reference's eval_metrics:
        masked-LM loss and accuracy weighted by masked_lm_weights over all masked positions of
        all batches (tf.metrics.mean / accuracy with weights), SOP loss and accuracy over all
        examples, and `loss` the mean of the batches' total losses (as Estimator reports it)."""
        import tensorflow as tf

        from bioalbert_tf.modeling import pretraining_losses, pretraining_sums

        files = expand_files(self.config.eval_input_file or self.config.input_file)
        ds = _distributed(self.strategy, files, self.config.eval_batch_size, self.config, False)

        @tf.function
        def eval_step(batch):
            def fn(b):
                outputs = self.model(b, training=False)
                return pretraining_losses(outputs, b)["loss"], pretraining_sums(outputs, b)

            loss, sums = self.strategy.run(fn, args=(batch,))
            mean, total = tf.distribute.ReduceOp.MEAN, tf.distribute.ReduceOp.SUM
            return self.strategy.reduce(mean, loss, axis=None), {
                k: self.strategy.reduce(total, v, axis=None) for k, v in sums.items()
            }

        totals: dict = {}
        loss = 0.0
        it = iter(ds)
        steps = self.config.max_eval_steps
        for _ in range(steps):
            batch_loss, sums = eval_step(next(it))
            loss += float(batch_loss)
            for k, v in sums.items():
                totals[k] = totals.get(k, 0.0) + float(v)

        def ratio(num, den):
            return totals[num] / totals[den] if totals[den] else 0.0

        return {
            "loss": loss / steps,
            "mlm_loss": ratio("mlm_loss_sum", "mlm_weight"),
            "sop_loss": ratio("sop_loss_sum", "examples"),
            "mlm_accuracy": ratio("mlm_correct", "mlm_weight"),
            "sop_accuracy": ratio("sop_correct", "examples"),
            "global_step": self.step,
        }


BEST_PREFIX = "model.ckpt-best"


def run(config: PretrainingConfig, strategy, on_log=None) -> dict:
    """Trains and/or evaluates; returns the last train metrics and eval results."""
    import tensorflow as tf

    from bioalbert_tf.config import AlbertConfig

    config.validate()
    # Refused before anything in output_dir is written: resuming with other settings.
    settings = run_settings.settings_of(
        config,
        AlbertConfig.from_json_file(config.albert_config_file),
        expand_files(config.input_file),
        strategy.num_replicas_in_sync,
        expand_files(config.eval_input_file) if config.eval_input_file else [],
    )
    resumed = run_settings.check_resume(config, settings)
    trainer = Trainer(config, strategy)
    # Read before anything is written: an init checkpoint that does not fit is refused first.
    started = trainer.restore_or_initialize()
    chief = trainer.chief  # only the chief writes output_dir (several workers: TF_CONFIG)
    fileio.makedirs(config.output_dir)
    if chief:
        manifest.record(fileio.join(config.output_dir, manifest.SETTINGS_NAME), settings)
        trainer.albert_config.to_json_file(fileio.join(config.output_dir, checkpoints.CONFIG_NAME))
    logging.info("%s", started)
    if chief:
        run_settings.trim_metrics(config.output_dir, trainer.step)
        writer = tf.summary.create_file_writer(fileio.join(config.output_dir, "train"))
        eval_writer = tf.summary.create_file_writer(fileio.join(config.output_dir, "eval"))
    else:
        writer = eval_writer = tf.summary.create_noop_writer()
    best_path = fileio.join(config.output_dir, "best_eval.json")
    result: dict = {"train": None, "eval": None}

    def evaluate_and_keep_best():
        # Read before the evaluation's collectives, so that every worker sees the same best.
        best = fileio.read_json(best_path) if fileio.exists(best_path) else None
        metrics = trainer.evaluate()
        with eval_writer.as_default(step=trainer.step):
            for k in METRICS:
                tf.summary.scalar(k, metrics[k])
        if chief:
            fileio.write_json_atomic(
                fileio.join(config.output_dir, f"eval_results-{trainer.step}.json"), metrics
            )
        if best is None or metrics["mlm_accuracy"] > best["mlm_accuracy"]:
            tf.train.Checkpoint(model=trainer.model).write(
                fileio.join(trainer.save_dir, BEST_PREFIX)
            )
            if not chief:
                fileio.rmtree(trainer.save_dir)
                result["eval"] = metrics
                return
            if config.export_tf1:
                checkpoints.save_tf1_checkpoint(
                    trainer.model, fileio.join(config.output_dir, "tf1", BEST_PREFIX), trainer.step
                )
            fileio.write_json_atomic(best_path, metrics)
            logging.info(
                "new best eval MLM accuracy %.4f at step %d -> %s",
                metrics["mlm_accuracy"],
                trainer.step,
                BEST_PREFIX,
            )
        logging.info(
            "eval at step %d: %s", trainer.step, {k: round(v, 4) for k, v in metrics.items()}
        )
        result["eval"] = metrics

    if config.do_train:
        total = config.num_train_steps
        # The checkpoint resumed from, saved just before an interrupt (or by a run without
        # --do_eval), is evaluated first: it may be the best, and no other run will score it.
        evaluated = fileio.join(config.output_dir, f"eval_results-{trainer.step}.json")
        if config.do_eval and resumed and trainer.step < total and not fileio.exists(evaluated):
            logging.info("evaluating %s, saved but not yet evaluated", fileio.basename(resumed))
            evaluate_and_keep_best()
        while trainer.step < total:
            step = trainer.step
            next_save = (step // config.save_checkpoints_steps + 1) * config.save_checkpoints_steps
            n = min(config.iterations_per_loop, next_save - step, total - step)
            start = time.time()
            metrics = trainer.train_steps(n)
            # The rate of the loop's last update (metrics are the loop's means, logged at its end).
            lr = trainer.learning_rate(trainer.step - 1)
            seconds = time.time() - start
            metrics.update(
                learning_rate=lr,
                examples_per_second=n * config.train_batch_size / seconds,
                step=trainer.step,
            )
            with writer.as_default(step=trainer.step):
                for k, v in metrics.items():
                    if k != "step":
                        tf.summary.scalar(k, v)
            logging.info(
                "step %d/%d  loss %.4f  mlm_acc %.4f  sop_acc %.4f  lr %.3g  %.1f examples/s",
                trainer.step,
                total,
                metrics["loss"],
                metrics["mlm_accuracy"],
                metrics["sop_accuracy"],
                lr,
                metrics["examples_per_second"],
            )
            # One JSON line per loop: the curve survives restarts (appended) and needs no
            # TensorBoard.
            if chief:
                with fileio.open_file(
                    fileio.join(config.output_dir, run_settings.METRICS_NAME), "a"
                ) as f:
                    f.write(json.dumps(metrics) + "\n")
            if on_log:
                on_log(metrics)
            result["train"] = metrics
            if trainer.step % config.save_checkpoints_steps == 0 or trainer.step == total:
                path = trainer.save()
                if chief:
                    logging.info("saved %s", path)
                if config.do_eval:
                    evaluate_and_keep_best()
        writer.flush()
        if config.export_tf1 and chief:
            prefix = fileio.join(config.output_dir, "tf1", f"model.ckpt-{trainer.step}")
            checkpoints.save_tf1_checkpoint(trainer.model, prefix, trainer.step)
            logging.info("TF1-layout checkpoint: %s", prefix)
    elif config.do_eval:
        evaluate_and_keep_best()
    if config.do_eval and result["eval"] is None:
        evaluate_and_keep_best()
    result["step"] = trainer.step
    return result
