#!/usr/bin/env bash
# Create the kind cluster (or reuse it) and install Knative Serving with the Kourier
# ingress, and Knative Eventing with the in-memory channel and the MT channel broker, all
# from pinned release manifests (versions in scripts/lib.sh). Safe to run again.
#
# Usage: scripts/kind-up.sh [--print-config | --print-manifests | --help]
#   --print-config     print the kind cluster config and exit
#   --print-manifests  print the release manifests, in the order they are applied, and exit
# Environment: KIND_CLUSTER_NAME (thumbnails), KIND_NODE_IMAGE (pinned; "" = kind's own
#   default), KIND_HOST_PORT (80), KNATIVE_DOMAIN (127.0.0.1.sslip.io), WAIT_TIMEOUT (300s)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KIND_NODE_IMAGE=${KIND_NODE_IMAGE-$KIND_PINNED_NODE_IMAGE}


# One node. Kourier's NodePort is published on the host's 127.0.0.1:KIND_HOST_PORT only.
kind_config() {
    cat <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: ${KOURIER_NODE_PORT}
        hostPort: ${KIND_HOST_PORT}
        listenAddress: "127.0.0.1"
        protocol: TCP
EOF
}

check_kind_version() {
    local version
    version=$(kind version 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -n 1 || true)
    if [[ "$KIND_NODE_IMAGE" == "$KIND_PINNED_NODE_IMAGE" && "$version" != "$KIND_TESTED_VERSION" ]]; then
        warn "kind ${version:-(unknown version)} with the node image of kind $KIND_TESTED_VERSION;" \
            "if the cluster does not come up, set KIND_NODE_IMAGE to an image listed in your" \
            "kind release's notes, or KIND_NODE_IMAGE= for kind's default"
    fi
}

create_cluster() {
    if cluster_exists; then
        log "kind cluster '$KIND_CLUSTER_NAME' exists: reusing it"
        if ! kubectl config get-contexts -o name | grep -qx -- "$KUBE_CONTEXT"; then
            kind export kubeconfig --name "$KIND_CLUSTER_NAME"
        fi
        if [[ -z "$(docker port "$KIND_CLUSTER_NAME-control-plane" "$KOURIER_NODE_PORT/tcp" 2>/dev/null)" ]]; then
            warn "the cluster does not publish port $KOURIER_NODE_PORT on the host (was it made" \
                "by another tool?): the Knative routes will not answer on 127.0.0.1;" \
                "scripts/kind-down.sh and run this again to recreate it"
        fi
        return
    fi
    local args=(create cluster --name "$KIND_CLUSTER_NAME" --config=- --wait 120s)
    if [[ -n "$KIND_NODE_IMAGE" ]]; then
        args+=(--image "$KIND_NODE_IMAGE")
    fi
    local image=${KIND_NODE_IMAGE:-"kind's default node image"}
    log "creating kind cluster '$KIND_CLUSTER_NAME' ($image)"
    kind_config | kind "${args[@]}"
}

check_kubernetes_version() {
    local minor
    minor=$(k get --raw /version | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p')
    if [[ -z "$minor" ]] || ((minor < MIN_KUBERNETES_MINOR)); then
        die "Knative $KNATIVE_SERVING_VERSION needs Kubernetes 1.$MIN_KUBERNETES_MINOR or newer;" \
            "the cluster runs 1.${minor:-?}: set KIND_NODE_IMAGE to a newer node image"
    fi
}

wait_crds() {
    k wait --for=condition=Established --timeout=120s crd -l knative.dev/crd-install=true
}

wait_deployments() {
    log "waiting for the deployments in $1 to be Available (up to $WAIT_TIMEOUT)"
    k wait deployment --all -n "$1" --for=condition=Available --timeout="$WAIT_TIMEOUT"
}

install_serving() {
    log "Knative Serving v$KNATIVE_SERVING_VERSION"
    retry 3 k apply -f "$SERVING_CRDS_URL"
    wait_crds
    retry 3 k apply -f "$SERVING_CORE_URL"
    wait_deployments knative-serving
    # Knative's webhook validates these ConfigMaps: patch them once it is up.
    log "Knative domain: $KNATIVE_DOMAIN"
    retry 3 k -n knative-serving patch configmap/config-domain --type merge \
        -p "{\"data\":{\"$KNATIVE_DOMAIN\":\"\"}}"
}

install_kourier() {
    log "Kourier v$KNATIVE_KOURIER_VERSION"
    retry 3 k apply -f "$KOURIER_URL"
    retry 3 k -n knative-serving patch configmap/config-network --type merge \
        -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
    # kind has no load balancer: a fixed NodePort that the kind config maps to the host.
    # (A strategic merge patch: ports merge by port number; https keeps its own.)
    k -n kourier-system patch service/kourier \
        -p "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":$KOURIER_NODE_PORT}]}}"
    wait_deployments kourier-system
}

install_eventing() {
    log "Knative Eventing v$KNATIVE_EVENTING_VERSION"
    retry 3 k apply -f "$EVENTING_CRDS_URL"
    wait_crds
    retry 3 k apply -f "$EVENTING_CORE_URL"
    wait_deployments knative-eventing
    log "in-memory channel and MT channel broker"
    retry 3 k apply -f "$IMC_URL"
    retry 3 k apply -f "$MT_BROKER_URL"
    wait_deployments knative-eventing
}

main() {
    case "${1:-}" in
    --print-config)
        kind_config
        return
        ;;
    --print-manifests)
        printf '%s\n' "${KNATIVE_MANIFESTS[@]}"
        return
        ;;
    -h | --help)
        usage
        return
        ;;
    "") ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    require docker kind kubectl
    require_docker_daemon
    check_kind_version
    create_cluster
    check_kubernetes_version
    install_serving
    install_kourier
    install_eventing
    log "ready: context $KUBE_CONTEXT; Knative routes answer on http://<service>.<namespace>.$KNATIVE_DOMAIN$([[ $KIND_HOST_PORT == 80 ]] || echo ":$KIND_HOST_PORT")"
    log "next: scripts/build-load.sh && scripts/deploy.sh && scripts/smoke.sh"
}

main "$@"
