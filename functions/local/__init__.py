"""Local stand-ins for a cluster, never in the image: the broker, the `thumbnails dev`
stack and the embedded Valkey (the knative-thumbnails-local distribution).
"""
