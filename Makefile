# heapscope: build, install, demo, test, bench.
#
#   make demo    install what is missing, build, install, profile examples/two_copies.py
#   make test    build, run the Swift tests and the Python (pytest) suite
#   make build   build the Swift products and place them in PythonHarness/heapscope/
#   make install pip-install PythonHarness into the active Python environment
#
# The tracker is built against the headers of $(PYTHON) (the `python3` on PATH
# unless given: make build PYTHON=/path/to/python3.11) and only loads there.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
SWIFT      ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
SCRATCH    ?= .build
DEMO_DIR   ?= demo

APT_PACKAGES := python3-dev libunwind-dev libdw-dev libzstd-dev pkg-config
# What the test suite needs on top (docs/TEST_DEPS.md, docs/TEST_DEPS_PYTHON.md):
# a headless browser for the HTML reports, protobuf/jsonschema to validate the
# exports, xdist/asyncio/nbclient for the pytest plugin and Jupyter tests.
TEST_APT_PACKAGES := chromium chromium-driver nodejs
TEST_PIP_PACKAGES := pytest pytest-xdist pytest-asyncio selenium protobuf jsonschema gprof2dot \
                     nbclient nbformat ipykernel ipython

# Evaluated when used, so `make deps` works before anything else exists.
PYINC      = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
EXT_SUFFIX = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
PY_SCRIPTS = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
HEAPSCOPE  = $(PY_SCRIPTS)/heapscope

SWIFT_FLAGS = -Xcc -I$(PYINC) -Xswiftc -Xcc -Xswiftc -D_GNU_SOURCE
PKG_DIR     = PythonHarness/heapscope

.PHONY: help deps test-deps apt-install build install demo test swift-test pytest bench clean

help:
	@echo "make demo     deps + build + install, then profile examples/two_copies.py"
	@echo "make test     deps + build + swift test + install + pytest"
	@echo "make build    swift build -c release; copy the tracker and CLI into $(PKG_DIR)"
	@echo "make install  pip install ./PythonHarness into $(PYTHON)'s environment"
	@echo "make bench    run bench/run.py"

deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"
	@$(PYTHON) -c 'import pytest' 2>/dev/null || $(PYTHON) -m pip install --quiet pytest </dev/null

test-deps: deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_APT_PACKAGES)"
	@$(PYTHON) -c 'import xdist, pytest_asyncio, selenium, google.protobuf, jsonschema, gprof2dot, nbclient, ipykernel' 2>/dev/null || \
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

build:
	$(SWIFT) build -c release --scratch-path $(SCRATCH) $(SWIFT_FLAGS) -Xswiftc -static-stdlib
	@mkdir -p $(PKG_DIR)/bin
	@# copy then rename: a running process may have the old files mapped
	cp $(SCRATCH)/release/libHeapscopeTracker.so $(PKG_DIR)/_tracker$(EXT_SUFFIX).tmp
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

swift-test:
	$(SWIFT) test --scratch-path $(SCRATCH) $(SWIFT_FLAGS)

pytest:
	$(PYTHON) -m pytest PythonHarness/tests -ra

test: test-deps build swift-test install pytest

bench: install
	@if [ -f bench/run.py ]; then $(PYTHON) bench/run.py; else echo "bench/run.py is not there yet"; fi

clean:
	rm -rf $(SCRATCH) $(DEMO_DIR) PythonHarness/build PythonHarness/*.egg-info
	rm -f $(PKG_DIR)/_tracker*.so $(PKG_DIR)/bin/heapscope
