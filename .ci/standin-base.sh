#!/usr/bin/env bash
# Build a stand-in for the Dockerfile's base image, python:3.11-slim-bookworm, where no
# registry can be pulled from (CI): a Debian bookworm root from debootstrap with Debian's
# Python 3.11 and pip, imported into buildah/podman's image storage under the base image's
# name. It stands in only where the Dockerfile relies on the official image: `python` and
# `pip` on PATH, root's `pip install` going under /usr/local/lib/python3.11 with its
# scripts in /usr/local/bin, no PEP 668 block, groupadd/useradd, LANG=C.UTF-8.
# It is labelled org.knative-thumbnails.stand-in=true. Needs root, debootstrap and podman.
#
# Usage: .ci/standin-base.sh
# Environment: STANDIN_IMAGE (docker.io/library/python:3.11-slim-bookworm),
#   DEBIAN_MIRROR (http://deb.debian.org/debian), STANDIN_FORCE=1 rebuilds an existing one.
set -euo pipefail

IMAGE=${STANDIN_IMAGE:-docker.io/library/python:3.11-slim-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SCRIPT=$(basename "$0")

case "${1:-}" in
-h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 0
    ;;
"") ;;
*)
    echo "usage: $SCRIPT [--help]" >&2
    exit 2
    ;;
esac

for tool in debootstrap podman; do
    command -v "$tool" >/dev/null || { echo "$SCRIPT needs $tool (apt-get install $tool)" >&2; exit 1; }
done

if [[ -z "${STANDIN_FORCE:-}" ]] && podman image exists "$IMAGE"; then
    echo "==> stand-in $IMAGE already exists (STANDIN_FORCE=1 rebuilds it)" >&2
    exit 0
fi

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/standin-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT
echo "==> debootstrap bookworm into $rootfs" >&2
debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates,netbase,tzdata \
    bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 ||
    { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

# What the official image has and Debian's packages do not: `python`, no PEP 668 marker
# (the official image's Python is not Debian's, so pip installs as root without a flag).
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
rm -f "$rootfs"/usr/lib/python3.*/EXTERNALLY-MANAGED
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb

echo "==> importing it as $IMAGE (stand-in)" >&2
tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'LABEL org.knative-thumbnails.stand-in=true' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
echo "==> stand-in $IMAGE ready" >&2
