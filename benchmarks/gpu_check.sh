#!/usr/bin/env bash
# Every GPU check of depthlab in one go, on a machine with a CUDA device:
#   the GPU-marked tests, then the benchmarks on the device, each writing into RESULTS_DIR.
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        (default: gpu_results/)
#
# Run it from the repository root with depthlab importable (pip install -e ".[test]").
# Where packages cannot be installed from an index, put their wheels in a folder and set
# WHEELS=that/folder: they are installed into a temporary target first. Each check runs
# even when an earlier one failed; summary.txt lists every check with its exit status, and
# the script exits non-zero if any failed.
set -uo pipefail
results="${1:-gpu_results}"
mkdir -p "$results"
summary="$results/summary.txt"
: > "$summary"

if [ -n "${WHEELS:-}" ]; then
  site="$(mktemp -d)"
  python3 -m pip install -q --no-index --no-deps --target "$site" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi

status=0
check() {  # check NAME COMMAND...: run, keep its output in NAME.txt, note its exit status
  local name="$1"
  shift
  local start=$SECONDS
  "$@" > "$results/$name.txt" 2>&1
  local rc=$?
  printf '%-12s rc=%s  %ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$*" | tee -a "$summary"
  [ "$rc" -eq 0 ] || status=1
}

check device python3 -c "import torch; print(torch.__version__, torch.version.cuda); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')"
check nvidia-smi nvidia-smi
check gpu-tests python3 -m pytest -m gpu -v -p no:cacheprovider tests/test_gpu.py
check replicas python3 benchmarks/replicas.py --device cuda --repeats 5
check throughput python3 benchmarks/throughput.py --device cuda --width 1024 --batch 1024
check throughput-b128 python3 benchmarks/throughput.py --device cuda --width 1024 --batch 128
exit $status
