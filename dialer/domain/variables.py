"""How many channel variables one call can carry: a contact's share.

Every call is one originate, and its variables travel in it:

- Asterisk (AMI ``Originate``) keeps the first 128 lines of an action (``AST_MAX_MANHEADERS``,
  :data:`dialer.pbx.ami.codec.MAX_ACTION_HEADERS`) and drops the rest. An originate uses up to
  10 lines for its fields (Action, ActionID, Channel, Context, Exten, Priority, Async, Timeout,
  ChannelId, CallerID), 3 for the engine's variables (DIALER_CALL_ID, DIALER_AMD,
  DIALER_CAMPAIGN) and 3 for the dialplan's knobs a campaign may set
  (:mod:`dialer.domain.dialplan`); :data:`MAX_CONTACT_VARIABLES` (64) brings it to 80 at most,
  one ``Variable:`` line each.
- FreeSWITCH (ESL ``bgapi originate {a=b,...}``) takes the variables in one command line, at
  most 64 KiB here (:data:`dialer.pbx.esl.codec.MAX_COMMAND_BYTES`); values are
  percent-encoded, up to 3 bytes per byte. :data:`MAX_CONTACT_VARIABLE_BYTES` (8 KiB of names
  and values) is at most 25 KiB there, with the 13 bytes per variable the names add; the
  campaign's knobs add under 1 KiB.

A contact over either limit is refused at import (a line-level error), never dialed and
labelled Invalid number. Each value is also cut to
:data:`dialer.pbx.sanitize.MAX_VALUE_BYTES` at dial time, so that one AMI line holds it.
"""

from __future__ import annotations

from collections.abc import Mapping

MAX_CONTACT_VARIABLES = 64
MAX_CONTACT_VARIABLE_BYTES = 8192


def variables_size(variables: Mapping[str, str]) -> int:
    """UTF-8 bytes of the names and values (a lone surrogate counts as 3 bytes)."""
    return sum(
        len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
        for k, v in variables.items()
    )


def too_many_variables(count: int) -> str | None:
    """Why ``count`` contact variables cannot go on a call, or None."""
    if count > MAX_CONTACT_VARIABLES:
        return (
            f"{count} variables; a call carries at most {MAX_CONTACT_VARIABLES} contact variables"
        )
    return None


def contact_variables_problem(variables: Mapping[str, str]) -> str | None:
    """Why a contact's variables cannot go on a call (too many, too large), or None."""
    problem = too_many_variables(len(variables))
    if problem is not None:
        return problem
    size = variables_size(variables)
    if size > MAX_CONTACT_VARIABLE_BYTES:
        return (
            f"variables take {size} bytes; a call carries at most {MAX_CONTACT_VARIABLE_BYTES} "
            "bytes of contact variables (names and values, UTF-8)"
        )
    return None
