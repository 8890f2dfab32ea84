"""Asterisk adapter: AMI (dialer.pbx.ami) plus call correlation."""

from dialer.pbx.asterisk.adapter import AsteriskAdapter, AsteriskSettings

__all__ = ["AsteriskAdapter", "AsteriskSettings"]
