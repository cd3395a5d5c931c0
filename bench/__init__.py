"""Benchmarks (``python -m bench``): side-by-side baselines on the same broker and data. Not tests."""
