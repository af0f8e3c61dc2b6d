"""Tests that start real processes (Valkey, SeaweedFS, gunicorn, the broker,
helm, docker, Chromium)."""
