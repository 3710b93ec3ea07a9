#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs redis-server when it is
# missing (Debian's package, as root), then runs every test, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1 \
  || ! command -v openssl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server or openssl not found: installing them from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools openssl >/dev/null
  else
    echo "redis-server and openssl are needed by the tests and are not both installed." >&2
    echo "Install them (Debian/Ubuntu: sudo apt-get install -y redis-server openssl), then run again." >&2
    exit 1
  fi
fi
redis-server --version

# The Upstash checks run Upstash's own TypeScript SDK (and the README's
# TypeScript snippet) against the REST protocol server of the tests: Node.js
# and npm, then the pinned packages of tests/upstash-sdk.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "node or npm not found: installing them from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "Node.js and npm are needed by the Upstash tests and are not both installed." >&2
    echo "Install them (Debian/Ubuntu: sudo apt-get install -y nodejs npm), then run again." >&2
    exit 1
  fi
fi
node --version
npm ci --prefix tests/upstash-sdk --no-audit --no-fund --loglevel=error

# The embedded backend alone must build (no Redis client).
cargo check -p cachette --no-default-features --locked
cargo test --workspace --all-targets --features metrics,cluster,postcard,compression,upstash --locked
cargo test --workspace --doc --features metrics,cluster,postcard,compression,upstash --locked
# rediss:// against a redis-server with TLS and a CA made by the test.
cargo test -p cachette-suite --features metrics,cluster,tls,postcard,compression,upstash --test suite --locked tls
# The in-process primitives under every interleaving (loom), and each one's
# weakened variant caught.
LOOM_MAX_PREEMPTIONS=3 cargo test -p cache-runtime --features __loom --lib --locked loom
