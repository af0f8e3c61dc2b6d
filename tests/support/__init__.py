"""Helpers the tests (and a few scripts) import: launchers, images, Knative mirrors."""
