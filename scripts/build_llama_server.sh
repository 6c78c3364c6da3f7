#!/usr/bin/env bash
# llama.cpp's `llama-server`, for bench/serve_bench.py (optiq serve against llama-server on the
# same GGUF), built the way scripts/build_llama_tools.sh builds the other llama.cpp tools: from
# the llama.cpp source node-llama-cpp pins (.cache/llama.cpp-src) against that npm package's
# prebuilt CPU libraries (libllama, libllama-common, libggml*), so it runs exactly the llama.cpp
# build the node oracle tests load, without the ~13-minute full llama.cpp build.
#
# Unlike the other tools, llama-server needs more than its own files: the server library
# (tools/server/*.cpp, the server-context + llama-server-impl targets of
# tools/server/CMakeLists.txt), the multimodal library mtmd (tools/mtmd: not among the prebuilt
# libraries; its sources are read from tools/mtmd/CMakeLists.txt), vendor/hash (mtmd-helper's
# sha256), the vendored cpp-httplib, and the web UI's ui.h/ui.cpp. The UI is not built: ui.h
# and ui.cpp are the "no assets" variant scripts/ui-assets.cmake writes when it has none
# (tools/ui/ui.{h,cpp}.in with N_ASSETS 0), generated here into the scratch folder
# .cache/llama-server-build, never into the source tree. build-info (llama_build_info(), which
# --version prints) comes from libllama-common, which exports it: it names the prebuilt
# libraries' build (0.5.0-dev, commit 0ad4a86), not the source checkout's squashed commit.
#
# Objects are compiled one at a time under `nice -n 19` (the machine has 2 cores, shared with
# other builds) and kept in .cache/llama-server-build/obj-<hash of the stamp and this script>/,
# so a rerun after a failure compiles only what is missing; a clean build (69 objects) took
# 7 minutes at nice 19 on 2 cores shared with another build. libggml finds its CPU backend
# (libggml-cpu-<isa>.so) next to the executable, so the output goes into .cache/llama-tools/
# beside the symlinks build_llama_tools.sh makes there.
# Idempotent (a stamp of the source commit and libllama's hash), safe to run concurrently (flock).
# Usage: scripts/build_llama_server.sh   (prints the path of llama-server)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
source scripts/llama_common.sh
scratch=$cache/llama-server-build
mkdir -p "$out" "$scratch"
exec 9>"$scratch.lock"
flock 9
prepare_llama_build build_llama_server

stamp="$(git -C "$src" rev-parse HEAD) $(sha256sum "$bins/libllama.v0.5.0.so" | cut -c1-16)"
exe=$out/llama-server
if [[ -x $exe && $(cat "$exe.stamp" 2>/dev/null) == "$stamp" ]]; then
  echo "$exe"
  exit 0
fi
# objects are kept per stamp and per version of this script (its compile flags)
obj=$scratch/obj-$( (echo "$stamp"; cat "$self") | sha256sum | cut -c1-12)
gen=$scratch/gen
mkdir -p "$obj" "$gen"

# ui.h / ui.cpp without assets: what scripts/ui-assets.cmake's emit_files() writes for an empty
# dist folder (#cmakedefine LLAMA_UI_HAS_ASSETS off, N_ASSETS 0, no gzip).
sed -e 's|^#cmakedefine LLAMA_UI_HAS_ASSETS 1|/* #undef LLAMA_UI_HAS_ASSETS */|' -e 's|@N_ASSETS@|0|g' \
  "$src/tools/ui/ui.h.in" >"$gen/ui.h.tmp"
sed -e 's|@N_ASSETS@|0|g' -e 's|@ASSET_ARRAYS@||' -e 's|@ASSET_TABLE@||' -e 's|@USE_GZIP@|false|' \
  "$src/tools/ui/ui.cpp.in" >"$gen/ui.cpp.tmp"
for f in ui.h ui.cpp; do cmp -s "$gen/$f.tmp" "$gen/$f" && rm "$gen/$f.tmp" || mv "$gen/$f.tmp" "$gen/$f"; done
if grep -q '@[A-Z_]*@\|#cmakedefine' "$gen/ui.h" "$gen/ui.cpp"; then
  echo "build_llama_server: tools/ui/ui.*.in has placeholders this script does not fill" >&2; exit 1
fi

# mtmd's sources, as tools/mtmd/CMakeLists.txt lists them in add_library(mtmd ...)
mapfile -t mtmd_sources < <(sed -n '/^add_library(mtmd/,/)/p' "$src/tools/mtmd/CMakeLists.txt" | grep -o '[A-Za-z0-9_./-]*\.cpp')
((${#mtmd_sources[@]} > 10)) || { echo "build_llama_server: could not read mtmd's sources" >&2; exit 1; }

common_inc=(-I"$src/include" -I"$src/common" -I"$src/ggml/include" -I"$src/vendor")
cxx=(nice -n 19 g++ -std=c++17 -O2 -w -pthread)
cc=(nice -n 19 gcc -std=c11 -O2 -w)
objects=()
# compile SRC [FLAGS...]: one object, skipped when already built for this stamp
compile() {
  local file=$1; shift
  local rel=${file#"$src"/}; rel=${rel#"$scratch"/}
  local o=$obj/${rel//\//__}.o
  objects+=("$o")
  [[ -s $o ]] && return 0
  echo "build_llama_server: $rel" >&2
  "$@" -c "$file" -o "$o.tmp" 2>"$o.log" || { cat "$o.log" >&2; echo "build_llama_server: $rel failed" >&2; exit 1; }
  mv "$o.tmp" "$o"
}

# vendor/hash (for mtmd-helper)
compile "$src/vendor/hash/hash.cpp" "${cxx[@]}" -I"$src/vendor" -I"$src/vendor/hash"
compile "$src/vendor/hash/xxhash/xxhash.c" "${cc[@]}" -I"$src/vendor" -I"$src/vendor/hash"
compile "$src/vendor/hash/sha256/sha256.c" "${cc[@]}" -I"$src/vendor" -I"$src/vendor/hash"
compile "$src/vendor/hash/sha1/sha1.c" "${cxx[@]}" -x c++ -I"$src/vendor" -I"$src/vendor/hash"
# cpp-httplib with the definitions of its CMake target (private to it there too)
compile "$src/vendor/cpp-httplib/httplib.cpp" "${cxx[@]}" -I"$src/vendor/cpp-httplib" \
  -DCPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH=1048576 -DCPPHTTPLIB_LISTEN_BACKLOG=512 \
  -DCPPHTTPLIB_REQUEST_URI_MAX_LENGTH=32768 -DCPPHTTPLIB_TCP_NODELAY=1
# mtmd (MTMD_VIDEO as in a default Linux build, where LLAMA_SUBPROCESS is on)
for f in "${mtmd_sources[@]}"; do
  compile "$src/tools/mtmd/$f" "${cxx[@]}" -DMTMD_VIDEO "${common_inc[@]}" -I"$src/tools/mtmd"
done
# the UI table (no assets)
compile "$gen/ui.cpp" "${cxx[@]}" -I"$gen"
# server-context, llama-server-impl and main; LLAMA_SUBPROCESS is a public definition of
# llama-common, and the prebuilt libllama-common was built with it (common_subproc::is_supported)
for f in server-chat server-task server-queue server-common server-context server-stream server-tools \
  server-mcp server-schema server server-http server-models main; do
  compile "$src/tools/server/$f.cpp" "${cxx[@]}" -DLLAMA_SUBPROCESS "${common_inc[@]}" -I"$src" \
    -I"$src/tools/server" -I"$src/tools/mtmd" -I"$src/vendor/cpp-httplib" -I"$gen"
done

echo "build_llama_server: linking" >&2
nice -n 19 g++ -pthread "${objects[@]}" -o "$exe.tmp" -L"$bins" -l:libllama-common.so -l:libllama.v0.5.0.so \
  -l:libggml.v0.5.0.so -l:libggml-base.so -Wl,-rpath,"$bins" 2>"$scratch/link.log" ||
  { tail -n 40 "$scratch/link.log" >&2; echo "build_llama_server: link failed" >&2; exit 1; }
"$exe.tmp" --version >/dev/null 2>&1 || { "$exe.tmp" --version >&2 || true; echo "build_llama_server: llama-server --version failed" >&2; exit 1; }
mv "$exe.tmp" "$exe"
echo "$stamp" >"$exe.stamp"
echo "$exe"
