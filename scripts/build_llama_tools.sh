#!/usr/bin/env bash
# The llama.cpp command-line tools the oracle tests and benchmarks run — llama-perplexity,
# llama-imatrix, llama-quantize, llama-bench, and optiq's bridge llama-chat-tokens — compiled from the llama.cpp source node-llama-cpp
# pins (.cache/llama.cpp-src, cloned from the npm package's bundle) and linked against that
# package's own prebuilt CPU libraries (libllama, libllama-common, libggml*), into
# .cache/llama-tools/. Only each tool's own one or two source files are compiled, so this takes
# about a minute instead of the ~13 minutes a full llama.cpp build takes on 2 cores, and the
# tools run exactly the llama.cpp build the node oracle tests load.
#
# The prebuilt libggml finds its CPU backend (libggml-cpu-<isa>.so) next to the executable, so
# those are symlinked into the tools folder (ggml then picks the best this CPU runs), and each
# alone into pinned/<isa>/ beside hard links of the tools. Idempotent, and safe to run concurrently (flock).
# Usage: scripts/build_llama_tools.sh   (prints the tools folder)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/llama_common.sh
mkdir -p "$out"
exec 9>"$out.lock"
flock 9
prepare_llama_build build_llama_tools

# tool name -> its sources under tools/ (llama.cpp's), or under tests/tools/ of this repository
# for optiq's own bridges to libllama-common
declare -A sources=(
  [llama-perplexity]="perplexity/perplexity.cpp perplexity/main.cpp"
  [llama-imatrix]="imatrix/imatrix.cpp"
  [llama-quantize]="quantize/quantize.cpp quantize/main.cpp"
  [llama-bench]="llama-bench/llama-bench.cpp llama-bench/main.cpp"
  [llama-chat-tokens]="$PWD/tests/tools/llama_chat_tokens.cpp"
)
base_stamp="$(git -C "$src" rev-parse HEAD) $(sha256sum "$bins/libllama.v0.5.0.so" | cut -c1-16)"
pids=()
for tool in "${!sources[@]}"; do
  files=()
  for f in ${sources[$tool]}; do [[ $f == /* ]] && files+=("$f") || files+=("$src/tools/$f"); done
  stamp="$base_stamp $(cat "${files[@]}" | sha256sum | cut -c1-16)"
  [[ -x $out/$tool && $(cat "$out/$tool.stamp" 2>/dev/null) == "$stamp" ]] && continue
  dir=$(dirname "${files[0]}")
  (
    g++ -std=c++17 -O2 -w -I"$src/include" -I"$src/common" -I"$src/ggml/include" -I"$src/vendor" -I"$dir" \
      "${files[@]}" -o "$out/$tool.tmp" -L"$bins" -l:libllama-common.so -l:libllama.v0.5.0.so \
      -l:libggml.v0.5.0.so -l:libggml-base.so -pthread -Wl,-rpath,"$bins" 2>"$out/$tool.log" &&
      mv "$out/$tool.tmp" "$out/$tool" && echo "$stamp" >"$out/$tool.stamp"
  ) &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
if ((status)); then
  for tool in "${!sources[@]}"; do [[ -x $out/$tool ]] || { echo "build_llama_tools: $tool failed:" >&2; tail -n 20 "$out/$tool.log" >&2; }; done
  exit 1
fi

# One folder per CPU variant, pinned/<variant>/, with hard links of the tools and that variant's
# library alone: ggml looks for its CPU backend beside the executable (and in the current
# folder), so there it can load no other. The exactness oracles run llama.cpp this way (see
# tests/oracle/llama_tools.py). A link is replaced only when its tool was rebuilt, so oracles
# that run this script while others run the pinned tools never find one missing.
for lib in "$bins"/libggml-cpu-*.so; do
  variant=$(basename "$lib" .so)
  dir=$out/pinned/${variant#libggml-cpu-}
  mkdir -p "$dir"
  [[ -e $dir/$(basename "$lib") ]] || ln -s "$lib" "$dir/"
  for tool in "${!sources[@]}"; do
    [[ $dir/$tool -ef $out/$tool ]] || ln -f "$out/$tool" "$dir/$tool"
  done
done
echo "$out"
