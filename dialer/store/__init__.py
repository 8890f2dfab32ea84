"""Redis store: key schema (:mod:`.keys`), Lua scripts (:mod:`.scripts`), :class:`RedisStore`.

Store map. :class:`RedisStore` (``redis_store``: set-up, ``from_url``) is one mixin per
aggregate over ``core.StoreCore`` (client, keys, registered scripts, the pipelined EVALSHA
with its NOSCRIPT reload; reply helpers in ``common``), each module with its Lua files:

- ``campaigns``: create, get, list, settings, lifecycle transitions, delete, the active
  index -- ``active``, ``transition``, ``update_settings``.
- ``contacts``: lists, add contacts, stop a list, mark queued contacts, get a contact --
  ``add_contacts``, ``mark_undialed``.
- ``claims``: claim, claim_command, settle_and_claim (marks, results and claims in one round
  trip), wait for claims to settle -- ``claim``, ``originated`` (and ``finish``).
- ``results``: finish, finish_batch, counts, queue and campaign stats, plan usage, call
  records -- ``finish``, ``stats``.
- ``leases``: renew, adopt, release, orphaned calls, get_call -- ``renew``, ``adopt``,
  ``release``, ``reap``.

Companion stores wrap a ``RedisStore``: ``dnc`` (do-not-call lists, the import ledger --
``dnc_add``, ``dnc_mark_pending``, ``dnc_screen``, ``dnc_discard_import``), ``breaker``
(trunk breakers -- ``breaker_report``), ``recycle`` (recycle and remove contacts --
``recycle_stage``, ``recycle_commit``, ``remove_contacts``), ``callbacks`` (``callback``,
``callback_list``), and, without scripts, ``callerid``, ``engines`` (heartbeats), ``queries``
(API reads) and ``why``. Connections: ``connection``; records: ``models``.
"""

from .keys import Keys
from .models import (
    CallRef,
    CampaignRecord,
    ClaimKind,
    ClaimResult,
    ContactInput,
    ContactRecord,
    QueueStats,
    RateWindow,
    Usage,
)
from .redis_store import RedisStore

__all__ = [
    "CallRef",
    "CampaignRecord",
    "ClaimKind",
    "ClaimResult",
    "ContactInput",
    "ContactRecord",
    "Keys",
    "QueueStats",
    "RateWindow",
    "RedisStore",
    "Usage",
]
