#!/usr/bin/env bash
# Delete the kind cluster (and with it everything deployed in it).
#
# Usage: scripts/kind-down.sh
# Environment: KIND_CLUSTER_NAME (thumbnails)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
    no_arguments "$@"
    require docker kind
    require_docker_daemon
    if ! cluster_exists; then
        log "there is no kind cluster named '$KIND_CLUSTER_NAME': nothing to delete"
        return
    fi
    log "deleting kind cluster '$KIND_CLUSTER_NAME'"
    kind delete cluster --name "$KIND_CLUSTER_NAME"
}

main "$@"
