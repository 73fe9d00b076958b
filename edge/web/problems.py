"""RFC 9457 problem+json responses with a stable `code`: the one place errors become HTTP."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsException

from edge.engine.errors import DomainError

log = logging.getLogger("qms.web")
HTTP_SERVER_ERROR = 500
HTTP_BAD_REQUEST = 400

_GENERIC_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(ProblemDetailsException):
    """A refusal raised by the web layer itself (auth, role, input), with a stable code."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(
            detail=detail,
            status_code=status,
            headers=headers,
            title=code.replace("_", " "),
            type_=f"urn:qms:problem:{code}",
            extra={"code": code, **extra},
        )


def problem(request: Request[Any, Any, Any], status: int, code: str, detail: str, **extra: Any) -> Response[Any]:
    """Render a problem+json response."""
    return ApiError(status, code, detail, **extra).to_response(request)


class StrictJsonRequest(Request[Any, Any, Any]):
    """The app's request class: every JSON body is parsed here, so a malformed one is a 400 on every route.

    JSON is UTF-8 (RFC 8259 §8.1) whatever charset the client declares; a body that is not, or that nests deeper
    than the decoder can follow, is refused as `malformed_body` before any handler runs (msgspec would otherwise
    raise UnicodeDecodeError or RecursionError, i.e. a 500).
    """

    async def json(self) -> Any:
        """The decoded body, or a 400 `malformed_body` problem."""
        body = await self.body()
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(
                400, "malformed_body", f"the body is not UTF-8 (byte {exc.start}); JSON must be UTF-8"
            ) from None
        try:
            return await super().json()
        except RecursionError:
            raise ApiError(400, "malformed_body", "the body nests too deeply") from None


def decode_json_body(body: bytes) -> Any:
    """Decode a raw JSON body (for routes that read it themselves) with the same refusals as every other route."""
    try:
        body.decode("utf-8")
        return msgspec.json.decode(body)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_body", f"the body is not UTF-8 (byte {exc.start}); JSON must be UTF-8") from None
    except RecursionError:
        raise ApiError(400, "malformed_body", "the body nests too deeply") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    """Engine refusals: their own status and code; nothing changed."""
    return problem(request, exc.status, exc.code, exc.detail, **exc.extra)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """Framework errors (bad JSON, validation, 404 route, 405, 413) as problems."""
    if isinstance(exc, ProblemDetailsException):
        return exc.to_response(request)
    status = exc.status_code
    code = _GENERIC_CODES.get(status, "error")
    extra: dict[str, Any] = {}
    detail = str(exc.detail)
    if status == HTTP_BAD_REQUEST and isinstance(exc.__cause__, SerializationException):
        code = "malformed_json"  # not parseable at all (broken, truncated, trailing garbage)
    if isinstance(exc, ValidationException):
        errors = exc.extra if isinstance(exc.extra, list) else []
        in_body = all(str(e.get("source")) in ("body", "ParamType.BODY") for e in errors if isinstance(e, dict))
        code = "invalid_body" if in_body else "invalid_parameter"
        if any(isinstance(e, dict) and e.get("message") == "'data'" for e in errors):
            detail, errors = "a JSON request body is required", []
        if errors:
            extra["errors"] = [{**e, "source": str(getattr(e.get("source"), "value", e.get("source")))} for e in errors]
    if status >= HTTP_SERVER_ERROR:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail)
    headers = dict(exc.headers or {})  # a 405 keeps its Allow, a 401 its WWW-Authenticate
    return ApiError(status, code, detail, headers=headers, **extra).to_response(request)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A bug: logged with its traceback, answered with a generic 500 problem (no internals leak)."""
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal_error", "internal error; it has been logged")
