#!/usr/bin/env bash
# An embedops-only sweep of trainer configs on a lent GPU machine (see docs/benchmarks/train_gpu.md).
# Same setup as bench/gpu_run.sh (.whl/ and .gpudata/ carried; embedops runs from src/), but
# the corpus is read once per process and each config of $SWEEP (a JSON list, default
# bench/gpu_sweep.json) is trained and scored in turn, one JSON line each in $OUT/sweep.jsonl.
# A config that fails is recorded and the next one runs; if the process itself dies (a CUDA
# fault, say), it is restarted and goes on after the config it died in, until every config has
# been tried or DEADLINE seconds (default 380) have passed. A local smoke test:
#   OUT=/tmp/sweep WHEELS=none BENCH_ARGS='--max-lines 300 --device cpu' bench/gpu_sweep.sh
set -u
OUT=${OUT:-bench/out/gpu}
SWEEP=${SWEEP:-bench/gpu_sweep.json}
DEADLINE=${DEADLINE:-380}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
WHEELS=${WHEELS:-.whl}  # WHEELS=none: use the python3 on the PATH as it is
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:src
else
    export PYTHONPATH=src
fi

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c 'import torch, numpy, gensim; print("torch", torch.__version__, "cuda",
        torch.version.cuda, "numpy", numpy.__version__, "gensim", gensim.__version__)'
    nproc
} 2>&1 | tee "$OUT/env.log"

total=$(python3 -c "import json, sys; print(len(json.load(open(sys.argv[1]))))" "$SWEEP")
for try in 1 2 3 4 5 6; do
    left=$((DEADLINE - SECONDS))
    tried=$(cat "$OUT/sweep.jsonl.attempts" 2>/dev/null | wc -l)
    [ "$tried" -ge "$total" ] && break
    [ "$left" -lt 30 ] && { echo "=== deadline: $tried of $total configs tried"; break; }
    echo "=== process $try: $tried of $total configs tried, ${left}s left"
    timeout "$left" python3 bench/train_gpu.py --data .gpudata --device cuda --skip-gensim \
        --sweep "$SWEEP" --out "$OUT/sweep.jsonl" ${BENCH_ARGS:-} 2>&1 | tee -a "$OUT/sweep.log"
    echo "=== process $try exit ${PIPESTATUS[0]} after ${SECONDS}s in all" | tee -a "$OUT/sweep.log"
done
