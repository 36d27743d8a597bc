#!/usr/bin/env bash
# second device run: the CUDA tests and the suite after the fixes, and the peers left over
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
python3 setup.py -q build_ext --inplace >/dev/null 2>&1
t0=$SECONDS
timeout 120 python3 -m pytest -n 8 -p no:cacheprovider -p no:warnings -rfEs tests/test_cuda.py >"$OUT/tests_cuda.txt" 2>&1
echo "tests_cuda exit $? $((SECONDS-t0))s"; tail -n 25 "$OUT/tests_cuda.txt"
t0=$SECONDS
timeout 150 python3 -m pytest -n 16 -p no:cacheprovider -p no:warnings --timeout 120 -rfE --ignore tests/test_cuda.py >"$OUT/tests_all.txt" 2>&1
echo "tests_all exit $? $((SECONDS-t0))s"; grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/tests_all.txt" | tail -n 30
timeout 60 python3 benchmarks/peers.py nasnet_a_large cspresnet50 cspdarknet53 fcn32s --device cuda --batches 1,8 --runs 15 >"$OUT/peers_gpu2.txt" 2>&1
echo "peers exit $?"; cat "$OUT/peers_gpu2.txt" | grep -v Warn
