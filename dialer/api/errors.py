"""API errors: an HTTP status, a stable code, a sentence for people and optional details.

Every error response has the same body::

    {"error": {"code": "campaign_not_editable",
               "message": "campaign 12 is Running; settings can be edited only in Draft or Paused",
               "details": {"status": "running", "command": "edit"}}}

Codes (stable; clients switch on them, never on the message):

=========================== ====== ========================================================
code                        status when
=========================== ====== ========================================================
``bad_request``             400    a malformed request (Content-Length, a body cut short)
``bad_json``                400    the body is not JSON (or not UTF-8); NaN and Infinity are
                                   not JSON: ``details.field`` names where one was
``unauthenticated``         401    no ``Authorization: Bearer`` token, or an unknown one
``forbidden``               403    the token's role is too low (the message names the role)
``not_found``               404    no such campaign, list, contact or path
``method_not_allowed``      405    the path exists but not with this method
``campaign_not_<verb>``     409    the campaign's status refuses the command: ``startable``,
                                   ``pausable``, ``resumable``, ``stoppable``, ``deletable``,
                                   ``editable``
``list_not_stoppable``      409    the list is already stopped
``transition_refused``      409    any other refused lifecycle command
``campaign_draining``       409    a delete waited too long for in-flight calls to end
``body_too_large``          413    the body is over the endpoint's limit
``unsupported_media_type``  415    a CSV upload with another content type
``invalid_input``           422    a field, a query parameter or a setting is wrong
``import_refused``          422    the CSV was refused whole (details: the import report)
``store_unavailable``       503    Redis cannot be reached
``internal_error``          500    a bug; logged with its traceback
=========================== ====== ========================================================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dialer.domain.lifecycle import CampaignCommand, ListCommand
from dialer.errors import DialerError, NotFound, StoreError, TransitionRefused, ValidationError
from dialer.importer import ImportRefused

from .schemas import import_report

log = logging.getLogger(__name__)

_REFUSED_CODES = {
    CampaignCommand.START.value: "campaign_not_startable",
    CampaignCommand.PAUSE.value: "campaign_not_pausable",
    CampaignCommand.RESUME.value: "campaign_not_resumable",
    CampaignCommand.STOP.value: "campaign_not_stoppable",
    CampaignCommand.DELETE.value: "campaign_not_deletable",
    CampaignCommand.EDIT.value: "campaign_not_editable",
}


class ApiError(Exception):
    """An error the API answers with; raised by handlers, rendered by :func:`error_response`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, object] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def refused_code(command: str | None, *, is_list: bool = False) -> str:
    """The 409 code of a refused command (``campaign_not_startable``, ``list_not_stoppable``)."""
    if is_list:
        return "list_not_stoppable" if command == ListCommand.STOP else "transition_refused"
    return _REFUSED_CODES.get(command or "", "transition_refused")


def translate(exc: DialerError, *, command: str | None = None) -> ApiError:
    """The API error for one of the dialer's exceptions.

    ``command``: the lifecycle command the endpoint ran, used when the exception does not
    carry one (a compare-and-set refused in Redis).
    """
    if isinstance(exc, ImportRefused):
        return ApiError(422, "import_refused", exc.message, {"report": import_report(exc.report)})
    if isinstance(exc, TransitionRefused):
        cmd = exc.command or command
        is_list = isinstance(exc.command, ListCommand)
        details: dict[str, object] = {"command": cmd, "status": exc.status}
        return ApiError(409, refused_code(cmd, is_list=is_list), exc.message, details)
    if isinstance(exc, ValidationError):
        return ApiError(422, "invalid_input", str(exc))
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, StoreError):
        log.warning("store unavailable: %s", exc)
        return ApiError(503, "store_unavailable", "the store (Redis) is unavailable; try again")
    log.error("unexpected dialer error: %r", exc)
    return ApiError(500, "internal_error", "internal error")


def error_response(error: ApiError) -> JSONResponse:
    body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
    return JSONResponse(body, status_code=error.status, headers=error.headers or None)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the same JSON shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"no such path: {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(ApiError(exc.status_code, code, message, headers=exc.headers))
