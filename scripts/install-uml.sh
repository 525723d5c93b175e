#!/usr/bin/env bash
# A User-Mode Linux kernel that boots on this host, for tests/test_cgroup_v2_guest.py (needs root, apt).
#
# Debian bookworm's user-mode-linux (6.1) and bookworm-backports' (6.12) panic at their first process on a
# host kernel 6.18 with an AMX-capable CPU ("userspace - ptrace set fp regs failed, errno = 14": the host's
# FPU state is larger than those kernels expect). Debian unstable's (7.2) boots. It needs a newer glibc
# than bookworm's, so it goes to /opt/harnessbench-uml with unstable's own libc6 beside it (patchelf points
# the binary at that loader and library directory; nothing of the system's libc changes), and
# /usr/local/bin/linux.uml (ahead of /usr/bin on PATH) links to it. The distribution's package is kept and
# used whenever it boots.
set -euo pipefail
say() { echo "install-uml: $*" >&2; }
die() { say "$*"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
MIRROR=http://deb.debian.org/debian
PREFIX=/opt/harnessbench-uml

boots() {  # UML_BINARY: true when a guest on the host's / runs its init (which leaves a file on the host)
    local dir
    dir="$(mktemp -d)"
    printf '#!/bin/sh\ntouch %s/booted\nexec /sbin/poweroff -f\n' "$dir" >"$dir/init"
    chmod 755 "$dir/init"
    timeout 120 "$1" mem=128M rootfstype=hostfs rootflags=/ rw "init=$dir/init" >"$dir/console" 2>&1 || true
    local ok=1
    [ -e "$dir/booted" ] && ok=0
    rm -rf "$dir"
    return $ok
}

package_path() {  # SUITE PACKAGE: the pool path of PACKAGE's amd64 .deb in SUITE's index
    curl -fsS "$MIRROR/dists/$1/main/binary-amd64/Packages.xz" | xz -d 2>/dev/null \
        | awk -v p="$2" '$1 == "Package:" { hit = ($2 == p) } hit && $1 == "Filename:" && !done { print $2; done = 1 }'
}

if ! command -v linux.uml >/dev/null; then
    say "installing user-mode-linux"
    { apt-get update -qq && apt-get install -y -qq user-mode-linux >/dev/null; } || die "apt-get install user-mode-linux failed"
fi
boots "$(command -v linux.uml)" 2>/dev/null && exit 0  # (a kernel that panics aborts: no report of it)

say "$(command -v linux.uml) does not boot on this host kernel ($(uname -r)): installing Debian unstable's in $PREFIX"
command -v patchelf >/dev/null && command -v curl >/dev/null && command -v xz >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq patchelf curl xz-utils >/dev/null; } || die "apt-get install patchelf curl xz-utils failed"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for spec in "sid user-mode-linux uml" "sid libc6 libc"; do
    set -- $spec
    path="$(package_path "$1" "$2")" || true
    [ -n "$path" ] || die "no $2 in Debian $1's package index at $MIRROR"
    curl -fsS -o "$work/$3.deb" "$MIRROR/$path" || die "downloading $MIRROR/$path failed"
    dpkg-deb -x "$work/$3.deb" "$work/$3"
done
rm -rf "$PREFIX" && mkdir -p "$PREFIX"
cp -a "$work/libc/usr/lib/x86_64-linux-gnu" "$PREFIX/lib"
cp "$work/uml/usr/bin/linux.uml" "$PREFIX/linux.uml"
patchelf --set-interpreter "$PREFIX/lib/ld-linux-x86-64.so.2" --set-rpath "$PREFIX/lib" "$PREFIX/linux.uml"
ln -sf "$PREFIX/linux.uml" /usr/local/bin/linux.uml
hash -r
boots "$(command -v linux.uml)" || die "Debian unstable's user-mode-linux does not boot here either"
say "linux.uml: $("$PREFIX/linux.uml" --version 2>/dev/null | head -1 || echo "$PREFIX/linux.uml")"
