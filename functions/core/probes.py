"""What Knative probes: the chart's livenessProbe and readinessProbe paths.

Every function serves them (thumbnails.core.web), and thumbnails.core.serving.WORKER_CLASS answers
them on threads of their own (thumbnails.core.probeworker)."""

LIVENESS_PATH, READINESS_PATH = "/health", "/ready"
PROBE_PATHS = (LIVENESS_PATH, READINESS_PATH)
