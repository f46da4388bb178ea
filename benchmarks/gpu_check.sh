#!/usr/bin/env bash
# The prepared GPU check (issue 15), for a CUDA machine, in at most 8 minutes:
#   1. install the wheels carried in .whl/ (scripts/bundle_wheels.sh made them) into /tmp/site, and
#      unpack the carried fixtures (../shared does not travel); not with --tiny;
#   2. the GPU-marked tests: CUDA outputs against CPU float32 (tests/test_gpu.py, `-m gpu`);
#   3. benchmarks/gpu_bench.py: one table (encode, torch.compile, decode, pipeline, train).
#
#   bash benchmarks/gpu_check.sh --out DIR      # on the device: --out "$OUT"
#   bash benchmarks/gpu_check.sh --tiny --out DIR   # the same steps on a CPU, tiny sizes
#
# DIR receives pytest_gpu.log, gpu_bench.log, gpu_bench.json and gpu_bench.txt (at most the 8
# files the device tool returns). Exit status: 0 when the tests passed and every bench section ran.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=""
TINY=()
LIMIT_S=480
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --tiny) TINY=(--tiny); shift ;;
    --limit) LIMIT_S="$2"; shift 2 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh --out DIR [--tiny] [--limit SECONDS]" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "give --out DIR" >&2; exit 2; }
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$SECONDS
left() { echo $((LIMIT_S - (SECONDS - started))); }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
python3 -c "import torch; print('gpu_check: torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())"
if [ ${#TINY[@]} -eq 0 ] && ! python3 -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: no CUDA device here; run with --tiny for the CPU version" >&2
  exit 1
fi

# 1. what travelled with the tree
if [ ${#TINY[@]} -eq 0 ] && compgen -G ".whl/*.whl" >/dev/null; then      # --tiny: this environment as it is
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing the carried wheels failed" >&2; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  echo "gpu_check: installed $(ls .whl/*.whl | wc -l) carried wheels into /tmp/site"
fi
if [ ${#TINY[@]} -eq 0 ] && [ -f .whl/shared-fixtures.tar.xz ] && [ -z "${VADCLIP_SHARED:-}" ] && [ ! -d ../shared ]; then
  { [ -d /tmp/shared/fixtures ] || { mkdir -p /tmp/shared && tar -xJf .whl/shared-fixtures.tar.xz -C /tmp/shared; }; } \
    && export VADCLIP_SHARED=/tmp/shared && echo "gpu_check: fixtures unpacked into /tmp/shared"
fi

# 2. tests (-rP: the measured errors of passing comparisons too; without CUDA they all skip)
timeout $(( $(left) < 180 ? $(left) : 180 )) python3 -m pytest -q -rP -p no:cacheprovider -m gpu tests/test_gpu.py \
  2>&1 | tee "$OUT/pytest_gpu.log"
tests_rc=${PIPESTATUS[0]}

# 3. the table (sections isolated in their own processes; the budget shrinks or skips late ones)
budget=$(( $(left) - 15 ))
python3 benchmarks/gpu_bench.py "${TINY[@]}" --isolate --budget "$budget" --out "$OUT" 2>&1 | tee "$OUT/gpu_bench.log"
bench_rc=${PIPESTATUS[0]}
failed=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(1 for s in r['sections'].values() if s['error']))" \
  "$OUT/gpu_bench.json" 2>/dev/null || echo "?")

echo "gpu_check: tests exit $tests_rc, bench exit $bench_rc, failed sections $failed, $((SECONDS - started)) s"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "$failed" = 0 ]
