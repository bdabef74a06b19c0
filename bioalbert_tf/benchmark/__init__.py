"""Benchmark runner: scores SavedModels (or any system's prediction files) on the 20 datasets.

It reads SavedModels only and imports no modeling code, so it works on any model that serves
the signatures described in `runner.py`. TensorFlow is imported lazily, only to load and run
SavedModels; `metrics`, `score` and `report` work without it.

  python -m bioalbert_tf.benchmark --saved_model=<dir> --dataset=ncbi_disease \
      --data_dir=<folder> --output_dir=<dir>
  python -m bioalbert_tf.benchmark.score --dataset=ncbi_disease --gold=test.tsv \
      --predictions=predictions.tsv
  python -m bioalbert_tf.benchmark.report --output_dir=<dir>
"""
