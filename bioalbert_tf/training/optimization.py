"""ALBERT's optimisers and learning-rate schedule, as Keras 3 objects.

`lamb()` is google-research/albert lamb_optimizer.LAMBOptimizer and `adamw()` its
AdamWeightDecayOptimizer (BERT's). Both differ from keras.optimizers.Lamb/AdamW on purpose:
  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2          (no bias correction)
  update = m / (sqrt(v) + eps) + weight_decay * w          (decay inside the update)
  LAMB only: ratio = ||w|| / ||update||, 1.0 where either norm is 0
  w -= ratio * lr * update
Decay and the trust ratio are skipped for variables whose name matches "LayerNorm",
"layer_norm" or "bias". Gradients are clipped to global norm 1.0 by the training step, per
replica; the update then uses the sum of the replicas' clipped gradients, as the reference did
(its `tf.gradients` skipped CrossShardOptimizer's 1/num_shards loss scaling, and
CrossShardOptimizer.apply_gradients took the cross_replica_sum).
"""

from __future__ import annotations

import re

import keras
from keras import ops

EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")
# The reference's create_optimizer clips every gradient to this global norm before the update,
# in pretraining and in fine-tuning alike.
CLIP_NORM = 1.0


@keras.saving.register_keras_serializable(package="bioalbert_tf")
class AlbertWarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr * step / warmup for step < warmup; else lr * (1 - min(step, total) / total) ** power.

    The decay is computed from step 0 (not from the end of warm-up), as ALBERT does.
    """

    def __init__(
        self,
        learning_rate: float,
        num_train_steps: int,
        num_warmup_steps: int = 0,
        power: float = 1.0,
        end_learning_rate: float = 0.0,
    ):
        if num_train_steps < 1:
            raise ValueError(f"num_train_steps must be >= 1, got {num_train_steps}")
        self.learning_rate = learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        self.power = power
        self.end_learning_rate = end_learning_rate

    def __call__(self, step):
        step = ops.cast(step, "float32")
        total = float(self.num_train_steps)
        frac = ops.minimum(step, total) / total
        decayed = (self.learning_rate - self.end_learning_rate) * ops.power(
            1.0 - frac, self.power
        ) + self.end_learning_rate
        if not self.num_warmup_steps:
            return decayed
        warmup = self.learning_rate * step / float(self.num_warmup_steps)
        return ops.where(step < float(self.num_warmup_steps), warmup, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
        }


@keras.saving.register_keras_serializable(package="bioalbert_tf")
class AlbertWeightDecayOptimizer(keras.optimizers.Optimizer):
    """The reference's Adam-with-decay family; `layer_adaptation=True` is LAMB."""

    def __init__(
        self,
        learning_rate=0.00176,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-6,
        weight_decay_rate: float = 0.01,
        layer_adaptation: bool = True,
        exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
        name: str = "lamb",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay_rate = weight_decay_rate
        self.layer_adaptation = layer_adaptation
        self.exclude_from_weight_decay = tuple(exclude_from_weight_decay or ())

    def excluded(self, variable) -> bool:
        """Whether decay and the trust ratio skip this variable (matched on its path, as on TF1
        names)."""
        name = getattr(variable, "path", None) or variable.name
        return any(re.search(pattern, name) for pattern in self.exclude_from_weight_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = [], []
        for var in var_list:
            self._m.append(self.add_variable_from_reference(var, "m"))
            self._v.append(self.add_variable_from_reference(var, "v"))

    def _clip_gradients(self, grads):
        # With `global_clipnorm`, the norm is taken over dense gradients: an embedding's sparse
        # gradient lists a row once per occurrence, and squaring those slices before summing them
        # would overstate the norm. Dense is what the reference computes on TPU (one-hot
        # embeddings) and what the update below uses anyway.
        if self.global_clipnorm:
            grads = [_dense(g) for g in grads]
        return super()._clip_gradients(grads)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        # Embedding lookups give sparse gradients; the reference's update is dense (decay and
        # moments touch every row), so densify.
        g = ops.cast(_dense(gradient), variable.dtype)
        index = self._get_variable_index(variable)
        m, v = self._m[index], self._v[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * g)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(g))
        update = m / (ops.sqrt(v) + self.epsilon)
        excluded = self.excluded(variable)
        if self.weight_decay_rate and not excluded:
            update = update + self.weight_decay_rate * variable
        if self.layer_adaptation and not excluded:
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            safe = ops.where(u_norm > 0, u_norm, 1.0)
            ratio = ops.where(w_norm > 0, ops.where(u_norm > 0, w_norm / safe, 1.0), 1.0)
            update = ratio * update
        self.assign_sub(variable, lr * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            weight_decay_rate=self.weight_decay_rate,
            layer_adaptation=self.layer_adaptation,
            exclude_from_weight_decay=list(self.exclude_from_weight_decay),
        )
        return config


def _dense(gradient):
    if type(gradient).__name__ == "IndexedSlices":
        import tensorflow as tf

        return tf.convert_to_tensor(gradient)
    return gradient


def lamb(learning_rate, weight_decay_rate: float = 0.01, **kwargs) -> AlbertWeightDecayOptimizer:
    return AlbertWeightDecayOptimizer(
        learning_rate,
        weight_decay_rate=weight_decay_rate,
        layer_adaptation=True,
        name="lamb",
        **kwargs,
    )


def adamw(learning_rate, weight_decay_rate: float = 0.01, **kwargs) -> AlbertWeightDecayOptimizer:
    return AlbertWeightDecayOptimizer(
        learning_rate,
        weight_decay_rate=weight_decay_rate,
        layer_adaptation=False,
        name="adamw",
        **kwargs,
    )


def create_optimizer(name: str, schedule: AlbertWarmupPolynomialDecay):
    """ALBERT's LAMB or BERT's AdamW on the warm-up + polynomial-decay schedule."""
    if name == "lamb":
        return lamb(schedule)
    if name == "adamw":
        return adamw(schedule)
    raise ValueError(f"optimizer must be lamb or adamw, got {name!r}")
