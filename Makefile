# The two set-up commands of the README: `make demo` and `make test`.
# Both create (or reuse) .venv and install everything from the package registries.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EIE    := $(VENV)/bin/eie
STAMP  := $(VENV)/.eie-installed
DEMO   ?= build/demo
JOBS   ?= auto

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m eie.demo --out $(DEMO)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q tests

clean:
	rm -rf build .pytest_cache
