# The two set-up commands of the README: `make demo` and `make test`.
# Both create (or reuse) .venv and install everything from the package registries.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
EIE    := $(VENV)/bin/eie
STAMP  := $(VENV)/.eie-installed
DEMO   ?= build/demo
JOBS   ?= auto

# Tools only Debian ships (OpenSTA, the OSU standard cells, Icarus Verilog, qflow with
# graywolf/qrouter/magic/netgen): installed with apt-get when running as root and
# missing; otherwise the command that would install them is printed and the tests
# that need them are skipped by name.
DEBIAN_PKGS ?= opensta qflow-tech-osu018 qflow-tech-osu035 qflow-tech-osu050 iverilog qflow magic netgen-lvs

.PHONY: demo test install clean debian

install: $(STAMP)

debian:
	@missing=""; for p in $(DEBIAN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
			|| echo "apt-get could not install$$missing; the tests that need them will be skipped"; \
	else \
		echo "missing Debian packages:$$missing"; \
		echo "install them as root with: apt-get install -y --no-install-recommends$$missing"; \
		echo "(until then the tests that need them are skipped, by name)"; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test,cluster]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m eie.demo --out $(DEMO)

test: $(STAMP) debian
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q tests

clean:
	rm -rf build .pytest_cache
