# Sourced by the scripts that build llama.cpp tools against node-llama-cpp's prebuilt libraries
# (build_llama_tools.sh, build_llama_server.sh), from the repository root: the paths they share,
# and the setup both need before compiling.
cache=$PWD/.cache
src=$cache/llama.cpp-src                                               # the pinned llama.cpp source
bins=$cache/node/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64  # its prebuilt libraries
bundle=$cache/node/node_modules/node-llama-cpp/llama/gitRelease.bundle  # the source, as npm ships it
out=$cache/llama-tools                                                  # where the tools go

# The source checked out, and every CPU variant of libggml linked beside the tools (ggml loads
# its backend from the executable's folder). $1: the calling script's name, for the error.
prepare_llama_build() {
  [[ -d $bins ]] || { echo "$1: $bins is missing; run scripts/test.sh first" >&2; exit 1; }
  if [[ ! -d $src/.git ]]; then
    git -c advice.detachedHead=false clone -q "$bundle" "$src"
  fi
  for lib in "$bins"/libggml-cpu-*.so; do ln -sf "$lib" "$out/"; done
}
