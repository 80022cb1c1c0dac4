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

.PHONY: demo test lint types unit test-slow test-pythons test-pydantic-ai-range bench bench-peers bench-scale docs plots clean

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

# Both ends of the supported pydantic-ai range, each in a venv of its own. pydantic-evals pins the
# pydantic-ai it was released with, so it is installed where it resolves (PAI_EVALS) and its tests
# must run there (AGENTCACHE_REQUIRE_EVALS=1). Each end replays a suite the other end recorded.
PAI_OLDEST := 2.62
PAI_NEWEST := 2.68
PAI_EVALS := $(PAI_OLDEST)
PAI_VENV = .venv-pai-$(1)
PAI_TESTS := tests/pydantic_ai

.venv-pai-%/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-pai-$*
	.venv-pai-$*/bin/python -m pip install -q --upgrade pip
	.venv-pai-$*/bin/python -m pip install -q -e ".[dev$(if $(filter $*,$(PAI_EVALS)),$(comma)evals)]" \
		"pydantic-ai-slim[openai,anthropic]==$*.*"
	.venv-pai-$*/bin/python -m pip check
	touch $@

comma := ,

test-pydantic-ai-range: $(call PAI_VENV,$(PAI_OLDEST))/.installed $(call PAI_VENV,$(PAI_NEWEST))/.installed
	AGENTCACHE_REQUIRE_EVALS=1 AGENTCACHE_RECORD_PYTHON=$(CURDIR)/$(call PAI_VENV,$(PAI_NEWEST))/bin/python \
		$(call PAI_VENV,$(PAI_OLDEST))/bin/python -m pytest -q $(PAI_TESTS)
	AGENTCACHE_RECORD_PYTHON=$(CURDIR)/$(call PAI_VENV,$(PAI_OLDEST))/bin/python \
		$(call PAI_VENV,$(PAI_NEWEST))/bin/python -m pytest -q $(PAI_TESTS)

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

# The documentation site (mkdocs-material), built strict: a broken link, anchor or reference fails.
docs: $(VENV)/.docs-installed
	$(PY) -m mkdocs build --strict

# The charts of the docs, redrawn from a fresh demo run and the last `make bench` results.
plots: $(VENV)/.docs-installed
	$(PY) examples/eval_suite.py --json docs/assets/demo.json
	$(PY) tools/plots.py

$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[$(EXTRAS),docs]"
	touch $@

clean:
	rm -rf $(VENV) .venv-* .agentcache .mypy_cache .ruff_cache .pytest_cache site
