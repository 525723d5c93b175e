#!/usr/bin/env bash
# Make a Docker engine and the offline base image available for the docker tests.
#
#   .ci/docker-setup.sh
#
# Idempotent, for root on a Debian bookworm machine without any container registry:
#   1. installs docker.io and debootstrap from Debian packages if either is missing;
#   2. starts dockerd in the background (log: $HB_DOCKERD_LOG, /tmp/dockerd.log) unless an
#      engine already answers, and waits for it at most $HB_DOCKERD_WAIT seconds (60);
#   3. builds harnessbench/python:3.11 with scripts/build-base-image.sh unless it exists.
# Exits non-zero with a one-line reason when any step fails.
set -euo pipefail

IMAGE="${HB_IMAGE:-harnessbench/python:3.11}"
WAIT="${HB_DOCKERD_WAIT:-60}"
LOG="${HB_DOCKERD_LOG:-/tmp/dockerd.log}"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"  # dockerd and debootstrap live in sbin
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { echo "docker-setup: $*" >&2; }
die() { say "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
engine_up() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts dockerd)"

# 1. Packages (the engine's own dockerd, not just some docker CLI on PATH).
if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null || ! command -v debootstrap >/dev/null; then
    t=$(now)
    say "installing docker.io and debootstrap from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed; check /etc/apt/sources.list*"
    apt-get install -y -qq docker.io debootstrap >/dev/null || die "apt-get install docker.io debootstrap failed"
    say "packages installed in $(since "$t") s"
fi

# 2. Engine.
if engine_up; then
    say "engine already running ($(docker version --format '{{.Server.Version}}'))"
else
    t=$(now)
    started=
    if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
        say "DOCKER_HOST=$DOCKER_HOST does not answer yet; not starting a local dockerd"
    elif pgrep -x dockerd >/dev/null; then
        say "dockerd is running but not answering yet; waiting"
    else
        say "starting dockerd (log: $LOG)"
        # setsid: the daemon outlives this script and the CI step's process group.
        setsid dockerd >"$LOG" 2>&1 < /dev/null &
        started=1
    fi
    deadline=$(( $(date +%s) + WAIT ))
    until engine_up; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            if [ -n "$started" ]; then
                tail -n 15 "$LOG" >&2
                die "dockerd did not answer within ${WAIT}s (log above: $LOG)"
            fi
            die "Docker engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} did not answer within ${WAIT}s"
        fi
        sleep 0.2
    done
    say "engine $(docker version --format '{{.Server.Version}}') up in $(since "$t") s"
fi

# 3. Base image (cached: built only when absent).
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    say "image $IMAGE already present"
else
    t=$(now)
    "$ROOT/scripts/build-base-image.sh" "$IMAGE"
    say "image $IMAGE built in $(since "$t") s"
fi
