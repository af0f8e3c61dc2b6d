#!/usr/bin/env bash
# Make the container engine ready for tests/integration/test_containers.py on a CI machine (Debian):
# install what is missing of Docker, buildah, podman and debootstrap, and start dockerd when
# no daemon answers. Idempotent and quiet: on a machine that has it all, it does nothing and
# prints nothing. dockerd keeps running after this script (its log: $TMPDIR/dockerd.log).
#
# Usage: .ci/engine.sh
set -euo pipefail

PACKAGES=(docker.io buildah podman debootstrap fuse-overlayfs uidmap curl)
SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
LOG=${TMPDIR:-/tmp}/dockerd.log

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}" >&2
    install() { $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
    install || { $SUDO apt-get update -q >/dev/null && install; }
fi

if ! docker info >/dev/null 2>&1; then
    echo "==> starting dockerd (log: $LOG)" >&2
    $SUDO setsid nohup dockerd >"$LOG" 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        if docker info >/dev/null 2>&1; then
            exit 0
        fi
        sleep 1
    done
    echo "dockerd did not answer within 60 s; the end of $LOG:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
fi
