#!/usr/bin/env bash
# Installs every Debian package metamath needs (idempotent), builds in Release, and — unless
# --no-demo is given — runs the main job end to end on the bundled sample data.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  clang-14 clang-format-14 libfuzzer-14-dev libclang-rt-14-dev
  libginac-dev libcln-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libpcre2-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev libcpp-httplib-dev libutf8proc-dev
  libgtest-dev libgmock-dev
  libtorch-dev libopenblas-dev libgloo-dev libsleef-dev
  libfaiss-dev
  python3 python3-sympy python3-torch python3-sentencepiece python3-numpy
  chromium
)
# Node.js runs the independent JavaScript tokenizer used by the tokenizer parity tests; a machine
# that already has node (e.g. from NodeSource) keeps it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

# JavaScript packages for the tokenizer parity tests (an independent tokenizer implementation and
# real tokenizer.json files), pinned by tests/model/node/package-lock.json.
bash scripts/install-node-deps.sh

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMETAMATH_WERROR=ON
cmake --build build -j"$(nproc)"

if [ "${1:-}" != "--no-demo" ]; then
  bash scripts/demo.sh
fi
