#!/usr/bin/env bash
# Conversion benchmark; not part of the test suite. Times optiq converting a generated ~0.5 GB
# bf16 Llama checkpoint (HF folder -> f16 GGUF), then optiq against llama.cpp's llama-quantize
# on the same GGUF -> GGUF job (f32 -> f16), and checks that the two f16 files hold identical
# tensor data. Each timed step runs BENCH_RUNS times (default 3); the fastest run is reported,
# with its CPU time and peak RSS. Inputs are in the page cache (just written); outputs go to
# WORK_DIR's disk. Prints a Markdown table (see docs/benchmarks.md).
# Usage: bench/convert_bench.sh [WORK_DIR]   (default ./build-bench; the model is reused)
# Needs one run of scripts/test.sh first: gguf-py in .cache/venv and llama.cpp's source bundle
# (from the npm package node-llama-cpp) in .cache/node.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/.cache
work=$(realpath -m "${1:-build-bench}")
runs=${BENCH_RUNS:-3}
python=$cache/venv/bin/python
[[ -x $python ]] || python=python3

scripts/bootstrap.sh >/dev/null
optiq=$root/build/optiq

# llama-quantize from the llama.cpp commit node-llama-cpp pins, built once and kept in .cache.
bundle=$cache/node/node_modules/node-llama-cpp/llama/gitRelease.bundle
llama_src=$cache/llama.cpp-src
llama_build=$cache/llama.cpp-build
quantize=$llama_build/bin/llama-quantize
if [[ ! -x $quantize ]]; then
  [[ -f $bundle ]] || { echo "bench: $bundle is missing; run scripts/test.sh first" >&2; exit 1; }
  [[ -d $llama_src/.git ]] || git -c advice.detachedHead=false clone -q "$bundle" "$llama_src"
  cmake -S "$llama_src" -B "$llama_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF >/dev/null
  cmake --build "$llama_build" --target llama-quantize
fi

model=$work/model
mkdir -p "$work"
[[ -f $model/model.safetensors.index.json ]] || "$python" bench/make_bf16_model.py "$model"

# Peak RSS counts the pages of memory-mapped input files, which the kernel can drop at any
# time; the anonymous part (heap, buffers) is what a conversion really costs. The kernel keeps
# no peak for it, so one extra, untimed run samples /proc/PID/status every 10 ms.
peak_anon_kb() {
  local peak=0 key value
  "$@" >/dev/null 2>&1 &
  local pid=$!
  local state=R
  while [[ $state != Z ]] && [[ -r /proc/$pid/status ]]; do
    while read -r key value _; do
      [[ $key == State: ]] && state=$value
      [[ $key == RssAnon: ]] && ((value > peak)) && peak=$value
    done </proc/$pid/status 2>/dev/null || true
    sleep 0.01
  done
  wait "$pid"
  echo "$peak"
}

# measure NAME INPUT_BYTES CMD...: the fastest of $runs runs under /usr/bin/time -v; sets
# best_s, best_cpu (user + sys seconds), best_rss_kb and anon_kb and appends a Markdown table row.
rows=()
measure() {
  local name=$1 input_bytes=$2 s rss cpu
  shift 2
  local log=$work/step${#rows[@]}
  best_s=
  for ((i = 0; i < runs; i++)); do
    if ! /usr/bin/time -v -o "$log.time" "$@" >"$log.log" 2>&1; then
      cat "$log.log" "$log.time" >&2
      exit 1
    fi
    # "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:02.26"
    s=$(awk '/Elapsed \(wall clock\)/ {n = split($NF, p, ":"); t = 0
          for (i = 1; i <= n; i++) t = t * 60 + p[i]; print t}' "$log.time")
    rss=$(awk '/Maximum resident set size/ {print $NF}' "$log.time")
    cpu=$(awk '/(User|System) time \(seconds\)/ {t += $NF} END {print t}' "$log.time")
    if [[ -z $best_s ]] || awk -v a="$s" -v b="$best_s" 'BEGIN {exit !(a < b)}'; then
      best_s=$s best_rss_kb=$rss best_cpu=$cpu
    fi
  done
  anon_kb=$(peak_anon_kb "$@")
  rows+=("$(awk -v n="$name" -v in_b="$input_bytes" -v s="$best_s" -v cpu="$best_cpu" \
    -v kb="$best_rss_kb" -v anon="$anon_kb" 'BEGIN { mb = in_b / 1e6; rss = kb * 1024 / 1e6
    printf "| %s | %.1f | %.2f | %.2f | %.0f | %.0f | %.2f | %.0f |", n, mb, s, cpu, mb / s, rss,
      rss / mb, anon * 1024 / 1e6 }')")
}

hf_bytes=$(cat "$model"/*.safetensors | wc -c)
measure "optiq convert HF bf16 -> f16" "$hf_bytes" \
  "$optiq" convert "$model" --outtype f16 -o "$work/hf-f16.gguf"

"$optiq" convert "$model" --outtype f32 -o "$work/f32.gguf" >/dev/null
f32_bytes=$(stat -c %s "$work/f32.gguf")
measure "llama-quantize f32 -> F16" "$f32_bytes" "$quantize" "$work/f32.gguf" "$work/llama-f16.gguf" F16
llama_s=$best_s llama_rss=$best_rss_kb llama_anon=$anon_kb
measure "optiq convert f32 -> f16" "$f32_bytes" \
  "$optiq" convert "$work/f32.gguf" --outtype f16 -o "$work/optiq-f16.gguf"

echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
  "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "llama.cpp: $(git -C "$llama_src" rev-parse --short HEAD), best of $runs runs, MB = 10^6 bytes"
echo
echo "| step | input MB | wall s | CPU s | MB/s | peak RSS MB | peak RSS / input | peak anon RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
awk -v s1="$best_s" -v s2="$llama_s" -v r1="$best_rss_kb" -v r2="$llama_rss" -v a1="$anon_kb" \
  -v a2="$llama_anon" 'BEGIN { printf "\noptiq / llama.cpp (f32 -> f16): time %.2fx, peak RSS " \
  "%.2fx, peak anon RSS %.2fx\n", s1 / s2, r1 / r2, a1 / a2 }'
"$python" bench/compare_gguf_tensors.py "$work/llama-f16.gguf" "$work/optiq-f16.gguf"
