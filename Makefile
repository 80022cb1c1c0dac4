# The commands a developer runs are the commands CI runs (.ci/run calls `make test`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev

# Every Python that pyproject.toml supports; `make test-pythons` runs the unit tests on each.
PYTHONS := 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv
# The interpreter of Python X.Y: pyenv's newest X.Y.*, else pythonX.Y on the PATH.
python_for = $(or $(shell ls -d $(PYENV_ROOT)/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V | tail -n 1),python$(1))

.PHONY: demo test lint types unit test-slow test-pythons bench bench-peers bench-scale clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/eval_suite.py
	@echo
	$(PY) examples/agent_pipeline.py

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

types: $(VENV)/.installed
	$(PY) -m mypy

unit: $(VENV)/.installed
	$(PY) -m pytest -q

test: lint types unit

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow --run-slow

# One venv per Python (.venv-3.12, ...) with ".[dev]", and the unit tests in each; lint and types
# need one run only (`make test`).
# SKIP_PYTHONS: versions tested already (CI skips the one `make test` ran on).
test-pythons: $(foreach v,$(filter-out $(SKIP_PYTHONS),$(PYTHONS)),test-python-$(v))

test-python-%: .venv-%/.installed
	@echo "== Python $* =="
	.venv-$*/bin/python -m pytest -q

.PRECIOUS: .venv-%/.installed
.venv-%/.installed: pyproject.toml
	$(call python_for,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	.venv-$*/bin/python -m pip install -q -e ".[dev]"
	touch $@

bench: $(VENV)/.installed
	$(PY) -m benchmarks

bench-peers: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev,peers]"
	$(PY) -m benchmarks.peers

# SCALE_ARGS=--max-entries=1000000 adds the 1M point (several minutes more on 2 cores).
bench-scale: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[dev,peers]"
	$(PY) -m benchmarks.scale $(SCALE_ARGS)

clean:
	rm -rf $(VENV) .venv-* .agentcache .mypy_cache .ruff_cache .pytest_cache
