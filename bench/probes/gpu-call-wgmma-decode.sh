#!/usr/bin/env bash
# Two device calls on one warm machine, about 6 minutes each, for the open questions of issue 17's wgmma path and
# issue 15's decode attention. Part "wgmma":
#   1. bench/probes/wgmma_attention_probe.cu (nvcc, with -Xptxas -v): the wgmma forward with Q fragments per tile (since
#      0a4b6c1) and pinned (e065d3d) against the mma.sync control; the one-buffer variants; the diagnostic tile loop with
#      the fragments loaded once and per tile, its S error per computed tile and per buffer; then the probe under
#      compute-sanitizer racecheck and synccheck.
#   2. The wide d = 64 bf16 conformance rows with TLS_WGMMA = fwd, dq, keys and 1 apart (dq and keys keep the mma.sync
#      forward, so those rows judge each backward pass alone), the errors of the rows that pass included.
#   3. tls-bench kernels rows of ls_attention with TLS_WGMMA 0 and 1.
# Part "decode":
#   4. The relative-logits-first decode kernels (TLS_DECODE_REL=pre, never run before): their conformance rows, the
#      decoder tests, their kernel rows against the default's.
#   5. ls_causal_decode kernel rows with TLS_DECODE_SPLITS unset, 1, 2, 4, 8 and 12 (batch 1 and 64).
#   6. ncu of the batch-64 decode step's attention kernels; registers and stack of the NVRTC CUBINs.
# Prepare here (the workspace's .gpu is git-excluded and does not survive a new checkout):
#   ../shared/gpu/pack-runtime.sh
#   dotnet build tests/TransformerLS.Tests -c Release -o .gpu/tests && dotnet build bench/TransformerLS.Bench -c Release -o .gpu/bench
# then: run(command="bash bench/probes/gpu-call-wgmma-decode.sh wgmma", carry=[".gpu"], timeout_s=560), and the same
# with "decode" (the kernel cache in /tmp/kc survives between calls on a warm machine). Logs go to $OUT.
mkdir -p /tmp/dn && tar -C /tmp/dn -xJf .gpu/dotnet-runtime.tar.xz
export DOTNET_ROOT=/tmp/dn PATH=/tmp/dn:$PATH TLS_KERNEL_CACHE_DIR=/tmp/kc
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
t0=$(date +%s)
at() { echo "   (+$(( $(date +%s) - t0 )) s)"; }

part=${1:-wgmma}
if [ "$part" = wgmma ]; then
nvcc -std=c++17 -gencode=arch=compute_90a,code=sm_90a -DTLS_SM90A=1 -I kernels -Xptxas -v bench/probes/wgmma_attention_probe.cu -o /tmp/wap > $OUT/probe-build.log 2>&1 || { echo "probe build failed"; tail -30 $OUT/probe-build.log; }
grep -iE "warning|spill|Used" $OUT/probe-build.log | head -30
timeout 60 /tmp/wap > $OUT/probe.log 2>&1; echo "probe rc $?"; cat $OUT/probe.log; at
# The same probe under compute-sanitizer: a shared-memory race or a barrier misuse in the double-buffered tile loop
# would show here (racecheck does not see the tensor cores' async-proxy reads, synccheck checks the barriers).
for tool in racecheck synccheck; do
  timeout 90 compute-sanitizer --tool $tool --print-limit 20 /tmp/wap > $OUT/probe-$tool.log 2>&1
  echo "== compute-sanitizer $tool rc $?"; grep -E "ERROR SUMMARY|Race|hazard|Barrier|Invalid" $OUT/probe-$tool.log | head -12; at
done

for wg in fwd dq keys 1; do
  TLS_WGMMA=$wg TLS_CONFORMANCE="d64 w128|d64 w192" timeout 150 dotnet .gpu/tests/TransformerLS.Tests.dll -method "TransformerLS.Tests.ConformanceTests.Gpu_backend" -diagnostics -nocolor > $OUT/conf-$wg.log 2>&1
  echo "== TLS_WGMMA=$wg rc $?"; grep -E "\[FAIL\]|on cuda:0|Total:" $OUT/conf-$wg.log | cut -c1-330 | head -24; at
done

for wg in 0 1; do
  TLS_WGMMA=$wg timeout 90 dotnet .gpu/bench/tls-bench.dll kernels --filter ls_attention --dtype bf16 --n 4096 --runs 10 > $OUT/k-wg$wg.log 2>&1
  echo "== kernels TLS_WGMMA=$wg rc $?"; head -8 $OUT/k-wg$wg.log; at
done
fi
if [ "$part" = decode ]; then
# The relative-logits-first decode kernels (TLS_DECODE_REL=pre, session 33, never run before): the decode conformance
# rows, the decoder tests, then their kernel rows against the default's above.
TLS_DECODE_REL=pre TLS_CONFORMANCE="ls_causal_decode" timeout 120 dotnet .gpu/tests/TransformerLS.Tests.dll -method "TransformerLS.Tests.ConformanceTests.Gpu_backend" -diagnostics -nocolor > $OUT/conf-decode-pre.log 2>&1
echo "== decode conformance TLS_DECODE_REL=pre rc $?"; grep -E "\[FAIL\]|on cuda:0|Total:" $OUT/conf-decode-pre.log | cut -c1-330 | head -30; at
TLS_DECODE_REL=pre timeout 150 dotnet .gpu/tests/TransformerLS.Tests.dll -class TransformerLS.Tests.DecoderTests -class TransformerLS.Tests.LsCausalDecodeTests -nocolor > $OUT/decoder-pre.log 2>&1
echo "== decoder tests TLS_DECODE_REL=pre rc $?"; grep -E "\[FAIL\]|Total:" $OUT/decoder-pre.log | head -20; at
for rel in 0 pre; do
  TLS_DECODE_REL=$rel timeout 60 dotnet .gpu/bench/tls-bench.dll kernels --filter ls_causal_decode --dtype bf16 --runs 20 > $OUT/k-dec-rel$rel.log 2>&1
  echo "== decode kernels TLS_DECODE_REL=$rel rc $?"; grep -E "ls_causal_decode" $OUT/k-dec-rel$rel.log; at
done
for sp in "" 1 2 4 8 12; do
  TLS_DECODE_SPLITS=$sp timeout 60 dotnet .gpu/bench/tls-bench.dll kernels --filter ls_causal_decode --dtype bf16 --runs 20 > $OUT/k-dec-splits$sp.log 2>&1
  echo "== decode kernels TLS_DECODE_SPLITS=${sp:-unset} rc $?"; grep -E "ceilings|ls_causal_decode" $OUT/k-dec-splits$sp.log; at
done

timeout 130 ncu --clock-control none --profile-from-start off -k regex:ls_causal_decode --launch-count 12 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats \
  dotnet .gpu/bench/tls-bench.dll decode --batches 64 --contexts 2048 --dtype bf16 --steps 2 --no-peer --profile --out $OUT/dec > $OUT/ncu-decode.txt 2>&1
echo "== ncu rc $?"; grep -E "ls_causal_decode|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Theoretical Occ|Block Limit|No Eligible|Issued Warp|L2 Hit" $OUT/ncu-decode.txt | head -40; at

for f in /tmp/kc/ls_causal_decode-*.cubin /tmp/kc/ls_attention*sm90a*.cubin; do
  echo "== $f"; tail -c +39 $f > /tmp/x.cubin   # the cache entry's header: 6 bytes of magic and a 32-byte SHA-256
  cuobjdump -res-usage /tmp/x.cubin 2>&1 | grep -A1 -E "vec_g4_v2_bf16|wgmma" | grep -oE "Function [a-z0-9_]+|REG:[0-9]+|STACK:[0-9]+|LOCAL:[0-9]+" | paste -sd' '
done
at
fi
