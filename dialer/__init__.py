"""Telephony-native outbound dialer engine.

Package layout (the arrows are the only allowed import directions)::

    domain  <-  store  <-  engine  <-  api / cli
       ^                     |
       +------  pbx  <-------+

- ``dialer.domain``: pure rules (statuses, lifecycles, outcome mapping, retry policy).
- ``dialer.pbx``: one adapter per PBX (Asterisk AMI, FreeSWITCH ESL) behind one interface.
- ``dialer.store``: Redis keys and Lua scripts (limits, leases, queues, records).
- ``dialer.engine``: the asyncio loops that pace and originate calls.
"""

__version__ = "0.1.0"
