#!/usr/bin/env bash
# shellcheck disable=SC2034  # the variables are for the scripts that source this file
# Shared by the kind-cluster scripts, which source it (it is not run): pinned versions,
# names, prerequisite checks and logging. The names that read the environment say so.
set -euo pipefail

# The project root, and its .tools/bin (helm and kubectl from scripts/fetch_k8s_tools.py)
# ahead of PATH: the pinned versions the tests validate the chart with win over older
# system-wide ones.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -d "$ROOT/.tools/bin" ]]; then
    PATH="$ROOT/.tools/bin:$PATH"
fi
SCRIPT=$(basename "$0")

# Pinned versions. Knative 1.22/1.23 need Kubernetes 1.34 or newer; the CRD schemas the
# tests validate against (../shared/knative-crds) are Serving 1.23.0 and Eventing 1.22.2.
readonly KNATIVE_SERVING_VERSION=1.23.0
readonly KNATIVE_KOURIER_VERSION=1.23.0 # net-kourier is released with Serving
readonly KNATIVE_EVENTING_VERSION=1.22.2
readonly MIN_KUBERNETES_MINOR=34
# kind v0.31.0's own node image (Kubernetes 1.35, like kubectl in .tools). A node image is
# supported only by the kind release that built it: with another kind release, set
# KIND_NODE_IMAGE to an image from that release's notes, or to "" for kind's default.
readonly KIND_TESTED_VERSION=v0.31.0
readonly KIND_PINNED_NODE_IMAGE="kindest/node:v1.35.0@sha256:452d707d4862f52530247495d180205e029056831160e22870e37e3f6c1ac31f"

readonly SERVING_CRDS_URL="https://github.com/knative/serving/releases/download/knative-v${KNATIVE_SERVING_VERSION}/serving-crds.yaml"
readonly SERVING_CORE_URL="https://github.com/knative/serving/releases/download/knative-v${KNATIVE_SERVING_VERSION}/serving-core.yaml"
# net-kourier moved to the knative-extensions organisation (github.com/knative/net-kourier
# redirects there); the canonical address needs no redirect.
readonly KOURIER_URL="https://github.com/knative-extensions/net-kourier/releases/download/knative-v${KNATIVE_KOURIER_VERSION}/kourier.yaml"
readonly EVENTING_CRDS_URL="https://github.com/knative/eventing/releases/download/knative-v${KNATIVE_EVENTING_VERSION}/eventing-crds.yaml"
readonly EVENTING_CORE_URL="https://github.com/knative/eventing/releases/download/knative-v${KNATIVE_EVENTING_VERSION}/eventing-core.yaml"
readonly IMC_URL="https://github.com/knative/eventing/releases/download/knative-v${KNATIVE_EVENTING_VERSION}/in-memory-channel.yaml"
readonly MT_BROKER_URL="https://github.com/knative/eventing/releases/download/knative-v${KNATIVE_EVENTING_VERSION}/mt-channel-broker.yaml"
# In the order kind-up.sh applies them.
KNATIVE_MANIFESTS=(
    "$SERVING_CRDS_URL" "$SERVING_CORE_URL" "$KOURIER_URL"
    "$EVENTING_CRDS_URL" "$EVENTING_CORE_URL" "$IMC_URL" "$MT_BROKER_URL"
)
readonly KNATIVE_MANIFESTS

# Names (each may be set in the environment).
KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME:-thumbnails}
KUBE_CONTEXT=${KUBE_CONTEXT:-kind-$KIND_CLUSTER_NAME}
NAMESPACE=${NAMESPACE:-thumbnails}
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-kind.local/knative-thumbnails}
TAG=${TAG:-dev}
IMAGE="$IMAGE_REPOSITORY:$TAG"
# Kourier's Service becomes a NodePort on this port; kind maps it to the host's port 80
# (KIND_HOST_PORT, on 127.0.0.1 only), so http://<ksvc>.<ns>.127.0.0.1.sslip.io works.
readonly KOURIER_NODE_PORT=31080
KIND_HOST_PORT=${KIND_HOST_PORT:-80}
KNATIVE_DOMAIN=${KNATIVE_DOMAIN:-127.0.0.1.sslip.io}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-300s}

# usage: print the running script's header comment (line 2 up to the first other line).
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# no_arguments "$@": for a script that takes none; --help prints its header and exits.
no_arguments() {
    case "${1:-}" in
    -h | --help)
        usage
        exit 0
        ;;
    "") ;;
    *)
        echo "usage: $SCRIPT [--help]" >&2
        exit 2
        ;;
    esac
}

# help_requested "$@": true when the first argument asks for --help.
help_requested() { [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; }

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT" "$*" >&2
    exit 1
}

# Where to get each tool this project's scripts use.
install_hint() {
    case "$1" in
    docker) echo "install it from https://docs.docker.com/get-docker/ (Docker Engine or Docker Desktop)" ;;
    kind) echo "install it from https://kind.sigs.k8s.io/docs/user/quick-start/#installation (tested with kind $KIND_TESTED_VERSION)" ;;
    kubectl) echo "install it from https://kubernetes.io/docs/tasks/tools/ or run 'python3 scripts/fetch_k8s_tools.py' (puts it in .tools/bin)" ;;
    helm) echo "install it from https://helm.sh/docs/intro/install/ or run 'python3 scripts/fetch_k8s_tools.py' (puts it in .tools/bin)" ;;
    curl) echo "install it with your package manager or from https://curl.se/download.html" ;;
    *) echo "install it and put it on PATH" ;;
    esac
}

# require TOOL...: exit 1 naming every tool that is not on PATH, and where to get it.
require() {
    local tool missing=0
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            printf '%s needs %s: %s\n' "$SCRIPT" "$tool" "$(install_hint "$tool")" >&2
            missing=1
        fi
    done
    if ((missing)); then
        exit 1
    fi
}

# The docker CLI without a daemon behind it fails later with a less helpful message.
require_docker_daemon() {
    if ! docker info >/dev/null 2>&1; then
        die "docker is installed but its daemon does not answer ('docker info' fails): start Docker and retry"
    fi
}

cluster_exists() {
    kind get clusters 2>/dev/null | grep -qx -- "$KIND_CLUSTER_NAME"
}

require_cluster() {
    if ! cluster_exists; then
        die "there is no kind cluster named '$KIND_CLUSTER_NAME': run scripts/kind-up.sh first"
    fi
}

# kubectl and helm always name the context, so a script never acts on whatever cluster
# happens to be current.
k() { kubectl --context "$KUBE_CONTEXT" "$@"; }

# retry N COMMAND...: run COMMAND up to N times, 5 s apart (downloads from GitHub and
# webhooks that have just started fail now and then).
retry() {
    local attempts=$1 n=1
    shift
    until "$@"; do
        if ((n >= attempts)); then
            return 1
        fi
        warn "'$*' failed (attempt $n of $attempts); retrying in 5 s"
        n=$((n + 1))
        sleep 5
    done
}
