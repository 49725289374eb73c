#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, the Rust test suite (server,
# protocol, terminal client with its tmux end-to-end tests) and the real-browser tests of the
# web page and the seed pages. Installs what the tests need when it is missing (Debian packages
# tmux, chromium, fonts-wqy-microhei and redis-server, which the cluster tests start on a free
# port of their own; npm packages of web/tests).
set -euo pipefail
cd "$(dirname "$0")/.."

export LANG=C.UTF-8 LC_ALL=C.UTF-8
export INSTA_UPDATE=no CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1
  fi
}

apt_install() {
  step "installing Debian packages: $*"
  as_root apt-get update -q
  # An install interrupted by another apt run leaves packages half-configured; repair and retry.
  as_root apt-get install -y -q "$@" || {
    as_root apt-get --fix-broken install -y -q && as_root apt-get install -y -q "$@"
  }
}

missing=()
command -v tmux >/dev/null || missing+=(tmux)
command -v chromium >/dev/null || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (broken or private links fail)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "building the binaries the end-to-end tests run"
cargo build --workspace --bins --locked

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --doc --locked
else
  cargo test --workspace --locked --no-fail-fast
fi

if [ -f web/tests/package.json ]; then
  step "browser tests (headless Chromium)"
  (cd web/tests && npm ci --no-audit --no-fund --loglevel=error && npm test)
fi

step "all checks passed"
