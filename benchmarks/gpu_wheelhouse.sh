#!/usr/bin/env bash
# Download, on a machine with the package index, the wheels that benchmarks/gpu_check.sh needs
# on an offline CUDA machine (Python 3.12, manylinux x86_64). Such a machine already has CUDA,
# CuPy, NumPy, pytest and pytest-benchmark; these are the project's other requirements.
#   usage: bash benchmarks/gpu_wheelhouse.sh DIR
set -euo pipefail
dir="${1:?usage: bash benchmarks/gpu_wheelhouse.sh DIR}"
mkdir -p "$dir"
python="${PYTHON:-python3}"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
# The runtime requirements and their own (pure-Python unless noted), then the test suite's.
wheels=(
    "array-api-compat>=1.11" "safetensors>=0.4.3" "pooch>=1.8" platformdirs packaging requests
    urllib3 idna charset-normalizer certifi "tqdm>=4.66" "threadpoolctl>=3.1"
    "array-api-strict>=2.0" "hypothesis>=6.90" attrs sortedcontainers
)
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$dir" "${wheels[@]}"
size=$(du -sm "$dir" | cut -f1)
echo "gpu_wheelhouse: $(ls "$dir" | wc -l) wheels, ${size} MB in $dir"
if [ "$size" -gt 64 ]; then
    echo "gpu_wheelhouse: more than 64 MB" >&2
    exit 1
fi
