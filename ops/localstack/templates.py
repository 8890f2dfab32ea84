"""``${STACK_...}`` templating for config files that have ``${...}`` syntax of their own.

Asterisk's dialplan is full of ``${VAR}``; only names starting with ``STACK_`` are ours, so
:class:`string.Template` is restricted to them and a placeholder left unfilled is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from string import Template

_LEFT = re.compile(r"\$\{STACK_[A-Z0-9_]+\}")


# Template's pattern groups; only the braced STACK_ form can match (flags: VERBOSE only).
_PATTERN = r"""
    \$(?:
        (?P<escaped>(?!))                  # no escape sequence: $$ stays $$
      | (?P<named>(?!))                    # no unbraced form
      | \{(?P<braced>STACK_[A-Z0-9_]+)\}
      | (?P<invalid>(?!))
    )
"""


class StackTemplate(Template):
    """Only ``${STACK_NAME}`` is a placeholder; any other ``$`` (``$$`` too) is left as it is."""

    flags = re.RegexFlag(0)  # case-sensitive: ${stack_x} is not ours either
    pattern = _PATTERN  # type: ignore[assignment]  # compiled by Template.__init_subclass__


class TemplateError(ValueError):
    """A ``${STACK_...}`` placeholder has no value."""


def render(text: str, values: Mapping[str, str], *, source: str = "<text>") -> str:
    out = StackTemplate(text).safe_substitute(values)
    left = sorted(set(_LEFT.findall(out)))
    if left:
        raise TemplateError(f"{source}: placeholders without a value: {left}")
    return out
