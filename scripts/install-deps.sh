#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test imeidb.
# Used by README's quick start and by .ci/run, so both stay true.
#   libclang-dev  the rocksdb crate generates its bindings with bindgen (libclang at run time)
#   clang         its C++ build uses the system compiler; g++ is enough, clang is not needed
#   with --bench, for loadtest/run: the baselines it measures imeidb beside (redis-server,
#   postgresql), taskset (util-linux), bc and curl
set -euo pipefail

need=(libclang-dev pkg-config)
if [[ "${1:-}" == "--bench" ]]; then
  need+=(redis-server redis-tools postgresql util-linux bc curl)
fi

missing=()
for pkg in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
