"""One sub-package per model; each registers its adapter in adapter.py."""
