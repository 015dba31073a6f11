#!/usr/bin/env bash
# The GPU trainer benchmark as run on a lent GPU machine (see docs/benchmarks/train_gpu.md).
# Expects, beside the checkout (both ignored by git, carried to the machine):
#   .whl/     cp312 manylinux wheels of gensim 4.4.0, smart_open 9.0.2, wrapt 2.5.2
#   .gpudata/ corpus-en-13m.txt.xz (a copy of ../shared/data's)
# and the machine's own python3 with a CUDA torch. embedops itself is not pip-installed (its
# dependencies would pull a CPU torch): it runs from src/. Logs and JSON go to $OUT.
# Each run has its own timeout, and one failing does not stop the next. A local smoke test:
#   BENCH_ARGS='--max-lines 2000 --device cpu' bench/gpu_run.sh
set -u
OUT=${OUT:-bench/out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src

{
    date -u
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    python3 -c 'import torch, numpy, scipy, gensim; print("torch", torch.__version__,
        "cuda", torch.version.cuda, "numpy", numpy.__version__, "scipy", scipy.__version__,
        "gensim", gensim.__version__, "gpu", torch.cuda.get_device_name(0))'
    nproc
} 2>&1 | tee "$OUT/env.log"

run() {  # run NAME SECONDS ARGS...: one bench invocation, its log and JSON in $OUT
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s): $*"
    timeout "$limit" python3 bench/train_gpu.py --data .gpudata --device cuda \
        --out "$OUT/$name.json" "$@" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/$name.log"
    echo "=== $name exit ${PIPESTATUS[0]} after ${SECONDS}s in all"
}

# 1. The comparison: skip-gram, default batch (65,536 pairs), gensim on 2 CPU workers.
run sg_b65536 ${LIMIT_MAIN:-300}
# 2. embedops only: a 4x larger batch, to inform the default batch size / learning rate.
run sg_b262144 ${LIMIT_EXTRA:-90} --batch-size 262144 --skip-gensim
# 3. embedops only: CBOW at the default batch.
run cbow_b65536 ${LIMIT_EXTRA:-90} --sg 0 --skip-gensim
