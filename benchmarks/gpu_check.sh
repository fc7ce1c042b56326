#!/usr/bin/env bash
# The GPU check, in one command, for an offline CUDA machine that has CuPy, NumPy, pytest and
# pytest-benchmark (the other wheels come from benchmarks/gpu_wheelhouse.sh, run where the
# package index is reachable). Everything it writes goes under OUT:
#   info.log, gpu-tests.log, train.log + metrics.jsonl + gpu.safetensors, evaluate.log,
#   bench.log + REPORT.md, plots/ and results.json, summary.txt
#   usage: bash benchmarks/gpu_check.sh OUT [WHEELHOUSE [MLP-BENCH-OPTION...]]
# With WHEELHOUSE, the project is installed from it (no index) into OUT/venv, a virtual
# environment that sees the system's CuPy (also when python3 is itself a virtual environment's);
# without (WHEELHOUSE ""), the current python3 must have it installed. Options after WHEELHOUSE go
# to `mlp bench --gpu` (e.g. --quick).
# Exit status: 0 all passed; 1 a step failed; 3 no CUDA device (nothing on the GPU was run).
set -uo pipefail
usage="usage: bash benchmarks/gpu_check.sh OUT [WHEELHOUSE [MLP-BENCH-OPTION...]]"
out="${1:?$usage}"
wheelhouse="${2:-}"
bench_options=("${@:3}")
mkdir -p "$out" && out="$(cd "$out" && pwd)" || { echo "gpu_check: cannot create $out" >&2; exit 1; }
if [ -n "$wheelhouse" ]; then
    wheelhouse="$(cd "$wheelhouse" 2>/dev/null && pwd)" \
        || { echo "gpu_check: no wheelhouse folder ${2}" >&2; exit 1; }
fi
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
limit="${GPU_CHECK_STEP_TIMEOUT:-240}"  # seconds per step
status=0
: > "$out/summary.txt"

step() {  # step NAME LOG COMMAND...: run with a time limit, log, record the outcome
    local name="$1" log="$2"; shift 2
    timeout "$limit" "$@" > "$out/$log" 2>&1
    local rc=$?
    cat "$out/$log"
    echo "$name: exit $rc" | tee -a "$out/summary.txt"
    [ "$rc" -eq 0 ] || status=1
    return "$rc"
}

if [ -n "$wheelhouse" ]; then
    "$python" -m venv --system-site-packages --without-pip "$out/venv" || exit 1
    # --system-site-packages reaches the base interpreter's packages only: when python3 is a
    # virtual environment's, its own packages (CuPy, PyTorch) are added by a .pth file.
    # pip and setuptools come from there too (--without-pip: no older copies shadow them).
    site_dir="$("$out/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
    "$python" -c 'import site, sys
if sys.prefix != sys.base_prefix:
    print("\n".join(site.getsitepackages()))' > "$site_dir/outer-environment.pth" || exit 1
    python="$out/venv/bin/python"
    # The wheelhouse holds exactly what such a machine lacks: install it and the project without
    # resolving dependencies, which would also judge every package already there.
    wheels=("$wheelhouse"/*.whl)
    if [ -e "${wheels[0]}" ]; then
        step wheels wheels.log "$python" -m pip install --no-index --no-deps --quiet \
            "${wheels[@]}" || exit 1
    fi
    step install install.log "$python" -m pip install --no-index --no-deps --no-build-isolation \
        --quiet . || exit 1
fi

step info info.log "$python" -m mlp info
"$python" - <<'PY' > "$out/cuda.txt" 2>&1
import backends
names = backends.cupy_distributions()
if len(names) > 1:
    raise SystemExit(f"several CuPy distributions are installed ({', '.join(names)}): "
                     "pip uninstall all but the one matching the CUDA version")
try:
    import cupy
    count = cupy.cuda.runtime.getDeviceCount()
except Exception as exc:  # noqa: BLE001 - ImportError, CUDARuntimeError, driver errors
    raise SystemExit(f"no CUDA device ({type(exc).__name__}: {exc})") from None
if count < 1:
    raise SystemExit("no CUDA device (CuPy sees 0 GPUs)")
print(f"{count} CUDA device(s), CuPy {cupy.__version__}")
PY
cuda=$?
cat "$out/cuda.txt"
if [ "$cuda" -ne 0 ]; then
    if grep -q "no CUDA device" "$out/cuda.txt"; then
        echo "gpu_check: no CUDA device: the GPU steps were not run" | tee -a "$out/summary.txt"
        exit 3
    fi
    exit 1
fi

export MLP_REQUIRE_BACKENDS=cupy
step gpu-tests gpu-tests.log "$python" -m pytest tests -m gpu -q -rs -p no:cacheprovider
step train train.log "$python" -m mlp train --backend cupy --epochs 2 --quiet --overwrite \
    --save "$out/gpu.safetensors" --metrics "$out/metrics.jsonl" \
    && step evaluate evaluate.log "$python" -m mlp evaluate --checkpoint "$out/gpu.safetensors" \
        --backend numpy
step bench bench.log "$python" -m mlp bench --gpu --out "$out" --overwrite "${bench_options[@]}"
echo "gpu_check: $([ "$status" -eq 0 ] && echo passed || echo FAILED), logs in $out"
exit "$status"
