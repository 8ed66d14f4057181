#!/usr/bin/env bash
# One-call GPU check for the fast loaders and the training step (issue 8), for the project's
# H100 machine (Python 3.12, numpy 2.x, torch 2.11, no ray; RecBole and friends as wheels in .whl/).
#
#   make gpu-wheels                         # here, once: what that machine lacks, into .whl/ (about 2 MiB)
#   bash benchmarks/gpu_check.sh            # there, from the repository root, with .whl carried;
#                                           # results go to $OUT
#
# Steps, each bounded so that the whole call stays under 8 minutes (budget below):
#   1. install the carried wheels into /tmp/site (no index, no deps) and put the repo on PYTHONPATH
#   2. preflight: versions, GPU, which imports are missing (numba / scipy are needed by DLRREC)
#   3. CPU correctness: tests/runtime/test_fast_loader.py with CUDA hidden (the CPU order equals RecBole's)
#   4. GPU correctness + timing: bench_train.py --device cuda --check at batch 4096 and 32768, every
#      run (DeepFM / DLRREC, standard / fast, contrastive-head variants) plus fused Adam and bf16
#      autocast (DLRREC's train_precision: auto is fp32 on CUDA; fused_optimizer is on)
#   5. step overhead: DLRREC fast and DeepFM fast with torch.compile, CUDA graphs (compile mode
#      reduce-overhead) and fused Adam + CUDA graphs, at both batch sizes
# Every bench call saves its report after each finished step, so a step cut by its budget still
# leaves what it measured. Files in $OUT: gpu_check.log, preflight.json, pytest_fast_loader.txt,
# gpu_main.{txt,json}, gpu_step.{txt,json}.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-results/bench/gpu}
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET:-450}   # seconds for everything (the device call itself is limited to 8 min)
DEVICE=${GPU_CHECK_DEVICE:-cuda}  # cpu: a dry run of this script's plumbing on a machine without a GPU
ROWS=${GPU_CHECK_ROWS:-2000000}   # rows of the generated dataset
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
left() { echo $(( BUDGET - $(date +%s) + START )); }
log() { echo "[$(elapsed)s] $*" | tee -a "$OUT/gpu_check.log"; }

# 1. environment
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >>"$OUT/gpu_check.log" 2>&1 \
    || log "wheel install reported an error (see above)"
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} PYTHONUNBUFFERED=1
PY=${PY:-python3}
log "start; OUT=$OUT budget=${BUDGET}s device=$DEVICE rows=$ROWS"

# 2. preflight
$PY - >"$OUT/preflight.json" 2>>"$OUT/gpu_check.log" <<'EOF'
import importlib, json, platform
info = {"python": platform.python_version()}
missing = []
for name in ("numpy", "pandas", "torch", "recbole", "scipy", "numba", "sklearn", "yaml", "tqdm", "psutil",
             "matplotlib", "colorlog", "texttable", "thop", "tensorboard", "sentence_transformers", "pytest"):
    try:
        module = importlib.import_module(name)
        info[name] = getattr(module, "__version__", "present")
    except Exception as exc:  # noqa: BLE001 - report any import failure
        missing.append(f"{name}: {type(exc).__name__}: {exc}"[:200])
info["missing"] = missing
try:
    import torch
    info["cuda_available"] = torch.cuda.is_available()
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except Exception as exc:  # noqa: BLE001
    info["cuda_error"] = str(exc)
print(json.dumps(info, indent=2))
EOF
log "preflight: $(tr -d '\n' <"$OUT/preflight.json" | cut -c1-600)"

# 3. CPU correctness (CUDA hidden before RecBole's Config re-exports gpu_id)
CUDA_VISIBLE_DEVICES="" timeout 150 $PY -c "
import sys, torch
torch.cuda.is_available()  # the CUDA runtime now starts with no device visible
import pytest
sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'tests/runtime/test_fast_loader.py', 'tests/runtime/test_training.py']))
" >"$OUT/pytest_fast_loader.txt" 2>&1
log "pytest tests/runtime/test_fast_loader.py tests/runtime/test_training.py (CPU): exit $? -- $(tail -n 1 "$OUT/pytest_fast_loader.txt")"

# restaurants only when its files were carried here (building it needs the sentence encoder)
DATASETS=generated
if [ -f dataset/restaurants/restaurants.train.inter ]; then DATASETS=restaurants,generated; fi

# 4. correctness on the GPU + every run at both batch sizes, plain, fused Adam and bf16 autocast
MAIN_BUDGET=$(( $(left) * 55 / 100 ))
log "bench (main): datasets=$DATASETS budget=${MAIN_BUDGET}s"
timeout $(( MAIN_BUDGET + 60 )) $PY benchmarks/bench_train.py --device "$DEVICE" --rows "$ROWS" --check --datasets "$DATASETS" \
  --batch 4096,32768 --variants plain,fused,amp --repeats 2 --max-batches 30 --warmup-batches 3 \
  --scaling "" --fresh-rounds 2 --encoder-sentences 256 --time-budget "$MAIN_BUDGET" --save "$OUT/gpu_main" \
  >"$OUT/gpu_main.stdout" 2>>"$OUT/gpu_check.log"
log "bench (main): exit $?"

# 5. step overhead: torch.compile, CUDA graphs, fused Adam + CUDA graphs (fast runs only)
STEP_BUDGET=$(( $(left) - 20 ))
if [ "$STEP_BUDGET" -gt 60 ]; then
  log "bench (step variants): budget=${STEP_BUDGET}s"
  timeout $(( STEP_BUDGET + 15 )) $PY benchmarks/bench_train.py --device "$DEVICE" --rows "$ROWS" --datasets generated \
    --runs "DLRREC fast,DeepFM fast" --variants compile,cudagraphs,fused+cudagraphs \
    --batch 4096,32768 --repeats 1 --max-batches 40 --warmup-batches 5 --scaling "" --fresh-rounds 0 --encoder-sentences 0 \
    --time-budget "$STEP_BUDGET" --save "$OUT/gpu_step" >"$OUT/gpu_step.stdout" 2>>"$OUT/gpu_check.log"
  log "bench (step variants): exit $?"
else
  log "bench (step variants): skipped, ${STEP_BUDGET}s left"
fi
for f in gpu_main gpu_step; do
  [ -f "$OUT/$f.txt" ] && { echo "==== $f"; sed -n '1,200p' "$OUT/$f.txt" | grep -v '^{'; }
done
log "done in $(elapsed)s"
