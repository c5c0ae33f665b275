#!/usr/bin/env bash
# Every GPU check of depthlab in one go, on a machine with a CUDA device: the GPU-marked
# tests, then the benchmarks on the device, each into its own file of RESULTS_DIR (8 files:
# summary, device, gpu-tests, train-loop, gpu-step, main-line, compile, studies).
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        (default: gpu_results/)
#
# Run it from the repository root. Where packages cannot be installed from an index, put
# their wheels in a folder and set WHEELS=that/folder: they are installed into a temporary
# target first (no network), with this checkout unless a depthlab wheel is among them
# (pip wheel --no-deps -w that/folder .). STUDIES="a b" chooses the study presets timed
# (default: edge_of_chaos). Each check runs under a
# time limit, even when an earlier one failed; summary.txt lists every check with its exit
# status and time, and the script exits non-zero if any failed.
set -uo pipefail
results="${1:-gpu_results}"
mkdir -p "$results"
summary="$results/summary.txt"
: > "$summary"
work="$(mktemp -d)"

if [ -n "${WHEELS:-}" ]; then
  site="$work/site"
  python3 -m pip install -q --no-index --no-deps --target "$site" "$WHEELS"/*.whl || exit 1
  if ! ls "$WHEELS"/depthlab-*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" . \
      || exit 1
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1

status=0
check() {  # check NAME SECONDS COMMAND...: run with a time limit, keep its output in NAME.txt
  local name="$1" limit="$2"
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$results/$name.txt" 2>&1
  local rc=$?
  printf '%-10s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - start))" "$*" | tee -a "$summary"
  [ "$rc" -eq 0 ] || status=1
}

check device 60 bash -c "nvidia-smi; python3 -c \"import torch; print(torch.__version__, \
torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA')\""
check gpu-tests 150 python3 -m pytest -m gpu -v -p no:cacheprovider tests/test_gpu.py tests/test_watch_gpu.py
check train-loop 120 python3 benchmarks/gpu_step.py --device cuda --replicas 1 --steps 10 \
  --train-steps 500
check gpu-step 300 python3 benchmarks/gpu_step.py --device cuda --steps 20 --train-steps 0
check main-line 90 python3 benchmarks/main_line.py --repeats 2
check compile 100 python3 benchmarks/gpu_step.py --device cuda --replicas 1 --train-steps 0 --compile
check studies 150 python3 benchmarks/studies.py "$work/studies" ${STUDIES:-edge_of_chaos}
exit $status
