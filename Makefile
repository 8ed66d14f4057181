# Quick start: `make demo` (main job) and `make test`. Both create .venv through `make install`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench check-numpy2 gpu-wheels clean

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

# The inner loop: everything not marked slow (under a minute on the 2-core machine).
test-fast: install
	$(PY) -m pytest -q -m "not slow" tests

bench: install
	$(PY) benchmarks/bench_swing.py
	$(PY) benchmarks/bench_train.py --variants plain,amp

# What the GPU machine (Python 3.12, pandas 3, no RecBole) lacks, as wheels in .whl/ (git-ignored),
# for `bash benchmarks/gpu_check.sh` there; versions as in requirements-lock.txt.
GPU_WHEELS := recbole==1.2.1 colorlog==4.7.2 colorama==0.4.4 texttable==1.7.2 \
	thop==0.1.1.post2209072238 pandas==2.2.3 pytz==2026.6 tzdata==2026.6
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $(GPU_WHEELS)

# The training path on numpy 2 + pandas 2.2 (no ray), in a separate venv.
check-numpy2:
	test -x .venv-np2/bin/python || $(PYTHON) -m venv .venv-np2
	.venv-np2/bin/pip install -q "numpy>=2,<2.3" "pandas==2.2.3" torch==2.13.0 scipy scikit-learn pyyaml tqdm colorlog==4.7.2 colorama==0.4.4 texttable tabulate thop psutil tensorboard plotly numba matplotlib pytest
	.venv-np2/bin/pip install -q --no-deps recbole==1.2.1
	.venv-np2/bin/python tests/numpy2_smoke.py

clean:
	rm -rf log log_tensorboard saved results/runs
