#!/usr/bin/env bash
# The prepared GPU check: the `gpu`-marked tests and the CUDA benchmarks in one run, logs under $OUT.
#
# Made for a lent CUDA machine whose python3 already holds torch but not this project's other
# dependencies and which reaches no registry: those travel as wheels in .whl/ (docs/environment.md
# says how they are fetched). The package is made importable by copying hil/ and its package-dir
# parts (backends/, models/, calibration/) into one tree, so nothing is built there. Everything runs
# from /tmp, so the repository's own hil/ folder never shadows that tree.
#
#     bash benchmarks/gpu_check.sh            # from the repository root, with .whl/ beside it
set -u
repo=$(pwd)
out=${OUT:-/tmp/hil-gpu-out}
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing the carried wheels failed" >&2; exit 1; }
fi
rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r hil /tmp/pkg/hil
for part in backends models calibration; do cp -r "$part" "/tmp/pkg/hil/$part"; done
export PYTHONPATH=/tmp/pkg:/tmp/site:$repo PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
cd /tmp || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch, hil; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'hil', hil.__version__)" \
    2>&1 | tee -a "$out/gpu.txt"
status=0
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.txt, remember a failure
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit} s)"
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    tail -n 40 "$out/$name.txt"
    echo "== $name rc=$rc"
    [ "$rc" -eq 0 ] || status=1
}
step gpu_tests 120 python3 -m pytest -q -p no:cacheprovider -m gpu -rs "$repo/tests"
step batched_training 220 python3 "$repo/benchmarks/batched_training.py" --backend gpu --k 8 --rounds 2
step gpu_paths 200 python3 "$repo/benchmarks/gpu_paths.py" --rounds 15
exit $status
