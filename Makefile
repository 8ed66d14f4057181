# Quick start: `make demo` (main job) and `make test`. Both create .venv through `make install`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench check-numpy2 clean

$(STAMP): requirements-lock.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-lock.txt -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) run_recbole.py --model=DLRREC --dataset=restaurants

test: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) benchmarks/bench_swing.py

# The training path on numpy 2 + pandas 2.2 (no ray), in a separate venv.
check-numpy2:
	test -x .venv-np2/bin/python || $(PYTHON) -m venv .venv-np2
	.venv-np2/bin/pip install -q "numpy>=2,<2.3" "pandas==2.2.3" torch==2.13.0 scipy scikit-learn pyyaml tqdm colorlog==4.7.2 colorama==0.4.4 texttable tabulate thop psutil tensorboard plotly numba matplotlib pytest
	.venv-np2/bin/pip install -q --no-deps recbole==1.2.1
	.venv-np2/bin/python tests/numpy2_smoke.py

clean:
	rm -rf log log_tensorboard saved results/runs
