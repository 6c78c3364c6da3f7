#!/usr/bin/env bash
# Installs the Debian packages optiq builds with (when run as root; otherwise prints the exact
# command and stops), then configures and builds into ./build (Release, portable x86-64).
# Usage: scripts/bootstrap.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."

# Why each one is needed: see "Dependencies" in README.md.
packages=(
  cmake ninja-build g++ pkg-config
  nlohmann-json3-dev libcli11-dev libcurl4-openssl-dev libssl-dev
  libpcre2-dev libicu-dev libcpp-httplib-dev libgtest-dev
  libopenblas-dev libgomp1 libbenchmark-dev zlib1g-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing Debian packages. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
