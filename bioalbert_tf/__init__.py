"""BioALBERT in TensorFlow 2 / Keras 3.

Importing this package is cheap: TensorFlow is imported only by the modules that need it,
so the TFRecord builder's workers can use the schema and the tokenizer without it.
"""

__version__ = "0.1.0"
