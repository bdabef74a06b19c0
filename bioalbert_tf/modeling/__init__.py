"""The Keras 3 ALBERT: encoder, pretraining heads, pretrainer."""

from bioalbert_tf.modeling.encoder import AlbertEncoder
from bioalbert_tf.modeling.pretrainer import AlbertPretrainer, pretraining_losses, pretraining_sums

__all__ = ["AlbertEncoder", "AlbertPretrainer", "pretraining_losses", "pretraining_sums"]
