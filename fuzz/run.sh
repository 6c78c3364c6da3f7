#!/usr/bin/env bash
# Fuzzes one parser: builds its libFuzzer target in ./build-fuzz (clang, ASan + UBSan) if
# needed, replays every committed seed once, then fuzzes for SECONDS starting from a scratch
# copy of the seeds (the committed corpus is never written). Exits non-zero on any crash; the
# input that caused it is kept under build-fuzz/artifacts/NAME/.
# The jinja and tokenizer_json targets also start from the real chat templates and
# tokenizer.json files under ../shared/models, taken at run time (nothing fetched from
# elsewhere is committed).
# Usage: fuzz/run.sh gguf|safetensors|jinja|tokenizer_json|serve_requests SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:-}
name=${name#fuzz_}
seconds=${2:-}
if (($# != 2)) || [[ -z $name || ! -d fuzz/corpus/$name || ! $seconds =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh gguf|safetensors|jinja|tokenizer_json|serve_requests SECONDS" >&2
  exit 2
fi
target=fuzz_$name
build=build-fuzz
seeds=fuzz/corpus/$name

# ctest starts both targets at once, and two ninja runs in one build directory corrupt each
# other's state: whoever holds the lock configures and builds, the other waits.
mkdir -p "$build"
(
  flock 9
  if [[ ! -f $build/build.ninja ]]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOPTIQ_FUZZ=ON \
      -DOPTIQ_BUILD_TESTS=OFF -DCMAKE_CXX_COMPILER=clang++ >/dev/null
  fi
  cmake --build "$build" --target "$target"
) 9>"$build/.lock"
bin=$build/fuzz/$target

# The GGUF target writes a scratch file per input; tmpfs keeps its fsync from hitting a disk.
tmp_root=/dev/shm
[[ -d $tmp_root && -w $tmp_root ]] || tmp_root=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$tmp_root/optiq-$target.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
artifacts=$PWD/$build/artifacts/$name
mkdir -p "$artifacts" "$scratch/corpus"
flags=(-rss_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts/")

if [[ $name == jinja && -d ../shared/models ]]; then
  extracted=$scratch/seeds
  mkdir -p "$extracted"
  cp "$seeds"/* "$extracted/"
  find ../shared/models -name tokenizer_config.json -o -name chat_template.json -o -name '*.jinja' |
    python3 -c '
import json, sys, pathlib
for i, line in enumerate(sys.stdin):
    p = pathlib.Path(line.strip())
    text = p.read_text(encoding="utf-8")
    t = text if p.suffix == ".jinja" else json.loads(text).get("chat_template")
    for j, item in enumerate(t if isinstance(t, list) else [t]):
        src = item.get("template") if isinstance(item, dict) else item
        if isinstance(src, str):
            (pathlib.Path(sys.argv[1]) / f"shared-{i}-{j}.jinja").write_text(src, encoding="utf-8")
' "$extracted"
  seeds=$extracted
fi

# The real tokenizer.json files (about 2 MB) take the instrumented loader over a second each:
# as fuzzing seeds they would set libFuzzer's -max_len (by default the largest seed) to 2 MB
# and slow every run to a crawl. They are only replayed; the fuzzer starts from small copies
# that keep their pipelines (fuzz/shrink_tokenizer_json.py).
replay_only=()
if [[ $name == tokenizer_json && -d ../shared/models ]]; then
  mapfile -t replay_only < <(find ../shared/models -name tokenizer.json | sort)
  if ((${#replay_only[@]})); then
    extracted=$scratch/seeds
    mkdir -p "$extracted"
    cp "$seeds"/* "$extracted/"
    python3 fuzz/shrink_tokenizer_json.py "$extracted" "${replay_only[@]}"
    seeds=$extracted
  fi
fi

echo "fuzz: $target: replaying $(($(find "$seeds" -type f | wc -l) + ${#replay_only[@]})) seeds"
failed=0
for seed in "$seeds"/* "${replay_only[@]}"; do
  if ! log=$("$bin" "${flags[@]}" "$seed" 2>&1); then
    echo "$log"
    echo "fuzz: $target: seed $seed crashes" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1

cp "$seeds"/* "$scratch/corpus/"
echo "fuzz: $target: fuzzing for ${seconds}s"
if ! "$bin" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 "$scratch/corpus"; then
  echo "fuzz: $target: crash; reproduce with $bin $artifacts/<file>" >&2
  exit 1
fi
