# Quick start: `make demo` (main job) and `make test`. Both create the venv through `make install`.
# Python 3.11 (the default python3), 3.12 and 3.13 are supported, each with its own lock and venv;
# every command below runs that venv's interpreter, $(VENV)/bin/python:
#   Python 3.11: make test                      .venv/bin/python        requirements-lock-py311.txt (what CI runs)
#   Python 3.12: PYTHON=python3.12 make test    .venv-py312/bin/python  requirements-lock-py312.txt
#   Python 3.13: PYTHON=python3.13 make test    .venv-py313/bin/python  requirements-lock-py313.txt
#   make test-pythons                           the fast suite on 3.12 and 3.13 (PYTHONS=...)
# torch: the 3.11 lock pins the CPU-only build (torch 2.13.0+cpu, a 192 MB wheel, found in pip's
# find-links folder here). PyPI has no CPU-only torch for Linux x86_64: its torch 2.13.0 is the CUDA
# build (a 527 MB wheel for 3.12), and the 3.12 / 3.13 locks pin it with the 19 nvidia-*, cuda-* and
# triton wheels it requires (about 6 GB in all, about 9 minutes to install on this machine, which has no GPU).
# The CPU-only builds (torch==2.13.0+cpu) are on PyTorch's own wheel index, which this machine cannot
# reach; where it can, a CPU-only venv is the lock less its torch, nvidia-*, cuda-* and triton lines,
# plus torch==2.13.0+cpu from that index.
#
# Installing the wheel (no checkout, no make): `make wheel` writes dist/recbole_dlrrec-VERSION-py3-none-any.whl.
# With this Python's lock and requirements-recbole.txt beside it, ONE command installs the wheel and every
# dependency at the tested versions (here for 3.12; the venv path and the lock follow the Python):
#   python3.12 -m venv .venv-py312
#   .venv-py312/bin/pip install --no-deps -r requirements-lock-py312.txt -r requirements-recbole.txt dist/recbole_dlrrec-*.whl
# --no-deps holds for the whole command: the lock pins every package, dependencies of dependencies
# included (tests/cli/test_wheel_install.py checks it), which is what lets RecBole 1.2.1 in without its
# ray<=2.6.3 pin. pip has no --no-deps for one requirement, so no extra (recbole-dlrrec[all]) can carry
# RecBole: pip would resolve its ray<=2.6.3 against the ray[tune]>=2.60 the wheel needs, and stop.
# A plain `pip install dist/recbole_dlrrec-*.whl` brings every requirement but RecBole; the command
# then stops with one line naming the step left: pip install --no-deps recbole==1.2.1.
PYTHON ?= python3
# The interpreter's path; a pyenv-installed python3.X that is not the active pyenv version is found too.
PYTHON_BIN := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || \
	ls -d $$(pyenv root 2>/dev/null)/versions/*/bin/$(PYTHON) 2>/dev/null | sort -V | tail -n 1)
PYVERSION := $(if $(PYTHON_BIN),$(shell "$(PYTHON_BIN)" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
PYVER := $(subst .,,$(PYVERSION))
LOCK := requirements-lock-py$(or $(PYVER),-none).txt
VENV ?= $(if $(filter 311,$(PYVER)),.venv,.venv-py$(PYVER))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_Q := -q --disable-pip-version-check

.PHONY: install wheel demo test test-fast lint format test-pythons docs lock bench gpu-wheels clean

# RecBole 1.2.1 goes in with --no-deps: it declares ray<=2.6.3 (see requirements.txt).
$(STAMP): $(LOCK) requirements-recbole.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install $(PIP_Q) -r $(LOCK) -r requirements-dev.txt
	$(PY) -m pip install $(PIP_Q) --no-deps -r requirements-recbole.txt
	$(PY) -m pip install $(PIP_Q) --no-deps --no-build-isolation -e .
	touch $(STAMP)

requirements-lock-py%.txt:
	@if [ -z "$(PYVER)" ]; then echo "make: PYTHON=$(PYTHON) is not a Python interpreter here" >&2; \
	else echo "make: no lock for Python $(PYVERSION) ($(PYTHON_BIN)); supported: 3.11, 3.12, 3.13" >&2; fi; exit 2

install: $(STAMP)

# The wheel, with properties/ inside and the `recbole-dlrrec` command (installing it: see the top).
wheel: install
	$(PY) -m pip wheel $(PIP_Q) --no-deps --no-build-isolation -w dist .

# DLRREC on the bundled restaurants dataset with $(VENV)/bin/python (.venv/bin/python on 3.11).
demo: install
	$(PY) run_recbole.py --model=DLRREC --dataset=restaurants

test: install lint
	$(PY) -m pytest -q tests

# The inner loop: the checks and everything not marked slow (under a minute on the 2-core machine).
# The tests run on one thread (tests/conftest.py), so the type check runs beside them.
test-fast: install
	@$(MAKE) --no-print-directory lint & lint=$$!; \
	$(PY) -m pytest -q -m "not slow" tests; tests=$$?; wait $$lint; lint=$$?; \
	test $$tests -eq 0 && test $$lint -eq 0

# ruff (lint, and the format check) and mypy: ruff.toml, mypy.ini. `make format` rewrites in place.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The user guide: results pages generated from results/ (docs/results/boards/, not in git), then the
# site built strictly into site/ (a broken link or anchor fails the build).
docs: install
	$(PY) -m recbole_dlrrec.experiments.docs_results --results results --out docs/results/boards
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# The fast suite on every other supported Python, each in its own venv (PYTHON=... make test for one).
PYTHONS ?= python3.12 python3.13
test-pythons:
	@for py in $(PYTHONS); do echo "== $$py"; $(MAKE) --no-print-directory PYTHON=$$py test-fast || exit $$?; done

# Re-resolve this interpreter's lock from requirements*.txt (in a scratch venv; review the diff).
lock:
	rm -rf /tmp/recbole-dlrrec-lock-py$(PYVER) && $(PYTHON_BIN) -m venv /tmp/recbole-dlrrec-lock-py$(PYVER)
	/tmp/recbole-dlrrec-lock-py$(PYVER)/bin/pip install $(PIP_Q) -r requirements.txt -r requirements-dev.txt
	/tmp/recbole-dlrrec-lock-py$(PYVER)/bin/pip freeze --all --exclude pip > requirements-lock-py$(PYVER).txt

bench: install
	$(PY) benchmarks/bench_swing.py
	$(PY) benchmarks/bench_train.py --variants plain,amp

# What the GPU machine (Python 3.12, numpy 2, pandas 3, torch, no RecBole, no ray, no network) lacks,
# as wheels in .whl/ (git-ignored), for `bash benchmarks/gpu_check.sh` there; versions as in
# requirements-lock-py312.txt. Ray is not among them: the training path never imports it.
GPU_WHEELS := recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 texttable==1.7.2 \
	thop==0.1.1.post2209072238
gpu-wheels:
	$(PYTHON_BIN) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $(GPU_WHEELS)

clean:
	rm -rf log log_tensorboard saved results/runs site
