#!/usr/bin/env bash
# Builds the llama.cpp command-line tools the oracle tests and benchmarks run (llama-perplexity,
# llama-quantize, llama-imatrix) from the llama.cpp source node-llama-cpp pins
# (.cache/llama.cpp-src, cloned from the npm package's bundle), into .cache/llama.cpp-build.
# Idempotent: an up-to-date build is a Ninja no-op. Runs under a lock so that concurrent test
# runs (ctest -j, several checkouts sharing .cache) never build into the same folder at once.
# Usage: scripts/build_llama_tools.sh [BUILD_DIR]   (default .cache/llama.cpp-build)
# A fresh build of the three tools costs about 800 CPU-seconds (144 Ninja steps): about 7 minutes
# on an idle 2-core machine. CI should keep .cache/llama.cpp-build between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=$PWD/.cache
build=$(realpath -m "${1:-$cache/llama.cpp-build}")
src=$cache/llama.cpp-src
bundle=$cache/node/node_modules/node-llama-cpp/llama/gitRelease.bundle
tools=(llama-perplexity llama-quantize llama-imatrix)

mkdir -p "$build"
exec 9>"$build.lock"
flock 9
: >"$build.log"

if [[ ! -d $src/.git ]]; then
  [[ -f $bundle ]] || { echo "build_llama_tools: $bundle is missing; run scripts/test.sh first" >&2; exit 1; }
  git -c advice.detachedHead=false clone -q "$bundle" "$src"
fi
# Portable (no -march=native), no network code, no llama.cpp tests: only what the tools need.
if [[ ! -f $build/build.ninja ]]; then
  if ! cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF >>"$build.log" 2>&1; then
    tail -n 40 "$build.log" >&2
    echo "build_llama_tools: configuring failed; the whole log is $build.log" >&2
    exit 1
  fi
fi
if ! cmake --build "$build" --target "${tools[@]}" -j"${LLAMA_BUILD_JOBS:-$(nproc)}" >>"$build.log" 2>&1; then
  tail -n 40 "$build.log" >&2
  echo "build_llama_tools: the build failed; the whole log is $build.log" >&2
  exit 1
fi
for t in "${tools[@]}"; do
  [[ -x $build/bin/$t ]] || { echo "build_llama_tools: $build/bin/$t was not built" >&2; exit 1; }
done
