#!/usr/bin/env bash
# The README's test command: builds everything (the fuzz tests build their own clang tree, see
# fuzz/run.sh), installs the oracle tools into the git-ignored ./.cache (never globally), and
# runs the whole CTest suite.
# Pass ctest arguments through, e.g. `scripts/test.sh -L oracle`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=$root/.cache
mkdir -p "$cache"

# clang + its sanitizer/fuzzer runtime and OpenMP runtime build the libFuzzer targets.
extra=()
dpkg-query -W -f='${Status}' clang libclang-rt-14-dev libomp-14-dev 2>/dev/null | grep -c "install ok installed" | grep -q 3 ||
  extra=(clang libclang-rt-14-dev libomp-14-dev)
if ((${#extra[@]})) && [[ $(id -u) -eq 0 ]]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${extra[@]}" >/dev/null
fi
scripts/bootstrap.sh

# Oracle tools, pinned. Reinstalled only when the pins change.
oracle_pins="gguf==0.19.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 jinja2==3.1.6 openai==3.63.0 anthropic==2.17.0 jsonschema==4.26.0|node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 @huggingface/gguf@0.4.6"
if [[ $(cat "$cache/oracle.stamp" 2>/dev/null) != "$oracle_pins" ]]; then
  echo "test: installing oracle tools into $cache"
  python3 -m venv "$cache/venv"
  PIP_CACHE_DIR=$cache/pip "$cache/venv/bin/pip" install -q ${oracle_pins%%|*}
  mkdir -p "$cache/node"
  echo '{"name":"optiq-oracles","private":true}' >"$cache/node/package.json"
  npm install --prefix "$cache/node" --cache "$cache/npm" --no-audit --no-fund --omit=optional \
    ${oracle_pins##*|} >/dev/null
  echo "$oracle_pins" >"$cache/oracle.stamp"
fi

# The IFEval oracle: lm-evaluation-harness's ifeval modules and what they import, without the
# harness's own heavy dependencies (check_ifeval.py loads those modules alone).
ifeval_pins="lm-eval==0.4.13 langdetect==1.0.9 nltk==3.10.4 immutabledict==4.3.1 six==1.17.0 regex==2026.11.15 click==8.5.1 joblib==1.6.0 tqdm==4.70.1 packaging==26.3 typing_extensions==4.16.0"
if [[ $(cat "$cache/ifeval.stamp" 2>/dev/null) != "$ifeval_pins" ]]; then
  echo "test: installing the IFEval oracle into $cache/venv-ifeval"
  python3 -m venv "$cache/venv-ifeval"
  PIP_CACHE_DIR=$cache/pip "$cache/venv-ifeval/bin/pip" install -q --no-deps $ifeval_pins
  echo "$ifeval_pins" >"$cache/ifeval.stamp"
fi

# The BFCL oracle: the leaderboard's package, its AST checker loaded alone (check_bfcl.py).
bfcl_pins="bfcl-eval==2026.3.23"
if [[ $(cat "$cache/bfcl.stamp" 2>/dev/null) != "$bfcl_pins" ]]; then
  echo "test: installing the BFCL oracle into $cache/venv-bfcl"
  python3 -m venv "$cache/venv-bfcl"
  PIP_CACHE_DIR=$cache/pip "$cache/venv-bfcl/bin/pip" install -q --no-deps $bfcl_pins
  echo "$bfcl_pins" >"$cache/bfcl.stamp"
fi

# llama.cpp's source at the commit node-llama-cpp pins, from the bundle the npm package ships:
# its vocab-only GGUFs are tokenizer fixtures, and bench/ builds llama.cpp tools from it.
[[ -d $cache/llama.cpp-src/.git ]] || git -c advice.detachedHead=false clone -q \
  "$cache/node/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$cache/llama.cpp-src"

# llama.cpp's CLI tools (perplexity, imatrix, quantize, bench) linked against the same prebuilt
# libraries, for the oracle tests that compare with them (~1.5 minutes on 2 cores, then cached).
scripts/build_llama_tools.sh >/dev/null

# The real quantized models from PyPI (oracle_engine_real_models and the benchmarks).
scripts/fetch_models.sh >/dev/null

ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
