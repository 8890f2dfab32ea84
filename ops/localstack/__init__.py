"""The real local telephony stack: Redis, Asterisk 22 (Debian-unstable root), SIPp carrier sim.

Everything runs on loopback as plain processes (no Docker). Used by the tests, the benchmarks
and the demo alike.
"""
