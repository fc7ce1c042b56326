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
# The CUDA device is looked for first, with python3 (which must see CuPy): without one, nothing is
# installed and the check ends with status 3 (after `mlp info`, when python3 has the project).
# GPU_CHECK_INSTALL_ONLY=1: install from WHEELHOUSE and run `mlp info`, without looking for a GPU
# (a trial of a wheelhouse on any machine of the same Python), then stop.
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

# The CUDA device, before anything is installed: a wheelhouse for another Python must not turn
# "no GPU here" into a failed install. Only CuPy and the standard library are imported.
install_only="${GPU_CHECK_INSTALL_ONLY:-}"
cuda=0
if [ -z "$install_only" ]; then
    "$python" - <<'PY' > "$out/cuda.txt" 2>&1
from importlib.metadata import distributions
names = sorted({name for d in distributions()
                if (name := d.metadata["Name"] or "").lower().startswith("cupy")})
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
    if [ "$cuda" -ne 0 ] && ! grep -q "no CUDA device" "$out/cuda.txt"; then
        exit 1
    fi
fi
no_device() {
    echo "gpu_check: no CUDA device: the GPU steps were not run" | tee -a "$out/summary.txt"
    exit 3
}
[ "$cuda" -ne 0 ] && [ -n "$wheelhouse" ] && no_device

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
[ "$cuda" -ne 0 ] && no_device
if [ -n "$install_only" ]; then
    echo "gpu_check: $([ "$status" -eq 0 ] && echo installed || echo FAILED), logs in $out"
    exit "$status"
fi

export MLP_REQUIRE_BACKENDS=cupy,torch:cuda
step gpu-tests gpu-tests.log "$python" -m pytest tests -m gpu -q -rs -p no:cacheprovider
step train train.log "$python" -m mlp train --backend cupy --epochs 2 --quiet --overwrite \
    --save "$out/gpu.safetensors" --metrics "$out/metrics.jsonl" \
    && step evaluate evaluate.log "$python" -m mlp evaluate --checkpoint "$out/gpu.safetensors" \
        --backend numpy
step bench bench.log "$python" -m mlp bench --gpu --out "$out" --overwrite "${bench_options[@]}"
echo "gpu_check: $([ "$status" -eq 0 ] && echo passed || echo FAILED), logs in $out"
exit "$status"
