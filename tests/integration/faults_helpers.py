"""Crashing and restarting the switch a fault test runs on (``pbx``: the ``pbx`` fixture's
``"asterisk"`` or ``"freeswitch"``), on the stack's recorded ports and secrets."""

from __future__ import annotations

from ops.localstack import stack as localstack
from ops.localstack.procs import is_alive
from ops.localstack.stack import StackInfo


def switch_pid(info: StackInfo, pbx: str) -> int:
    return info.freeswitch_pid if pbx == "freeswitch" else info.asterisk_pid


def kill_switch(info: StackInfo, pbx: str) -> None:
    """SIGKILL the switch (a crash: no hang-up is sent, no handler runs) and wait until it is
    gone."""
    if pbx == "freeswitch":
        localstack.terminate_now(info.freeswitch_pid)
    else:
        localstack.kill_asterisk(info, hard=True)


def start_switch(info: StackInfo, pbx: str) -> StackInfo:
    """Start the switch again with the stack's configuration (FreeSWITCH: ``up`` restarts the
    dead part in place); returns once it answers, with the new pids."""
    if pbx == "freeswitch":
        return localstack.up(info.name, info.workdir, with_freeswitch=True)
    return localstack.start_asterisk(info)


def ensure_switch(info: StackInfo, pbx: str) -> StackInfo:
    """The switch running again after a test that killed it, whatever happened in between."""
    if is_alive(switch_pid(info, pbx)):
        return info
    return start_switch(info, pbx)
