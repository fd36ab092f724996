"""Benchmarks for xdrsync; run them with ``make bench`` (``python -m bench``)."""
