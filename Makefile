# heapscope: build, install, demo, test, bench.
#
#   make demo    install what is missing, build, install, profile examples/two_copies.py
#   make test    build, run the Swift tests, then the pytest suite under every
#                supported CPython (3.10-3.13), each in its own venv
#   make build   build the Swift products and place them in PythonHarness/heapscope/
#   make fuzz    fuzz the capture reader for SECONDS seconds (default 600; fuzz/README.md)
#   make install pip-install PythonHarness into $(PYTHON)'s environment
#
# The tracker is built against the headers of $(PYTHON) (the `python3` on PATH
# unless given: make install PYTHON=/path/to/venv/bin/python) and only loads
# there; each minor version gets its own tracker (_tracker.cpython-3XY-*.so),
# built in its own scratch folder. The CLI is the same for every version.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
SWIFT      ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
SCRATCH    ?= .build
DEMO_DIR   ?= demo
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
# The interpreters `make test` runs the suite under: the newest patch release
# of each supported minor version in pyenv's versions folder.
SUPPORTED  := 3.10 3.11 3.12 3.13
PYTHONS    ?= $(foreach v,$(SUPPORTED),$(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(v).*/bin/python$(v)))))
VENVS      ?= .venvs

APT_PACKAGES := python3-dev libunwind-dev libdw-dev libzstd-dev pkg-config
# What the test suite needs on top (docs/TEST_DEPS.md, docs/TEST_DEPS_PYTHON.md):
# a headless browser for the HTML reports, protobuf/jsonschema to validate the
# exports, numpy for the native-allocation scenario, xdist/asyncio/nbclient for
# the pytest plugin and Jupyter tests, gdb for `heapscope attach` (test_attach.py),
# node to check the pages' scripts.
TEST_APT_PACKAGES := chromium chromium-driver gdb nodejs
TEST_PIP_PACKAGES := pytest pytest-xdist pytest-asyncio selenium protobuf jsonschema gprof2dot numpy \
                     nbclient nbformat ipykernel ipython

# Evaluated when used, so `make deps` works before anything else exists.
PYINC      = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PY_TAG     = $(shell $(PYTHON) -c 'import sys; print("%d%d" % sys.version_info[:2])')
EXT_SUFFIX = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
PY_SCRIPTS = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
HEAPSCOPE  = $(PY_SCRIPTS)/heapscope

GNU_FLAGS   = -Xswiftc -Xcc -Xswiftc -D_GNU_SOURCE
SWIFT_FLAGS = -Xcc -I$(PYINC) $(GNU_FLAGS)
PKG_DIR     = PythonHarness/heapscope

.PHONY: help deps test-deps test-python-deps apt-install check-python build install demo test swift-test pytest pytest-all pytest-venv fuzz fuzz-test bench clean

help:
	@echo "make demo     deps + build + install, then profile examples/two_copies.py"
	@echo "make test     deps + build + install + swift test + pytest under each of PYTHONS"
	@echo "make build    swift build -c release; copy the tracker and CLI into $(PKG_DIR)"
	@echo "make install  pip install ./PythonHarness into $(PYTHON)'s environment"
	@echo "make fuzz     fuzz the capture reader for SECONDS seconds (default 600)"
	@echo "make bench    run bench/run.py"

deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"
	@$(PYTHON) -c 'import pytest' 2>/dev/null || $(PYTHON) -m pip install --quiet pytest </dev/null

test-deps: deps test-python-deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_APT_PACKAGES)"

test-python-deps:
	@$(PYTHON) -c 'import pytest, xdist, pytest_asyncio, selenium, google.protobuf, jsonschema, gprof2dot, numpy, nbclient, ipykernel' 2>/dev/null || \
	  $(PYTHON) -m pip install --quiet $(TEST_PIP_PACKAGES) </dev/null

# Installs the Debian packages in PACKAGES that are missing (as root; apt's
# lists are fetched first on a fresh machine).
apt-install:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "heapscope: missing Debian packages:$$missing (run as root: apt-get install -y$$missing)" >&2; exit 1; \
	  fi; \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then apt-get update; fi; \
	  apt-get install -y $$missing </dev/null || { apt-get update && apt-get install -y $$missing </dev/null; }; \
	fi

# One clear line for an interpreter the tracker cannot be built for.
check-python:
	@$(PYTHON) PythonHarness/supported_python.py

# The CLI does not depend on the Python version; the tracker is built per
# minor version, in its own scratch folder, against that version's headers.
build: check-python
	$(SWIFT) build -c release --product heapscope --scratch-path $(SCRATCH) $(GNU_FLAGS) -Xswiftc -static-stdlib
	$(SWIFT) build -c release --product HeapscopeTracker --scratch-path $(SCRATCH)-py$(PY_TAG) $(SWIFT_FLAGS) -Xswiftc -static-stdlib
	@mkdir -p $(PKG_DIR)/bin
	@# copy then rename: a running process may have the old files mapped
	cp $(SCRATCH)-py$(PY_TAG)/release/libHeapscopeTracker.so $(PKG_DIR)/_tracker$(EXT_SUFFIX).tmp
	mv -f $(PKG_DIR)/_tracker$(EXT_SUFFIX).tmp $(PKG_DIR)/_tracker$(EXT_SUFFIX)
	cp $(SCRATCH)/release/heapscope $(PKG_DIR)/bin/heapscope.tmp
	mv -f $(PKG_DIR)/bin/heapscope.tmp $(PKG_DIR)/bin/heapscope

install: build
	HEAPSCOPE_PREBUILT=1 $(PYTHON) -m pip install --quiet ./PythonHarness </dev/null
	@command -v pyenv >/dev/null 2>&1 && pyenv rehash 2>/dev/null || true
	@echo "installed: $(HEAPSCOPE)"

demo: deps install
	@mkdir -p $(DEMO_DIR)
	$(HEAPSCOPE) run -f -o $(DEMO_DIR)/two_copies.hsc examples/two_copies.py
	$(HEAPSCOPE) stats $(DEMO_DIR)/two_copies.hsc

# The Swift tests include real captures made with the installed package
# (RealCaptureTests), so they run after `install`.
swift-test:
	$(SWIFT) test --scratch-path $(SCRATCH) $(SWIFT_FLAGS)

pytest:
	$(PYTHON) -m pytest PythonHarness/tests -ra

# The whole suite under each interpreter of PYTHONS, each in its own venv
# ($(VENVS)/py3XY) with the package installed from this checkout.
pytest-all:
	@test -n "$(strip $(PYTHONS))" || { echo "heapscope: no interpreters found for the suite (set PYTHONS=...)" >&2; exit 1; }
	@echo "pytest under: $(PYTHONS)"
	@failed=""; for py in $(PYTHONS); do \
	  $(MAKE) --no-print-directory pytest-venv BASE_PYTHON=$$py || failed="$$failed $$py"; \
	done; \
	if [ -n "$$failed" ]; then echo "pytest failed under:$$failed" >&2; exit 1; fi

pytest-venv:
	@tag=$$($(BASE_PYTHON) -c 'import sys; print("%d%d" % sys.version_info[:2])'); \
	venv=$(VENVS)/py$$tag; \
	if [ ! -x $$venv/bin/python ]; then $(BASE_PYTHON) -m venv $$venv; fi; \
	$(MAKE) --no-print-directory test-python-deps PYTHON=$$venv/bin/python && \
	$(MAKE) --no-print-directory install PYTHON=$$venv/bin/python && \
	echo "== pytest under $$($$venv/bin/python -c 'import sys; print(sys.version.split()[0])') ($$venv)" && \
	$$venv/bin/python -m pytest PythonHarness/tests -ra -p no:cacheprovider

# libFuzzer over the capture reader, seeded from captures of the examples that
# the freshly built CLI records (fuzz/README.md). `make test` runs it for 60 s.
SECONDS ?= 600
fuzz: build
	fuzz/run.sh $(SECONDS) $(PKG_DIR)/bin/heapscope $(PYTHON)

fuzz-test: build
	fuzz/run.sh 60 $(PKG_DIR)/bin/heapscope $(PYTHON)

test: test-deps build install swift-test fuzz-test pytest-all

bench: install
	@if [ -f bench/run.py ]; then $(PYTHON) bench/run.py; else echo "bench/run.py is not there yet"; fi

clean:
	rm -rf $(SCRATCH) $(SCRATCH)-py3* $(VENVS) $(DEMO_DIR) PythonHarness/build PythonHarness/*.egg-info
	rm -f $(PKG_DIR)/_tracker*.so $(PKG_DIR)/bin/heapscope
