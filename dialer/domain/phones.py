"""Phone numbers to E.164, one rule shared by the CSV importer and the do-not-call lists.

A number is valid when ``phonenumbers`` parses it (a leading ``+``/IDD prefix names the country,
otherwise ``region`` does) and ``is_valid_number`` accepts it for its region: a number that is
merely the right length is not enough. Valid numbers are written ``+<country><national>``.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from dialer.errors import ValidationError

__all__ = ["check_region", "invalid_reason", "normalize_phone", "to_e164"]

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.INVALID_LENGTH: "wrong length",
    ValidationResult.TOO_LONG: "too long",
}


def check_region(region: str) -> str:
    """The region code upper-cased (``"fr"`` -> ``"FR"``); ValidationError if unknown."""
    code = region.upper() if isinstance(region, str) else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"default region {region!r} is not a known ISO 3166 region code")
    return code


def to_e164(raw: str, region: str) -> str | None:
    """``raw`` as E.164 (``"+12125550123"``), or None when it is not a valid number.

    ``region`` must be an upper-case code accepted by :func:`check_region`.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def invalid_reason(raw: str, region: str) -> str:
    """Why :func:`to_e164` refused ``raw`` (a short phrase); "" if it is valid."""
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        return _PARSE_REASONS.get(exc.error_type, "not a phone number")
    if phonenumbers.is_valid_number(number):
        return ""
    why = phonenumbers.is_possible_number_with_reason(number)
    return _POSSIBLE_REASONS.get(why, f"not a valid number for region {region}")


def normalize_phone(raw: str, region: str) -> str:
    """``raw`` as E.164; ValidationError naming the value and the reason when invalid."""
    e164 = to_e164(raw, region)
    if e164 is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ValidationError(f"invalid phone number {shown!r}: {invalid_reason(raw, region)}")
    return e164
