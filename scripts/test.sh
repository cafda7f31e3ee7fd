#!/usr/bin/env bash
# Runs every check and test of partner-auth: formatting, lints, and the whole
# test suite (unit, store conformance on SQLite files, HTTP tests against the
# example server, the Google flow against a local OpenID provider process).
# It installs only what a fresh machine of this kind lacks for these steps:
# cargo-fuzz (with cargo) and curl and jq (with apt-get; the README
# walk-through test runs them). Every server it needs is started by the tests
# on 127.0.0.1 and stopped when they end.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "cargo is required (Rust 1.95 stable)" >&2
  exit 1
fi

# The README's curl walk-through is run as written by a test.
missing=()
for tool in curl jq; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
fi

# Do not let a proxy setting of the machine redirect loopback traffic.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

step "formatting"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "tests"
cargo test --workspace --no-fail-fast

step "fuzz targets (stable toolchain, no sanitizer)"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
(
  cd fuzz
  cargo fuzz build -s none
  for target in $(cargo fuzz list); do
    echo "-- $target for ${FUZZ_SECONDS}s"
    cargo fuzz run -s none "$target" -- -max_total_time="$FUZZ_SECONDS" -max_len=16384 2>&1 | tail -n 1
  done
)

step "done"
