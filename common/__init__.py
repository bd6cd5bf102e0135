"""Shared code for every model and run.

Importing this package must not import torch: the harness imports common.config,
common.spec and common.metrics on machines where torch is absent (login nodes).
"""
