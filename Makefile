# Quick start: `make demo` (main job) and `make test`. Both create the venv through `make install`.
# Python 3.11 (the default python3), 3.12 and 3.13 are supported, each with its own lock and venv:
#   make test                       # python3 (3.11): .venv, requirements-lock-py311.txt (what CI runs)
#   PYTHON=python3.12 make test     # .venv-py312, requirements-lock-py312.txt
#   make test-pythons               # the fast suite on 3.12 and 3.13 (PYTHONS=...)
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

.PHONY: install demo test test-fast test-pythons docs lock bench gpu-wheels clean

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

demo: install
	$(PY) run_recbole.py --model=DLRREC --dataset=restaurants

test: install
	$(PY) -m pytest -q tests

# The inner loop: everything not marked slow (under a minute on the 2-core machine).
test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

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
