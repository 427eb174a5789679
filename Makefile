# GPU Cost Planner: two commands do everything on a fresh machine with Python >= 3.11:
#   make demo   create .venv, install, run the whole pipeline on the shipped sample organisation
#   make test   create .venv, install, run lint + the full test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test app lint clean samples

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gpuplan demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

app: $(STAMP)
	$(BIN)/gpuplan app

lint: $(STAMP)
	$(BIN)/ruff check .

samples: $(STAMP)
	$(BIN)/python -m forecasting.samples --write

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
