"""The real local telephony stack: Redis, the SIPp carrier simulator and the switches: Asterisk 22
(Debian-unstable root), FreeSWITCH 1.10.12 (built from source) or both.

Everything runs on loopback as plain processes (no Docker). Used by the tests, the benchmarks
and the demo alike.
"""
