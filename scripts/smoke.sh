#!/usr/bin/env bash
# End-to-end check through the Knative routes: upload a 2:1 PNG to `upload`, long-poll
# `status` (GET /jobs/{id}?wait=30) until the job has succeeded, download the thumbnail and check that it is a 100x50 PNG.
#
# Usage: scripts/smoke.sh
# Environment: NAMESPACE (thumbnails), KUBE_CONTEXT (kind-thumbnails), SMOKE_TIMEOUT
#   (180 seconds), API_KEY (sent as X-API-Key when set), INGRESS (host:port that
#   answers for the routes; default 127.0.0.1:KIND_HOST_PORT, "" = the URLs' own hosts)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-180}
# kind publishes Kourier on 127.0.0.1: connect there whatever the URL's host resolves to
# (sslip.io needs DNS; this works offline too). Host headers stay the routes' own.
INGRESS=${INGRESS-127.0.0.1:$KIND_HOST_PORT}
readonly WIDTH=100 HEIGHT=50 # the thumbnail of a 2:1 image in the default 100x100 box

# A 400x200 PNG for machines without Pillow.
readonly FALLBACK_PNG="
iVBORw0KGgoAAAANSUhEUgAAAZAAAADICAIAAABJdyC1AAADH0lEQVR42u3asbGCQBSGUXUsgQIM
KcFCCAwJLMEiDCiBwJBSCAkpwiLMFXVHGd07nBO+edENvvmXcb2rLyuY21CdHYHZbZwAECwAwQIE
C0CwAAQLECwAwQIQLECwAAQLQLAAwQIQLADBAgQLQLAABAsQLADBAhAsQLAABAtAsADBAhAsAMEC
BAtAsADBAhAsAMECBAtAsAAECxAsAMECECxAsAAEC0CwAMECECwAwQIEC0CwAAQLECwAwQJ4ZusE
fKnr28c/jn0x+c9lc3UxBIs/FyrReCr0C8Ei60697ZdyIVhk2inlQrAImarJcskWgkXWqZItBItg
qZItBItgqZItJvnhKFnX6i5bWFhIVQymFhaWWgVjagkWaqVZeBIiVZ6HWFgsuVamlmChVpqFYKFW
moVgoVaaJViolWYhWACChXllZAkWaqVZCBZqpVkIFiBYmFdGFoKFWmkWggUIFuaVkYVgAQiWeWVk
OYJgAQgW5pWRhWABgoV5ZWQhWACCBQgW3oNehQgWgGABgoX3oFchggUIlhMAggUgWIBgEZQv7ul8
dxcsAMECECxAsAAEC0CwAMECECxAsAAEC0CwAMECECwAwQIEi0AO+6MjJCqbqyMIFoBgAQgWIFgA
gsVLvrun8MVdsAAEC0CwvAq9BxEsAMECECyvQu9BBAtAsDCyzCvBcgJAsDCyzCsECxAsjCzzCsEC
ECyMLPNKsNAstUKwAAQLI8u8Eiw0S60QLDRLrRAsQLAwsswrBAvNUisEiyU1S60EC81SKwQLzVIr
PrXe1RdXWKaub6UKCwtTS60QLDRLrTwJXYEQz0OpwsIixtRSKywsAkwtqUKwCJAtqUKwCJAtqUKw
CJAtqUKwyL1cOoVgkXu5dArBIt9+KRSCRXaG6uwIzM4PRwHBAhAsQLAABAtAsADBAhAsAMECBAtA
sAAECxAsAMECECxAsAAEC0CwAMECECwAwQIEC0CwAAQLECwAwQIQLECwAAQLECwnAAQLQLAAwQIQ
LADBAgQLQLAABAsQLADBAhAsQLAABAtAsADBAhAsAMECBAvg927stN0qVkJ0fwAAAABJRU5ErkJg
gg=="

have() { command -v "$1" >/dev/null 2>&1; }

http() {
    local args=(--silent --show-error --max-time 60)
    if [[ -n "$INGRESS" ]]; then
        args+=(--connect-to "::$INGRESS")
    fi
    if [[ -n "${API_KEY:-}" ]]; then
        args+=(--header "X-API-Key: $API_KEY")
    fi
    curl "${args[@]}" "$@"
}

ksvc_url() {
    local url
    url=$(k -n "$NAMESPACE" get ksvc "$1" -o jsonpath='{.status.url}' 2>/dev/null || true)
    [[ -n "$url" ]] || die "Knative Service '$1' in namespace '$NAMESPACE' has no URL: run scripts/deploy.sh first"
    echo "$url"
}

# make_png FILE: a 2:1 test image (a gradient with Pillow, else the embedded one).
make_png() {
    if have python3 && python3 -c 'import PIL' 2>/dev/null; then
        log "test image: an 800x400 gradient (Pillow)"
        python3 - "$1" <<'PY'
import sys
from PIL import Image

im = Image.linear_gradient("L").resize((800, 400)).convert("RGB")
im.save(sys.argv[1], "PNG")
PY
    else
        log "test image: the embedded 400x200 PNG (no Pillow here)"
        base64 --decode >"$1" <<<"$FALLBACK_PNG"
    fi
}

# json_field NAME: the top-level string field NAME of the JSON document on stdin.
json_field() {
    if have python3; then
        python3 -c 'import json, sys
try:
    value = json.load(sys.stdin).get(sys.argv[1])
except (ValueError, AttributeError):
    value = None
print(value if isinstance(value, str) else "")' "$1"
    else
        sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1
    fi
}

# png_size FILE: "WIDTHxHEIGHT" of a PNG file, or nothing if it is not one.
png_size() {
    if have python3; then
        python3 - "$1" <<'PY'
import struct, sys

head = open(sys.argv[1], "rb").read(24)
if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
    print("%dx%d" % struct.unpack(">II", head[16:24]))
PY
    else
        file -b "$1" | sed -n 's/^PNG image data, \([0-9]*\) x \([0-9]*\),.*/\1x\2/p'
    fi
}

main() {
    if help_requested "$@"; then
        usage
        return
    fi
    require kubectl curl
    have python3 || have file || die "checking the thumbnail needs python3 or file: install either"
    # Global, not local: the EXIT trap runs after main has returned.
    work=$(mktemp -d "${TMPDIR:-/tmp}/thumbnails-smoke.XXXXXX")
    trap 'rm -rf "$work"' EXIT

    local upload status
    upload=$(ksvc_url upload)
    status=$(ksvc_url status)
    make_png "$work/source.png"

    log "POST $upload/jobs"
    local response code body job_id
    response=$(http --write-out '\n%{http_code}' --form "file=@$work/source.png;type=image/png" \
        --form width=100 --form height=100 --form format=png "$upload/jobs") ||
        die "no answer from $upload (is INGRESS=$INGRESS right?)"
    code=${response##*$'\n'}
    body=${response%$'\n'*}
    [[ "$code" == 202 ]] || die "upload answered HTTP $code, not 202: $body"
    job_id=$(json_field job_id <<<"$body")
    [[ -n "$job_id" ]] || die "upload's answer has no job_id: $body"

    log "waiting on $status/jobs/$job_id?wait=30 (up to ${SMOKE_TIMEOUT}s)"
    local deadline=$((SECONDS + SMOKE_TIMEOUT)) doc="" state=""
    while :; do
        # A long poll answers when the job ends or after 30 s, so no polling interval.
        doc=$(http "$status/jobs/$job_id?wait=30" || true)
        state=$(json_field status <<<"$doc")
        case "$state" in
        succeeded) break ;;
        failed) die "job $job_id failed: $doc" ;;
        esac
        if ((SECONDS >= deadline)); then
            die "job $job_id has not succeeded within ${SMOKE_TIMEOUT}s (status '${state:-unknown}'): $doc"
        fi
        [[ -n "$state" ]] || sleep 2 # no answer (a route not ready yet): try again shortly
    done

    log "GET $status/jobs/$job_id/thumbnail"
    local meta size
    meta=$(http --output "$work/thumbnail" --write-out '%{http_code} %{content_type}' \
        "$status/jobs/$job_id/thumbnail")
    [[ "$meta" == "200 image/png"* ]] || die "the thumbnail answer was '$meta', not '200 image/png'"
    size=$(png_size "$work/thumbnail")
    [[ "$size" == "${WIDTH}x${HEIGHT}" ]] ||
        die "the thumbnail is '${size:-not a PNG}', not ${WIDTH}x${HEIGHT}"
    echo "PASS: job $job_id made a ${size} PNG thumbnail in $((SECONDS))s through the Knative routes"
}

main "$@"
