# The README's commands. `make demo` and `make test` install everything first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORPUS := .cache/corpus
MEDLINE := $(CORPUS)/pubmed20n0014.xml.gz
DEMO   := output/demo

.PHONY: setup corpus demo test lint format bench clean

setup: $(STAMP) $(MEDLINE)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[beam,test]'
	$(BIN)/python -m pip check
	touch $(STAMP)

corpus: $(MEDLINE)
$(MEDLINE): | $(STAMP)
	$(BIN)/python -m tfrecords_builder.default_corpus --dest=$(CORPUS)

# Stage 1: a 30k SentencePiece vocabulary on the embedded MEDLINE corpus (reused when present).
$(DEMO)/vocab/bio30k.model: $(MEDLINE)
	$(BIN)/python -m tfrecords_builder.build_vocab --input_files='$(CORPUS)/pubmed*.xml.gz' \
		--model_prefix=$(DEMO)/vocab/bio30k --vocab_size=30000

# Stage 2: MLM + SOP pretraining TFRecords (finished shards are skipped on a rerun).
demo: setup $(DEMO)/vocab/bio30k.model
	$(BIN)/python -m tfrecords_builder.build_pretraining_data --input_files='$(CORPUS)/pubmed*.xml.gz' \
		--output_dir=$(DEMO)/tfrecords --spm_model_file=$(DEMO)/vocab/bio30k.model \
		--max_seq_length=512 --max_predictions_per_seq=20 --dupe_factor=1
	@echo "demo outputs: vocabulary $(DEMO)/vocab/bio30k.model, examples $(DEMO)/tfrecords/*.tfrecord, statistics $(DEMO)/tfrecords/stats.json"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup lint
	$(BIN)/python -m pytest -q -m "not slow" --timeout=900

bench: setup
	$(BIN)/python -m benchmarks.builder_bench
	$(BIN)/python -m benchmarks.pretraining_bench

clean:
	rm -rf output .pytest_cache .ruff_cache
