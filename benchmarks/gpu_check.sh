#!/usr/bin/env bash
# The GPU check, for a CUDA machine where the project is installed with its test and bench
# extras and CuPy: the gpu-marked tests (set MLP_DATA_DIR for the end-to-end MNIST one), then the
# GPU benchmarks and their report (REPORT.md, plots/, results.json) in OUTDIR.
#   usage: bash benchmarks/gpu_check.sh OUTDIR
set -uo pipefail
out="${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}"
out="$(mkdir -p "$out" && cd "$out" && pwd)"  # absolute: the commands below run elsewhere
cd "$(dirname "$0")/.."
python -m pytest tests -m gpu -q -rs -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
python -m mlp bench --gpu --out "$out" --json "$out/results.json" 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}
echo "gpu tests: exit $tests; benchmarks: exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
