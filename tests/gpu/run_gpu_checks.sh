#!/usr/bin/env bash
# The GPU checks of mode="cuda", in one run (a few minutes):
#   1. install theanine without the network and check the theanine.codegen mapping,
#   2. show the GPU (nvidia-smi) and the toolchain,
#   3. run tests/test_cuda_mode.py, test_cuda_source.py, test_cuda_indexing.py,
#      test_cuda_scan.py, test_cuda_lines.py and test_cuda_entry.py on the GPU (their tests of the CPU
#      emulation and the slow compile-only check are left to runs without a GPU),
#   4. benchmark the B3 MLP training step with mode="cuda" (and PyTorch on the GPU),
#   5. run the training-step benchmarks B3, B8, B9 and B10 (--quick), which add a
#      mode="cuda" row beside llvm and c when a GPU is usable.
# Run from anywhere inside the repository, as a user who may pip install. Output goes to
# stdout and, when $OUT is set, to $OUT/gpu_checks.log. Each step reports "ok" or
# "FAILED (exit N)"; a failed install stops everything, other failures are summed up at
# the end (exit status 1).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
FAILED=()

step() {  # step NAME COMMAND...: run one step (in this shell), report how it ended
    local name=$1
    shift
    echo
    echo "=== ${name}"
    local start=$SECONDS
    "$@"
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "=== ${name}: ok ($((SECONDS - start)) s)"
    else
        [ "$rc" -eq 124 ] && echo "(stopped at its time limit)"
        echo "=== ${name}: FAILED (exit ${rc}, $((SECONDS - start)) s)"
        FAILED+=("${name}")
    fi
    return "$rc"
}

install() {
    if PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1 timeout 60 \
            "$PYTHON" -m pip install --no-deps --no-build-isolation -e . ; then
        return 0
    fi
    # no editable install: the same layout through a directory of links on PYTHONPATH
    echo "pip install failed; mapping the packages through PYTHONPATH instead"
    local dir
    dir=$(mktemp -d /tmp/theanine-path.XXXXXX) || return 1
    mkdir "$dir/theanine"
    for entry in src/theanine/*; do ln -s "$PWD/$entry" "$dir/theanine/"; done
    ln -s "$PWD/codegen" "$dir/theanine/codegen"
    export PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}"
}

check_mapping() {
    timeout 60 "$PYTHON" - <<'EOF'
import os
import theanine, theanine.codegen, theanine.codegen.cuda, theanine.cuda
from theanine.compile.cuda_program import CudaProgram
where = os.path.realpath(theanine.codegen.__file__)
print("theanine:", os.path.realpath(theanine.__file__))
print("theanine.codegen:", where)
assert where.endswith(os.path.join("codegen", "__init__.py")), where
print("theanine.cuda.is_available():", theanine.cuda.is_available())
EOF
}

show_machine() {
    timeout 30 nvidia-smi || return 1
    nvcc --version | tail -n 2
    timeout 60 "$PYTHON" - <<'EOF'
import sys, numpy
from theanine.codegen import cudart
print("python", sys.version.split()[0], "numpy", numpy.__version__)
print("CUDA runtime", cudart.runtime_version(), "devices", cudart.device_count(),
      "compute capability", cudart.compute_capability())
print("cuBLAS:", "available" if cudart.cublas_available() else cudart.cublas_unavailable_reason())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except ImportError:
    print("torch not installed")
EOF
}

main() {
    step "install theanine" install || { echo "cannot continue without theanine"; return 1; }
    step "theanine.codegen mapping" check_mapping || return 1
    step "GPU and toolchain" show_machine
    # the CPU emulation and the compile check of every opcode need no GPU (CI runs them)
    # -o addopts=: one process (the suite's own options ask for pytest-xdist's workers)
    step "CUDA tests" timeout 360 "$PYTHON" -m pytest -o addopts= -x -v -rs -p no:cacheprovider \
        --durations=8 -k "not emulated and not every_opcode_and_reduction_compiles and not kernels_compile \
        and not kernels_that_compile and not compile_with_nvcc" \
        tests/test_cuda_mode.py tests/test_cuda_source.py tests/test_cuda_indexing.py \
        tests/test_cuda_scan.py tests/test_cuda_lines.py tests/test_cuda_entry.py
    step "MLP benchmark" timeout 60 "$PYTHON" tests/gpu/bench_mlp.py
    # the training steps (MLP, CNN, RNN, LSTM), checked against NumPy, with a mode="cuda" row
    step "training-step benchmarks" timeout 300 "$PYTHON" -m tests.benchmarks.run_all --quick \
        --only b3,b8,b9,b10
    echo
    if [ "${#FAILED[@]}" -eq 0 ]; then
        echo "=== all GPU checks passed"
    else
        echo "=== failed: ${FAILED[*]}"
        return 1
    fi
}

if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    main 2>&1 | tee "$OUT/gpu_checks.log"
    exit "${PIPESTATUS[0]}"
fi
main
