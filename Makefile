# The README's commands. `make demo` and `make test` install everything first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORPUS := .cache/corpus
MEDLINE := $(CORPUS)/pubmed20n0014.xml.gz
DEMO   := output/demo

.PHONY: setup corpus demo check test lint format bench clean

setup: $(STAMP) $(MEDLINE)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[beam,dask,test,tpu]'
	$(BIN)/python -m pip check
	touch $(STAMP)

corpus: $(MEDLINE)
$(MEDLINE): | $(STAMP)
	$(BIN)/python -m tfrecords_builder.default_corpus --dest=$(CORPUS)

# The whole pipeline on the embedded MEDLINE corpus (finished stages are skipped on a rerun).
# `make demo DATA_DIR=../shared/data` adds NER fine-tuning, its SavedModel and the benchmark table.
demo: setup
	$(BIN)/python -m bioalbert_tf.demo --corpus_dir=$(CORPUS) --output_dir=$(DEMO) $(if $(DATA_DIR),--data_dir=$(DATA_DIR),)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The fast tier for every edit: lint and the in-process tests (tests/conftest.py, --fast).
check: setup lint
	$(BIN)/python -m pytest -q --fast -n auto --maxprocesses=4 --dist=worksteal --timeout=300 --durations=10

# Everything: the README's and CI's command.
test: setup lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist=worksteal --timeout=900 --durations=25

bench: setup
	$(BIN)/python -m bench.builder_bench
	$(BIN)/python -m bench.pretraining_bench
	$(BIN)/python -m bench.serving_bench
	$(BIN)/python -m bench.prediction_bench
	$(BIN)/python -m bench.finetuning_bench
	$(BIN)/python -m bench.domain_bench --data_dir=$(or $(DATA_DIR),../shared/data)

clean:
	rm -rf output .pytest_cache .ruff_cache
