# The commands a developer runs are the commands CI runs (.ci/run calls `make test`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := dev

.PHONY: demo test lint types unit test-slow test-pydantic-ai-range bench bench-peers bench-scale docs plots clean

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
	rm -rf $(VENV) .venv-pai-* .agentcache .mypy_cache .ruff_cache .pytest_cache site
