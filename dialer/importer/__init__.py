"""CSV import into recipient lists: streaming, all-or-nothing, deduped, do-not-call aware.

Entry point :func:`import_csv`; see :mod:`.csv_import` for the policy, :mod:`.reader` for the
accepted CSV, :mod:`.mapping` for the columns and :mod:`.report` for what comes back.
"""

from dialer.domain.phones import normalize_phone, to_e164

from .csv_import import import_csv
from .mapping import NAME_VAR, TIMEZONE_VAR, ColumnMapping, alt_columns
from .report import MAX_DETAILS, ImportRefused, ImportReport, LineError

__all__ = [
    "MAX_DETAILS",
    "NAME_VAR",
    "TIMEZONE_VAR",
    "ColumnMapping",
    "ImportRefused",
    "ImportReport",
    "LineError",
    "alt_columns",
    "import_csv",
    "normalize_phone",
    "to_e164",
]
