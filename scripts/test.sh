#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, formatting, lints, every test.
#
#   ./scripts/test.sh
#
# Needs root: the node tests build real WireGuard tunnels (wireguard-go) in network
# namespaces. A missing prerequisite fails the run; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: the WireGuard tests need root (network namespaces); run as root" >&2
  exit 1
fi
bash scripts/install-test-deps.sh

command -v cargo >/dev/null || { echo "test.sh: cargo not found" >&2; exit 1; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== no OpenSSL in the tree"
if cargo tree --workspace -i openssl-sys 2>/dev/null | grep -q openssl-sys; then
  echo "openssl-sys is in the dependency tree" >&2
  exit 1
fi
echo "== cargo test"
# Two cores: the namespace tests serialize themselves on a machine-wide lock.
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"

echo "== install to browse: the packages, installed, and the guide's commands"
# The test build's binaries, packed exactly as scripts/package.sh packs releases
# (nothing is compiled again), installed with dpkg, then docs/operations.md's journey
# from `vpnctld init` to a client that browses, with the installed binaries only.
VPNCTL_PACKAGE_PROFILE=dev bash scripts/package.sh
dpkg -i dist/vpnctld_*.deb dist/vpnctl-node_*.deb dist/vpnctl-bot_*.deb dist/vpnctl_*.deb >/dev/null
cargo test --workspace --locked --test install_to_browse -- --ignored
# Leave the machine as it was (on failure the packages stay, for a look).
dpkg --purge vpnctl vpnctl-bot vpnctl-node vpnctld >/dev/null
