#!/bin/sh
# Provision a test host for the integration tests: a Docker engine that can run privileged
# containers, started, and a base image for rocker to build on.
#
# Our machines (Debian 12, no registry, no engine running at start) need:
#   1. An engine of 23.0 or later. Debian 12's docker.io (20.10) asks runc for every capability
#      the kernel knows and fails on a host whose bounding set lacks one ("unable to apply caps").
#      Debian 13's engine installs on Debian 12 from trixie pinned at a low priority.
#   2. dockerd started in the background, ready when `docker info` answers.
#   3. A base image. Without a registry, debootstrap makes one (DEPS_ROCKER_TEST_IMAGE).
#   4. A static busybox on the host, from which the tests build inner images FROM scratch.
#   5. A non-root host user in the docker group, as whom the tests run rocker --user.
#   6. Xvfb and xauth, for the test of rocker's --x11 beside ours.
#
# On a machine that already has a working engine (a workstation, a GitHub runner) the engine
# steps are skipped. Idempotent: a second run finds everything in place.
#
# Environment:
#   DEPS_ROCKER_TEST_IMAGE   image the integration tests build on (default: debian:13)
#   DEPS_ROCKER_SUITE        Debian suite debootstrap makes it from (default: trixie)
#   DEPS_ROCKER_DOCKERD_LOG  where dockerd's log goes (default: /var/log/dockerd-test-host.log)
#   DEPS_ROCKER_TEST_USER    the non-root host user (default: deps-rocker-tester)
set -eu

image=${DEPS_ROCKER_TEST_IMAGE:-debian:13}
suite=${DEPS_ROCKER_SUITE:-trixie}
dockerd_log=${DEPS_ROCKER_DOCKERD_LOG:-/var/log/dockerd-test-host.log}
mirror=http://deb.debian.org/debian

log() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

engine_answers() { docker info >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts dockerd)"

if engine_answers; then
    log "an engine already answers: $(docker version --format '{{.Server.Version}}')"
else
    # Step 1: the engine. Only the Docker packages, and what they need (a newer libc among
    # them), come from trixie: the low pin keeps every other package bookworm's.
    if ! command -v dockerd >/dev/null 2>&1; then
        # shellcheck source=/dev/null # the host's own file, known only at run time
        . /etc/os-release
        if [ "${VERSION_CODENAME:-}" = bookworm ]; then
            log "adding Debian 13 (trixie) at apt priority 100 for the Docker packages"
            cat >/etc/apt/sources.list.d/deps-rocker-trixie.sources <<SOURCES
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
            cat >/etc/apt/preferences.d/deps-rocker-trixie <<PREFS
Package: *
Pin: release n=trixie
Pin-Priority: 100
PREFS
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                -t trixie docker.io docker-cli containerd docker-buildx docker-compose
        else
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                docker.io docker-cli containerd docker-buildx docker-compose
        fi
    fi

    # Step 2: start it. The package's service units are not running on a machine without
    # systemd as PID 1, so dockerd is started by hand and polled until the API answers.
    log "starting dockerd (log: $dockerd_log)"
    nohup dockerd >"$dockerd_log" 2>&1 &
    tries=0
    until engine_answers; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ]; then
            tail -n 30 "$dockerd_log" >&2 || true
            die "dockerd did not answer within 30 s"
        fi
        sleep 0.1
    done
    log "engine ready: $(docker version --format '{{.Server.Version}}')"
fi

# Step 3: the base image. Pull where a registry answers; otherwise make it with debootstrap.
if docker image inspect "$image" >/dev/null 2>&1; then
    log "base image $image is present"
elif docker pull -q "$image" >/dev/null 2>&1; then
    log "pulled base image $image"
else
    command -v debootstrap >/dev/null 2>&1 || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    }
    rootfs=$(mktemp -d /var/tmp/deps-rocker-rootfs.XXXXXX)
    log "no registry: making $image from Debian $suite with debootstrap"
    debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >/dev/null
    # A debootstrapped tree keeps the host's apt lists out but has its own caches; an image
    # made by `docker import` has no CMD, so give it the usual one of Debian's images.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$image" >/dev/null
    rm -rf "$rootfs"
    log "made base image $image"
fi

# Step 4: a static busybox for inner images built FROM scratch.
if ! ldd /bin/busybox 2>&1 | grep -q 'not a dynamic executable'; then
    log "installing busybox-static"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi

# Step 5: a non-root host user that may use the host's engine, and a Python it can run (the
# tests give it a virtual environment of its own).
test_user=${DEPS_ROCKER_TEST_USER:-deps-rocker-tester}
if ! id "$test_user" >/dev/null 2>&1; then
    log "creating host user $test_user in the docker group"
    useradd --create-home --groups docker "$test_user"
fi
if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

# Step 6: an X server without a screen, and xauth, for rocker's --x11.
if ! command -v Xvfb >/dev/null 2>&1 || ! command -v xauth >/dev/null 2>&1; then
    log "installing Xvfb and xauth"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth >/dev/null
fi
