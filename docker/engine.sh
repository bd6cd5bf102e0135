#!/usr/bin/env bash
# A container engine for machines without Docker: Debian's Podman with its Docker-compatible socket.
#
#   docker/engine.sh up      install Podman if missing, configure it, start its Docker API service,
#                            create the local Debian base image once (reused afterwards)
#   docker/engine.sh status  what is installed and running
#   docker/engine.sh down    stop the API service (images stay)
#
# `make engine` runs `up`. Everything the project writes lives in .cache/engine/ of the repository
# (override with FER_ENGINE_DIR); the harness finds the socket there, or uses DOCKER_HOST when set.
# The base image is made with debootstrap for hosts that cannot reach an image registry; where
# Docker Hub is reachable the pinned upstream base of docker/base.Dockerfile is used instead.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${FER_ENGINE_DIR:-$ROOT/.cache/engine}
SOCK=$STATE/podman.sock
CONF=$STATE/containers.conf
LOCAL_BASE=${FER_LOCAL_BASE:-localhost/fer-crossval/debian:bookworm-minbase}
SUITE=bookworm

log() { printf '[engine] %s\n' "$*"; }
die() { printf '[engine] error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (run with sudo), or install Docker/Podman yourself and set DOCKER_HOST"
}

install_packages() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)          # Debian's podman does not pull runc in
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return
    need_root "installing ${missing[*]}"
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} with your package manager"
    log "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

write_conf() {
    mkdir -p "$STATE"
    # runc + cgroupfs: no systemd on these hosts. The ulimits keep DataLoader workers and pip builds
    # inside a container from hitting the tiny defaults of a minimal host.
    cat > "$CONF.tmp" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    mv "$CONF.tmp" "$CONF"
}

service_up() {
    if [ -S "$SOCK" ] && curl -s --max-time 5 --unix-socket "$SOCK" http://d/_ping 2>/dev/null | grep -q OK; then
        log "API service already answering on unix://$SOCK"
        return
    fi
    rm -f "$SOCK"
    log "starting podman system service on unix://$SOCK (log: $STATE/service.log)"
    # Run from the state folder: on cgroup v1, conmon drops an `oom` marker file into its working directory.
    (cd "$STATE" && CONTAINERS_CONF=$CONF exec nohup podman system service --time=0 "unix://$SOCK") \
        </dev/null >"$STATE/service.log" 2>&1 &
    echo $! > "$STATE/service.pid"
    for _ in $(seq 1 60); do
        if curl -s --max-time 2 --unix-socket "$SOCK" http://d/_ping 2>/dev/null | grep -q OK; then
            log "API service ready"
            return
        fi
        sleep 0.5
    done
    die "podman system service did not answer within 30 s; see $STATE/service.log"
}

base_image() {
    if CONTAINERS_CONF=$CONF podman image exists "$LOCAL_BASE"; then
        log "local base image $LOCAL_BASE present (reused)"
        return
    fi
    need_root "debootstrap"
    local dir
    dir=$(mktemp -d "$STATE/rootfs.XXXXXX")
    trap 'rm -rf "$dir"' RETURN
    log "creating $LOCAL_BASE with debootstrap --variant=minbase $SUITE (about a minute)"
    debootstrap --variant=minbase "$SUITE" "$dir" >"$STATE/debootstrap.log" 2>&1 \
        || die "debootstrap failed; see $STATE/debootstrap.log"
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -c . | CONTAINERS_CONF=$CONF podman import --quiet \
        --change 'CMD ["/bin/bash"]' --message "debootstrap --variant=minbase $SUITE" - "$LOCAL_BASE" >/dev/null
    log "created $LOCAL_BASE"
}

status() {
    command -v podman >/dev/null && podman --version || echo "podman: not installed"
    if [ -S "$SOCK" ] && curl -s --max-time 5 --unix-socket "$SOCK" http://d/_ping 2>/dev/null | grep -q OK; then
        echo "API service: answering on unix://$SOCK"
    else
        echo "API service: not running (make engine)"
    fi
    CONTAINERS_CONF=$CONF podman image exists "$LOCAL_BASE" 2>/dev/null \
        && echo "local base image: $LOCAL_BASE" || echo "local base image: absent"
}

down() {
    if [ -f "$STATE/service.pid" ] && kill "$(cat "$STATE/service.pid")" 2>/dev/null; then
        log "stopped the API service"
    fi
    rm -f "$STATE/service.pid" "$SOCK"
}

case "${1:-up}" in
    up) install_packages; command -v curl >/dev/null || die "curl is needed"; write_conf; service_up; base_image
        log "ready: DOCKER_HOST=unix://$SOCK" ;;
    status) status ;;
    down) down ;;
    *) die "unknown command '${1}'; valid: up, status, down" ;;
esac
