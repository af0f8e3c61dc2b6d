"""Tests that start no process: `make test-unit`."""
