#!/usr/bin/env bash
# One call on a GPU host: the library's kernel table, layer steps and batch-1 sweeps, then the PyTorch peers at the
# same shapes, then one merged table (side-by-side.md) and the sweep plots, all in one results folder.
#   bench/run-all.sh [OUT]            (default: bench/results/<date>-<gpu>)
# TLS_BENCH says how to start tls-bench (default: dotnet run on the bench project; on a host with only the runtime,
# e.g. TLS_BENCH="dotnet .gpu/bench/tls-bench.dll"). KERNELS=0, LAYERS=0, SCALE=0, MODEL=0, DECODE=0 or PEERS=0 skip a part (the table
# merges whatever the folder holds); KERNEL_RUNS, LAYER_RUNS, MODEL_RUNS, PEER_BUDGET_S, PEER_SWEEP_BUDGET_S,
# CAUSAL_PEER_BUDGET_S and DECODE_PEER_BUDGET_S trim the run.
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' | sed 's/-$//' || echo gpu)
out=${1:-bench/results/$(date -u +%Y-%m-%d)-${gpu:-gpu}}
bench=${TLS_BENCH:-dotnet run --project bench/TransformerLS.Bench -c Release --}
mkdir -p "$out"
out=$(realpath "$out")
set -x
[ "${KERNELS:-1}" = 0 ] || $bench kernels --out "$out" --runs "${KERNEL_RUNS:-30}" | tee "$out/kernels.log"
[ "${LAYERS:-1}" = 0 ] || $bench layers --out "$out" --runs "${LAYER_RUNS:-20}" | tee "$out/layers.log"
[ "${SCALE:-1}" = 0 ] || $bench scale --out "$out" --dtype bf16 | tee "$out/scale.log"
[ "${MODEL:-1}" = 0 ] || $bench model --out "$out" --runs "${MODEL_RUNS:-10}" | tee "$out/model.log"
# The same steps replayed as one CUDA graph each (tls-graph rows), bf16, beside the eager ones.
if [ "${MODEL:-1}" != 0 ]; then
  $bench model --out "$out/model-graph" --runs "${MODEL_RUNS:-10}" --dtype bf16 --cuda-graph | tee "$out/model-graph.log"
  cp "$out/model-graph/model.rows.json" "$out/model-graph.rows.json"
fi
[ "${DECODE:-1}" = 0 ] || $bench decode --out "$out" --batches 1,8,64 --contexts 1024,8192,32768 --dtype bf16 | tee "$out/decode.log"
if [ "${PEERS:-1}" != 0 ]; then
  # The peer must compute the library's function: same weights and input, outputs compared (peers-check.log).
  $bench export-layer --out "$out/check" > /dev/null && (cd bench/peers && python3 check_ls_layer.py "$out/check") 2>&1 | tee "$out/peers-check.log"
  rm -rf "$out/check"
  if [ "${MODEL:-1}" != 0 ]; then
    # The causal peer likewise: a tiny model over two blocks, logits compared (causal-peers-check.log), then its steps.
    # (A failure here is logged and the run goes on to the LS peers.)
    { $bench export-causal --out "$out/check" > /dev/null && (cd bench/peers && python3 check_causal_lm.py "$out/check") 2>&1 | tee "$out/causal-peers-check.log"; } \
      || echo "causal peer check FAILED: see $out/causal-peers-check.log"
    rm -rf "$out/check"
    { (cd bench/peers && PYTHONUNBUFFERED=1 python3 causal_peers.py --out "$out/model-peers.rows.json" --budget-s "${CAUSAL_PEER_BUDGET_S:-300}") 2>&1 \
      | grep --line-buffered -v -e '^W1' -e 'warn' | tee "$out/causal-peers.log"; } || echo "causal peers FAILED: see $out/causal-peers.log"
  fi
  if [ "${DECODE:-1}" != 0 ]; then
    # Generation as the reference code would do it: the current block re-run for every byte (decode-peers.rows.json).
    { (cd bench/peers && PYTHONUNBUFFERED=1 python3 decode_peers.py --out "$out/decode-peers.rows.json" --contexts 1024,8192,32768 \
        --budget-s "${DECODE_PEER_BUDGET_S:-300}") 2>&1 | grep --line-buffered -v -e '^W1' -e 'warn' | tee "$out/decode-peers.log"; } \
      || echo "decode peers FAILED: see $out/decode-peers.log"
  fi
  (cd bench/peers && PYTHONUNBUFFERED=1 python3 peers.py --out "$out/peers.rows.json" --budget-s "${PEER_BUDGET_S:-420}" \
    --sweep-budget-s "${PEER_SWEEP_BUDGET_S:-240}") 2>&1 | grep --line-buffered -v -e '^W1' -e 'warn' | tee "$out/peers.log"
fi
$bench table "$out" > /dev/null
set +x
echo "results in $out: kernels.md, side-by-side.md, scale-*.svg, sweep-*.svg"
