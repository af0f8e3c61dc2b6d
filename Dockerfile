# The image of all three functions (upload, status, resize): kind.local/knative-thumbnails.
#
# One image, not three: the functions share one core package and one dependency set, so
# three images would be three copies of the same layers that differ only in the command.
# Knative pulls the one image once per node, and a node that has started one function
# starts the others without pulling anything. The Services' container args select the
# function: ["serve", "resize", "--workers", "2", "--threads", "1"] and so on.
#
# Build (BuildKit, the default builder since Docker 23, for RUN --mount):
#   docker build -t kind.local/knative-thumbnails:dev .      (scripts/build-load.sh)

# ---- build: wheels of the project and of its runtime dependencies only ----------------
# The same base as the final stage, so every wheel fits its Python and libc.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# README.md because pyproject.toml names it as the long description.
COPY pyproject.toml README.md ./
COPY functions ./functions
# `pip wheel .` builds the service's wheel alone (the root project: thumbnails.core, .upload,
# .resize, .status) and its [project] dependencies, never an extra: the client
# (functions/client) and the dev tools (functions/local) are distributions of their own, so
# the image holds none of their modules (tests/test_scripts.py checks the wheel,
# tests/test_containers.py the image). Every dependency ships manylinux wheels for amd64
# and arm64, so no compiler is needed here either. The cache mount keeps downloads between builds, out of the image.
# Behind a TLS-inspecting proxy pip needs that proxy's CA bundle: pass it as the optional
# build secret `pip-cert` (`--secret id=pip-cert,src=/etc/ssl/certs/ca-certificates.crt`).
# A secret is mounted only for this RUN, so it is in no layer and no ENV of the image;
# without it (required=false) pip uses its own CA bundle, as on any ordinary machine.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=secret,id=pip-cert,required=false \
    if test -s /run/secrets/pip-cert; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && pip wheel --disable-pip-version-check --wheel-dir /wheels .

# ---- final: the wheels installed on a clean slim Python, nothing else ----------------
FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="knative-thumbnails" \
      org.opencontainers.image.description="Asynchronous thumbnail service: upload, status and resize functions for Knative" \
      org.opencontainers.image.licenses="Apache-2.0"

# PYTHONUNBUFFERED: log lines reach `kubectl logs` at once.
# PORT: Knative sets it (8080 unless the Service names another port); `thumbnails serve`
# binds 0.0.0.0:$PORT. TMPDIR: the only writable path under readOnlyRootFilesystem is
# /tmp (an emptyDir); HOME points there too for anything that writes under ~.
ENV PYTHONUNBUFFERED=1 \
    PORT=8080 \
    TMPDIR=/tmp \
    HOME=/tmp

# The wheels come in through a bind mount, so they never become a layer of this image.
# Then precompile everything: the python:*-slim images delete the standard library's
# .pyc files to save space, and under readOnlyRootFilesystem Python cannot write them
# back, so without this every cold start would compile each module it imports again
# (scripts/coldstart.py: resize answers /health after ~0.4 s with .pyc, ~1.6 s without).
# That is also why PYTHONDONTWRITEBYTECODE is not set: it only stops writing, and with
# everything compiled here there is nothing left to write (nor a writable place for it).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --disable-pip-version-check --root-user-action=ignore --no-cache-dir \
        --no-index /wheels/*.whl \
    && python -m compileall -q -j 0 /usr/local/lib/python3.11 \
    && groupadd --gid 10001 thumbnails \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin thumbnails

WORKDIR /app
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: Knative probes the container (GET /health, /ready).
ENTRYPOINT ["thumbnails"]
CMD ["serve", "status"]
