#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test imeidb.
# Used by README's quick start and by .ci/run, so both stay true.
#   libclang-dev  the rocksdb crate generates its bindings with bindgen (libclang at run time)
#   clang         its C++ build uses the system compiler; g++ is enough, clang is not needed
#   python3-pip, tshark   the Diameter S13 tests: python-diameter (PyPI) is the MME imeidb
#                 answers, a Diameter node we did not write; tshark decodes what imeidb sends
#   openssl       the Diameter TLS tests make their certificates with it, and its s_client is
#                 a TLS peer we did not write
#   nats-server   the read replicas' tests (tests/e2e/replication.rs): a real NATS JetStream
#   chromium, chromium-driver, npm   the web pages' browser tests (tests/e2e/browser.rs) drive a
#                 real headless Chromium through chromedriver, and check every page with axe-core
#                 (npm), installed under ~/.cache/imeidb-node so nothing is fetched at test time
#   with --bench, for loadtest/run: the baselines it measures imeidb beside (redis-server,
#   postgresql), taskset (util-linux), bc and curl
set -euo pipefail

need=(libclang-dev pkg-config python3 python3-pip tshark chromium chromium-driver nats-server openssl)
command -v npm >/dev/null 2>&1 || need+=(npm)
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

# the MME of tests/diameter/mme.py, for the python3 the tests run (Debian's pip refuses to
# install outside a virtualenv unless told: a --user install touches no system package)
if ! python3 -c "import diameter" >/dev/null 2>&1; then
  echo "installing python-diameter"
  python3 -m pip install --quiet --user --break-system-packages python-diameter==0.9.0
fi

# axe-core for the browser tests' accessibility checks (tests/e2e/webdriver.rs reads it here)
axe_dir="$HOME/.cache/imeidb-node"
if [[ ! -f "$axe_dir/node_modules/axe-core/axe.min.js" ]]; then
  echo "installing axe-core"
  mkdir -p "$axe_dir"
  npm install --silent --no-audit --no-fund --prefix "$axe_dir" axe-core@4.10.3 >/dev/null
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
