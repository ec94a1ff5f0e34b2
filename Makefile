# vrm: `make demo` runs the demo, `make test` runs the whole suite. Both set up .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test quick lint typecheck unit bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vrm demo

lint: $(STAMP)
	$(BIN)/ruff check vrm tests bench scripts fuzz
	$(BIN)/ruff format --check vrm tests bench scripts fuzz

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# The suite without the tests marked slow (every crash point, full-size floods): a
# minute or two less, for the edit-test loop. CI runs `make test`, all of it.
quick: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python bench/seal_open.py
	$(BIN)/python bench/messaging.py

# Coverage-guided fuzzing of the envelope and batch parsers (CI runs 10 s of each).
# The corpus grows in .fuzz/; a crash is saved there as crash-<sha1> and stops the run.
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	mkdir -p .fuzz/envelope .fuzz/batch
	$(BIN)/python fuzz/fuzz_envelope.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.fuzz/ .fuzz/envelope fuzz/seeds/envelope
	$(BIN)/python fuzz/fuzz_batch.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.fuzz/ .fuzz/batch fuzz/seeds/batch

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz
