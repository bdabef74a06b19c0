"""Training: pretraining (MLM + SOP, LAMB, strategies), fine-tuning with dev selection and
resume, their configs, the optimizers and the input checks."""
