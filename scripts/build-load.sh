#!/usr/bin/env bash
# Build the one image of the three functions and load it into the kind cluster's node, so
# Knative runs it without a registry (kind.local/* skips tag resolution).
#
# Usage: scripts/build-load.sh
# Environment: TAG (dev), IMAGE_REPOSITORY (kind.local/knative-thumbnails),
#   KIND_CLUSTER_NAME (thumbnails)
# A new build under the same tag reaches only pods started after the load; to roll a new
# revision at once, build and deploy a new tag: TAG=$(git rev-parse --short HEAD) for both.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# True when both the docker client and the daemon know `docker image save --platform`:
# Docker 28.0 (Engine API 1.48) added it; older ones refuse the flag.
save_has_platform() {
    local client api
    client=$(docker version --format '{{.Client.Version}}' 2>/dev/null) || return 1
    api=$(docker version --format '{{.Server.APIVersion}}' 2>/dev/null) || return 1
    [[ $client =~ ^([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 28)) || return 1
    [[ $api =~ ^1\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 48))
}

main() {
    no_arguments "$@"
    require docker kind
    require_docker_daemon
    require_cluster
    log "building $IMAGE"
    # The Dockerfile mounts the builder stage's wheels (RUN --mount): BuildKit is required,
    # the default builder since Docker 23.
    DOCKER_BUILDKIT=1 docker build --tag "$IMAGE" "$ROOT"
    log "loading $IMAGE into kind cluster '$KIND_CLUSTER_NAME'"
    if ! kind load docker-image "$IMAGE" --name "$KIND_CLUSTER_NAME"; then
        # Docker's containerd image store saves indexes whose attestation blobs are missing
        # (kind issue 3795, "content digest ... not found"): load this platform's image only.
        local platform
        platform="linux/$(docker version --format '{{.Server.Arch}}')"
        # Global, not local: the EXIT trap runs after main has returned.
        archive=$(mktemp "${TMPDIR:-/tmp}/knative-thumbnails.XXXXXX")
        trap 'rm -f "$archive"' EXIT
        # --platform needs Docker 28 (API 1.48) at both ends; an older Docker (Debian's
        # docker.io is 20.10) has no containerd image store, so its plain save has one platform.
        local save=(docker image save --output "$archive")
        if save_has_platform; then
            save+=(--platform "$platform")
        fi
        warn "kind load docker-image failed; retrying with '${save[*]} $IMAGE'"
        "${save[@]}" "$IMAGE"
        kind load image-archive "$archive" --name "$KIND_CLUSTER_NAME"
    fi
    log "loaded $IMAGE; deploy it with: TAG=$TAG scripts/deploy.sh"
}

main "$@"
