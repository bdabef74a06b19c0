"""The evaluation core: what fine-tuning and the benchmark runner share, and nothing else.

- `datasets`: the one dataset registry (task, labels, metric, length, folds) and split reading;
- `formats`: readers of the public gold formats;
- `metrics`: metric functions with the official scorers' semantics;
- `predictions`: prediction files (written and read) and BioASQ answer merging;
- `scoring`: gold + predictions -> metrics; `evaluate` runs any predictor over a split.

It imports no modeling code and nothing downstream (fine-tuning, the runner): both call it.
"""
