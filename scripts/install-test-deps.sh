#!/usr/bin/env bash
# Installs the system tools that the WireGuard integration tests (vpnctl-node, run as
# root in network namespaces) need. Idempotent: installs only what is missing and runs
# `apt-get update` only then. Exits non-zero on failure.
#
# --no-install-recommends matters: wireguard-tools recommends a kernel image.
set -euo pipefail

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_cmd wg           || need+=(wireguard-tools)
have_cmd wg-quick     || need+=(wireguard-tools)
have_cmd wireguard-go || need+=(wireguard-go)
have_cmd ip           || need+=(iproute2)
have_cmd ping         || need+=(iputils-ping)
have_cmd nft          || need+=(nftables)
have_cmd zbarimg      || need+=(zbar-tools)
have_cmd tmux         || need+=(tmux)
# dnsmasq-base: the binary only (the `dnsmasq` package would start a system service)
have_cmd dnsmasq      || need+=(dnsmasq-base)
have_cmd curl         || need+=(curl)
have_cmd pkill        || need+=(procps)
have_cmd ps           || need+=(procps)

# amneziawg-go (AmneziaWG's userspace daemon) has no Debian package: built from the
# Go module proxy at a pinned version with the Go toolchain, installed to
# /usr/local/bin. The AWG tests (vpnctl-node/tests/awg.rs) fail without it.
AWG_MODULE=github.com/amnezia-vpn/amneziawg-go
AWG_VERSION=v0.2.19
install_amneziawg_go() {
  have_cmd amneziawg-go && return 0
  [ -x /usr/local/go/bin/go ] && PATH="$PATH:/usr/local/go/bin"
  have_cmd go || { echo "install-test-deps: amneziawg-go needs the Go toolchain (go)" >&2; exit 1; }
  local dir
  dir=$(go mod download -json "$AWG_MODULE@$AWG_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { echo "install-test-deps: go mod download $AWG_MODULE@$AWG_VERSION failed" >&2; exit 1; }
  echo "install-test-deps: building amneziawg-go $AWG_VERSION" >&2
  (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -o /usr/local/bin/amneziawg-go .)
  have_cmd amneziawg-go || { echo "install-test-deps: amneziawg-go still missing" >&2; exit 1; }
}

if [ ${#need[@]} -eq 0 ]; then
  install_amneziawg_go
  echo "install-test-deps: all present" >&2
  exit 0
fi

# de-duplicate (wireguard-tools/procps may be listed twice)
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: missing ${need[*]} and not root; run as root" >&2
  exit 1
fi

echo "install-test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# verify: a package that installed but did not bring its command is a failure too
for c in wg wg-quick wireguard-go ip ping nft zbarimg tmux pkill dnsmasq curl; do
  have_cmd "$c" || { echo "install-test-deps: $c still missing after install" >&2; exit 1; }
done
install_amneziawg_go
echo "install-test-deps: done" >&2
