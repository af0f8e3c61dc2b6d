"""The tests: unit/ (no processes), integration/ (real processes), support/ (helpers)."""
