# GPU Cost Planner: two commands do everything on a fresh machine with Python >= 3.11:
#   make demo   create .venv, install, run the whole pipeline on the shipped sample organisation
#   make test   create .venv, install, run lint + the full test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test app lint clean samples browser-deps

# System packages of the real-browser test (tests/test_browser.py drives Debian's Chromium through Playwright,
# which cannot download its own browsers here). Installed with apt-get when missing, as root or through sudo.
BROWSER_PACKAGES := chromium chromium-driver
# PostgreSQL server binaries (initdb, pg_ctl): tests/test_store_pg.py starts and stops its own throw-away server.
PG_PACKAGES := postgresql
SYSTEM_PACKAGES := $(BROWSER_PACKAGES) $(PG_PACKAGES)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gpuplan demo

test: $(STAMP) browser-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

browser-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "no apt-get: install$$missing yourself (tests/test_browser.py, tests/test_store_pg.py skip without)"; \
	  exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else \
	  echo "installing$$missing needs root: run 'apt-get install$$missing' as root" >&2; exit 1; fi; \
	echo "installing$$missing (apt-get)"; \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing

app: $(STAMP)
	$(BIN)/gpuplan app

lint: $(STAMP)
	$(BIN)/ruff check .

samples: $(STAMP)
	$(BIN)/python -m forecasting.samples --write

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
