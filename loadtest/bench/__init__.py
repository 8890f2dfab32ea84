"""Benchmarks against the local real stack (Redis, Asterisk 22, SIPp): ``python -m loadtest.bench``.

Each benchmark brings its figures side by side from one run and ends with one
``RESULT {json}`` line. See loadtest/README.md.
"""
