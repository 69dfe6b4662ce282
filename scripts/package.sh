#!/usr/bin/env bash
# Builds the Debian packages of vpnctl: vpnctld (control plane), vpnctl-node (one per
# VPN server), vpnctl-bot (Telegram bot) and vpnctl (admin CLI and dashboard).
#
#   ./scripts/package.sh            # -> dist/<package>_<version>_<arch>.deb
#
# Release binaries for this machine's target, linked against glibc 2.34 or newer
# (Debian 12, Ubuntu 22.04 and later), packed with dpkg-deb from
# deploy/debian/<package>/ (control, maintainer scripts, files under /etc),
# deploy/systemd/ (units) and docs/. No debhelper, no extra cargo tool: what goes into
# each package is listed below.
#
# VPNCTL_PACKAGE_PROFILE=dev packs the debug-profile binaries instead (dependencies
# optimized, our crates not): the test suite does that for its install-to-browse
# journey, so that CI does not build everything a third time. Ship release builds.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "package.sh: cargo not found" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "package.sh: dpkg-deb not found (Debian/Ubuntu only)" >&2; exit 1; }
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || { echo "package.sh: no version in Cargo.toml" >&2; exit 1; }
arch=$(dpkg --print-architecture)
target_dir=${CARGO_TARGET_DIR:-target}
out=dist

profile=${VPNCTL_PACKAGE_PROFILE:-release}
case "$profile" in
    release) bin_dir="$target_dir/release"; compress=(-Zxz) ;;
    # The test's packages: fast to pack, never shipped.
    dev) bin_dir="$target_dir/debug"; compress=(-Zgzip -z1) ;;
    *) echo "package.sh: VPNCTL_PACKAGE_PROFILE must be release or dev" >&2; exit 1 ;;
esac

echo "== cargo build --profile $profile (vpnctld, vpnctl-node, vpnctl-bot, vpnctl)"
if [ "$profile" = dev ]; then
    # Exactly the build `cargo test --workspace` made (same features): nothing to
    # compile after the test suite's build.
    cargo test --workspace --locked --no-run
else
    # --workspace, as every other build here: per-package builds resolve features anew.
    cargo build --release --locked --workspace --bins
fi

mkdir -p "$out"
stage_root=$(mktemp -d)
trap 'rm -rf "$stage_root"' EXIT

# package <name> <binary> [unit]
package() {
    local name=$1 binary=$2 unit=${3:-}
    local root="$stage_root/$name"
    install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/doc/$name"
    install -m 0755 "$bin_dir/$binary" "$root/usr/bin/$binary"
    strip --strip-unneeded "$root/usr/bin/$binary" 2>/dev/null || true
    if [ -n "$unit" ]; then
        install -d "$root/lib/systemd/system"
        install -m 0644 "deploy/systemd/$unit" "$root/lib/systemd/system/$unit"
    fi
    for doc in README.md docs/operations.md docs/runbook.md; do
        install -m 0644 "$doc" "$root/usr/share/doc/$name/"
    done
    if [ "$name" = vpnctl-bot ]; then
        install -m 0644 docs/bot.md "$root/usr/share/doc/$name/"
    fi
    # Files under /etc shipped by the package (deploy/debian/<name>/etc/...) are
    # conffiles: an admin's edits survive upgrades.
    if [ -d "deploy/debian/$name/etc" ]; then
        cp -r "deploy/debian/$name/etc" "$root/"
        # A settings file that holds tokens is root's alone (git keeps no modes).
        find "$root/etc" -type f -name '*.toml' -exec chmod 0600 {} +
        find "$root/etc" -type d -exec chmod 0755 {} +
        (cd "$root" && find etc -type f -printf '/%p\n') >"$root/DEBIAN/conffiles"
    fi
    for script in postinst prerm postrm; do
        if [ -f "deploy/debian/$name/$script" ]; then
            install -m 0755 "deploy/debian/$name/$script" "$root/DEBIAN/$script"
        fi
    done
    local size
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    {
        cat "deploy/debian/$name/control"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: vpnctl developers <vpnctl@example.invalid>"
        echo "Installed-Size: $size"
        echo "Homepage: https://example.invalid/vpnctl"
    } >"$root/DEBIAN/control"
    local deb="$out/${name}_${version}_${arch}.deb"
    dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
    echo "   $deb"
}

echo "== dpkg-deb"
package vpnctld vpnctld vpnctld.service
package vpnctl-node vpnctl-node vpnctl-node.service
package vpnctl-bot vpnctl-bot vpnctl-bot.service
package vpnctl vpnctl
