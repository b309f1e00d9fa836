# attrbound-lite developer entry points. CI runs `make test` (see .ci/run).
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

VENV        := .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
PYTEST_ARGS ?=
CONSTRAINTS := requirements/constraints.txt

export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Offline data: the mirror beside the checkout (../shared/data) when there is one and none is set; without
# it, data come through torchvision's downloads (attrbound_lite.data).
export ATTRBOUND_DATA_MIRROR ?= $(abspath $(wildcard ../shared/data))

.PHONY: help venv venv-book lint test book student bench bench-training bench-sweep lock clean

help:
	@echo "make venv   create/update .venv (project + test extra), no-op when up to date"
	@echo "make lint   ruff (pyflakes, pycodestyle, isort, bugbear, numpy, docstrings): the check CI runs first"
	@echo "make test   run the test suite, book tests included (installs the book extra; PYTEST_ARGS='-k foo')"
	@echo "make book   execute the notebooks (papermill, CI profile) and build the Jupyter Book into _build/"
	@echo "            (RETRAIN_ZOO=1: retrain the reference models instead of loading zoo/; hours on a CPU)"
	@echo "make student  the student edition: the book without the exercises' solutions, in _build/student/"
	@echo "make bench  run benchmarks/bounds.py"
	@echo "make bench-training  run benchmarks/training.py (about 30 minutes on 2 CPU cores)"
	@echo "make bench-sweep  run benchmarks/sweep.py (attacks per second, 1 and 2 processes)"
	@echo "make lock   regenerate $(CONSTRAINTS) from .venv"
	@echo "make clean  remove build/test artefacts (keeps .venv)"

venv:
	@bash scripts/ensure-venv.sh

venv-book:
	@bash scripts/ensure-venv.sh --book

# Configured in pyproject.toml ([tool.ruff]); the notebooks for undefined names only (a missing import fails in
# seconds here, not after the chapters before it ran). CI (.ci/run) runs it before the tests.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --select F821,F822,F823 notebooks

# The test suite builds the book (tests/test_book.py), so it needs the book extra.
test: venv-book
	$(PY) -m pytest $(PYTEST_ARGS)

BOOK_PROFILE ?= ci
RETRAIN_ZOO ?=
book: venv-book
	$(VENV)/bin/attrbound book --profile $(BOOK_PROFILE) $(if $(RETRAIN_ZOO),--retrain-zoo)

student: venv-book
	$(VENV)/bin/attrbound book --profile $(BOOK_PROFILE) --student

bench: venv
	$(PY) benchmarks/bounds.py

bench-training: venv
	$(PY) benchmarks/training.py

bench-sweep: venv
	$(PY) benchmarks/sweep.py

define LOCK_HEADER
# Pinned lock for attrbound-lite, used as a pip *constraints* file:
#     pip install -c requirements/constraints.txt -e ".[test,book,compare]"
# (scripts/ensure-venv.sh does exactly this; see `make venv`).
#
# Generated with
#     .venv/bin/pip freeze --exclude-editable | grep -viE '^attrbound[-_]lite([ =@]|$$)'
# from the project venv (CPython 3.11, x86_64 Linux; torch 2.14.1 CUDA wheels,
# hence the nvidia-* / cuda-* / triton pins, which pip ignores on platforms
# where torch does not need them).
#
# To regenerate after changing dependencies: update the venv, then run
#     make lock
# and commit the result. Do not edit by hand.
endef
export LOCK_HEADER

# Regenerate the lock from the current venv (install/upgrade what you need in
# .venv first, e.g. `.venv/bin/pip install -U "somepkg>=X"`).
lock:
	@test -x $(PY) || { echo "no $(VENV): run 'make venv' first" >&2; exit 1; }
	@{ printf '%s\n' "$$LOCK_HEADER"; \
	   $(PIP) freeze --exclude-editable | grep -viE '^attrbound[-_]lite([ =@]|$$)'; \
	 } > $(CONSTRAINTS).tmp
	@mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) pins)"

clean:
	rm -rf build/ dist/ _build/ .pytest_cache/ *.egg-info/ attrbound_lite.egg-info/
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
