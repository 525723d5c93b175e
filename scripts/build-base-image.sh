#!/usr/bin/env bash
# Build the offline base image harnessbench/python:3.11 without any container registry.
#
#   scripts/build-base-image.sh [IMAGE]        (default IMAGE: harnessbench/python:3.11)
#
# debootstraps a minimal Debian bookworm (python3 3.11, bash, coreutils, procps)
# from the Debian mirror apt already uses, and imports it with `docker import`:
# WORKDIR /task, CMD sleep infinity. Needs root, debootstrap and a reachable Docker
# engine. Environment: HB_DEBIAN_MIRROR overrides the mirror, HB_SUITE the suite
# (bookworm), HB_BUILD_DIR the scratch parent directory (/var/tmp).
set -euo pipefail

IMAGE="${1:-harnessbench/python:3.11}"
SUITE="${HB_SUITE:-bookworm}"
PACKAGES="python3,procps"

die() { echo "build-base-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap needs it); try: sudo $0 $*"
command -v debootstrap >/dev/null || die "debootstrap not found; install it: apt-get install -y debootstrap"
command -v docker >/dev/null || die "docker CLI not found; install it: apt-get install -y docker.io"
docker version >/dev/null 2>&1 || die "Docker engine not reachable; start it with \`dockerd &\` (or run .ci/docker-setup.sh)"

# The mirror apt uses for $SUITE: one-line *.list entries or deb822 *.sources paragraphs
# (Enabled: no and security/updates archives are skipped), else deb.debian.org.
find_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite && $i !~ /security/) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$SUITE" '
            function flush() {
                if (found) return
                if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris !~ /security/ &&
                    (" " suites " ") ~ (" " suite " ")) { split(uris, u, " "); print u[1]; found = 1; exit }
                types = uris = suites = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "uris:"    { $1 = ""; uris = $0 }
            tolower($1) == "suites:"  { $1 = ""; suites = $0 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { flush() }' "$f"
    done
}

MIRROR="${HB_DEBIAN_MIRROR:-$(find_mirror | head -n 1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

WORK="$(mktemp -d "${HB_BUILD_DIR:-/var/tmp}/hb-base-image.XXXXXX")"
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

echo "build-base-image: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR" >&2
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    [ -f "$ROOTFS/debootstrap/debootstrap.log" ] && tail -n 20 "$ROOTFS/debootstrap/debootstrap.log" >&2
    die "debootstrap from $MIRROR failed (log above); set HB_DEBIAN_MIRROR to a reachable Debian mirror"
fi

# Slim it down: package caches and docs are dead weight in a sandbox image.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
mkdir -p "$ROOTFS/task"

echo "build-base-image: importing as $IMAGE" >&2
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'WORKDIR /task' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["sleep", "infinity"]' \
    --message "debootstrap $SUITE minbase+$PACKAGES from $MIRROR (scripts/build-base-image.sh)" \
    - "$IMAGE" >/dev/null

version="$(docker run --rm --network none "$IMAGE" python3 --version)" \
    || die "imported $IMAGE but python3 does not run in it"
echo "build-base-image: $IMAGE ready ($version, $(( $(date +%s) - start )) s)" >&2
