"""Benchmarks: each prints a table of measured figures beside the floor they are compared to."""
