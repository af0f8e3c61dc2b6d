#!/usr/bin/env bash
# Install or upgrade the Helm release `thumbnails` (chart charts/thumbnails) with the image
# that build-load.sh loaded, wait until its Knative Services are Ready, print their URLs.
#
# Usage: scripts/deploy.sh [VALUES_FILE]
#   VALUES_FILE  Helm values (default: $VALUES or charts/thumbnails/values-dev.yaml)
# Environment: NAMESPACE (thumbnails), TAG (dev), IMAGE_REPOSITORY
#   (kind.local/knative-thumbnails), KUBE_CONTEXT (kind-thumbnails), WAIT_TIMEOUT (300s)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RELEASE=thumbnails
CHART="$ROOT/charts/thumbnails"

diagnose() {
    warn "not ready within $WAIT_TIMEOUT; what the namespace holds:"
    k -n "$NAMESPACE" get ksvc,revisions,pods,brokers,triggers >&2 || true
    k -n "$NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 >&2 || true
}

# wait_all KIND CONDITION [SELECTOR]: wait for every object of KIND (that SELECTOR picks),
# if there is any: `kubectl wait` fails when nothing matches.
wait_all() {
    # `kubectl get` lists everything by default; `kubectl wait` needs --all for that.
    local pick=(--selector "${3:-}") every=(--all)
    if [[ -n "${3:-}" ]]; then
        every=("${pick[@]}")
    fi
    if [[ -z "$(k -n "$NAMESPACE" get "$1" "${pick[@]}" -o name 2>/dev/null)" ]]; then
        return 0
    fi
    log "waiting for $1 to be $2 (up to $WAIT_TIMEOUT)"
    if ! k -n "$NAMESPACE" wait "$1" "${every[@]}" --for="condition=$2" --timeout="$WAIT_TIMEOUT"; then
        diagnose
        exit 1
    fi
}

main() {
    if help_requested "$@"; then
        usage
        return
    fi
    local values=${1:-${VALUES:-$CHART/values-dev.yaml}}
    require kubectl helm
    [[ -d "$CHART" ]] || die "no chart at $CHART"
    [[ -f "$values" ]] || die "no values file at $values"
    k get --raw /version >/dev/null 2>&1 ||
        die "kubectl cannot reach context '$KUBE_CONTEXT': run scripts/kind-up.sh first (or set KUBE_CONTEXT)"

    # Server-side apply, forcing conflicts. Helm 4 applies server-side (pkg/action/upgrade.go,
    # --server-side "auto" follows the release's first install, which is server-side). A
    # Knative Service's .spec.template.spec.containers is an atomic list (the Serving CRD
    # gives it no x-kubernetes-list-type), so once another field manager has written any part
    # of it (the SinkBinding injecting K_SINK into upload, `kn service update --env ...`),
    # it co-owns the whole list and the next plain apply fails with a conflict. Forcing
    # makes helm the list's sole manager again: every deploy puts back what the values say,
    # and the SinkBinding webhook adds K_SINK again in the same admission.
    log "helm upgrade --install $RELEASE ($IMAGE, values $values, namespace $NAMESPACE)"
    helm upgrade --install "$RELEASE" "$CHART" --kube-context "$KUBE_CONTEXT" \
        --namespace "$NAMESPACE" --create-namespace --values "$values" \
        --server-side=true --force-conflicts \
        --set-string "image.repository=$IMAGE_REPOSITORY" --set-string "image.tag=$TAG"

    # Redis and MinIO first: the functions' readiness depends on them.
    local statefulset
    for statefulset in $(k -n "$NAMESPACE" get statefulsets -o name); do
        log "waiting for $statefulset"
        k -n "$NAMESPACE" rollout status "$statefulset" --timeout="$WAIT_TIMEOUT" || {
            diagnose
            exit 1
        }
    done
    wait_all deployments Available '!serving.knative.dev/revision'
    wait_all ksvc Ready
    wait_all brokers Ready
    wait_all triggers Ready

    k -n "$NAMESPACE" get ksvc -o custom-columns='SERVICE:.metadata.name,URL:.status.url'
    if [[ "$KIND_HOST_PORT" != 80 ]]; then
        log "kind publishes Kourier on 127.0.0.1:$KIND_HOST_PORT: add that port to the URLs"
    fi
    log "next: scripts/smoke.sh"
}

main "$@"
