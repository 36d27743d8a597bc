#!/usr/bin/env bash
# The checks that need a GPU machine, as one script (the lent machine's time is short):
# the CUDA tests, the whole suite with a GPU visible, Table 8's GPU column, ours against
# torchvision/timm on the GPU, and that machine's CPU for int8 and the AVX-512 binary kernel.
# Each step has its own time limit; results go to $OUT (or ./device-out). Name steps to run
# only those (the lent time is 15 minutes a session):
#
#     bash tools/device_check.sh [STEP ...]     # e.g. tests_cuda cuda_latency peers_graph
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
PY=${PY:-python3}

WANT=" $* "
step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  [ "$WANT" = "  " ] || [[ "$WANT" == *" $name "* ]] || return 0
  echo "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? after $((SECONDS - t0))s; tail:"
  tail -n 4 "$OUT/$name.txt"
}

{
  nvidia-smi -L
  lscpu | grep -E "Model name|^CPU\(s\)"
  grep -o -w -E "avx512f|avx512_vpopcntdq|avx512_vnni|amx_int8" /proc/cpuinfo | sort | uniq -c
  $PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"
  $PY setup.py -q build_ext --inplace 2>&1 | tail -n 2
  $PY -c "from cnnlab.compress import _binconv; print('binconv simd:', _binconv.simd())"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step tests_cuda 120 $PY -m pytest -n 8 -p no:cacheprovider -p no:warnings -rfEs tests/test_cuda.py
step tests_all 170 $PY -m pytest -n 16 -p no:cacheprovider -p no:warnings --timeout 120 -rfE --ignore tests/test_cuda.py
step table8_gpu 60 $PY benchmarks/table8.py --device cuda --batch 8 --runs 20 --sizes 224,320
step peers_gpu 90 $PY benchmarks/peers.py --device cuda --batches 1,8 --runs 15
# how much of the GPU's launch/dispatch overhead each remedy removes, and whether ours and the
# peers' implementations tie once it is gone (both replayed as CUDA graphs)
step cuda_latency 60 $PY benchmarks/cuda_latency.py --runs 30
PAIRS_GRAPH="resnet18 resnet50 densenet121 mobilenet_v2 shufflenet_v2_x1_0 efficientnet_b0"
# shellcheck disable=SC2086
step peers_graph 90 $PY benchmarks/peers.py $PAIRS_GRAPH --device cuda --cuda-graph \
  --batches 1,8 --runs 20
step cuda_compile 200 $PY benchmarks/cuda_latency.py resnet18 mobilenet_v2 \
  shufflenet_v2_x1_0 --batches 1 --compile --runs 30
step int8_cpu 50 $PY benchmarks/int8.py --sweep --runs 30
step binary_cpu 40 $PY benchmarks/binary_conv.py --rounds 5 --threads 1
