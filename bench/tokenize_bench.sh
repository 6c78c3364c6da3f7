#!/usr/bin/env bash
# Tokenizer throughput benchmark; not part of the test suite. Times encoding about 4 MB of
# prose and code (GSM8K and HumanEval from ../shared/data, mixed deterministically) with
# optiq and with Hugging Face `tokenizers`, both on one thread, for SmolLM2 and Mistral v0.3
# (tokenizer.json) and Qwen2.5 (vocab.json + merges.txt), and checks that the ids are equal.
# Each measurement is the best of BENCH_RUNS (default 3). Prints a Markdown table (see
# docs/benchmarks.md); bench/tokenize_bench.py says what is timed.
# Usage: bench/tokenize_bench.sh [WORK_DIR]   (default ./build-bench)
# Needs one run of scripts/test.sh first: `tokenizers` in .cache/venv.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(realpath -m "${1:-build-bench}")
python=$root/.cache/venv/bin/python
[[ -x $python ]] || { echo "bench: $python is missing; run scripts/test.sh first" >&2; exit 1; }

scripts/bootstrap.sh >/dev/null
mkdir -p "$work"

echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
  "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "tokenizers $("$python" -c 'import tokenizers; print(tokenizers.__version__)'), optiq $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')"
# One thread on both sides: optiq encodes on one, and tokenizers' rayon pool is held to one.
RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false \
  "$python" bench/tokenize_bench.py "$root/build/optiq" "$root/../shared" "$work" "${BENCH_RUNS:-3}"
