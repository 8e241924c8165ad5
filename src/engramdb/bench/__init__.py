"""Benchmarks behind ``engram bench ...``: each prints a table and writes JSON."""
