"""RFC 9457 problem+json responses with a stable `code`: the one place errors become HTTP."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar, Request, Response
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Schema
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.typing import FieldDefinition

from edge.engine.errors import DomainError

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

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


class StrictBodyRequest(Request[Any, Any, Any]):
    """The app's request class: every JSON or form body is parsed here, so a malformed one is a 400 on every route.

    JSON is UTF-8 (RFC 8259 §8.1) whatever charset the client declares; a body that is not, or that nests deeper
    than the decoder can follow, is refused as `malformed_body` before any handler runs (msgspec would otherwise
    raise UnicodeDecodeError or RecursionError, i.e. a 500). A multipart form field that is not UTF-8 likewise.
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

    async def form(self) -> Any:
        """The decoded form, or a 400 `malformed_body` problem."""
        try:
            return await super().form()
        except UnicodeDecodeError as exc:
            raise ApiError(400, "malformed_body", f"a form field is not UTF-8 (byte {exc.start})") from None


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


# ---- the OpenAPI document describes the problems the routes answer with ----------------------------------------


class Problem(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem as the API sends it; some codes add fields (`errors`, `retry_after`, `seq`, ...)."""

    status: int
    type: str
    title: str
    detail: str
    code: str


PROBLEM_MEDIA_TYPE = "application/problem+json"
_PROBLEM_STATUSES = {
    400: "Malformed or invalid request (`malformed_body`, `malformed_json`, `invalid_body`, `invalid_parameter`, …)",
    401: "No valid bearer token or credentials (`unauthorized`, `invalid_token`, `token_expired`, …)",
    403: "Not allowed for this role, counter or branch (`forbidden`, `counter_not_assigned`, …)",
    404: "No such ticket, counter, service, area or device",
    405: "Method not allowed (the `Allow` header names the allowed ones)",
    409: "Conflict with the ticket's or counter's state, or a stale resume point",
    412: "Stale configuration version (`If-Match`)",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Well-formed but refused by a rule (`counter_required`, `invalid_config`, …)",
    429: "Too many failed attempts (`Retry-After`)",
}


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Body schemas say what the decoder does: a Struct that refuses unknown fields is `additionalProperties: false`."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        """The plain Struct schema, closed when the Struct forbids unknown fields."""
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


def document_problems(app: Litestar) -> None:
    """Declare the problem+json answers (and SSE for `text/event-stream` routes) on every documented route.

    The framework documents only a JSON 400; the API answers every refusal as problem+json (this module), so
    the document says so in one place rather than on each handler.
    """
    problem = {
        status: ResponseSpec(data_container=Problem, media_type=PROBLEM_MEDIA_TYPE, description=text)
        for status, text in _PROBLEM_STATUSES.items()
    }
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            extra: dict[int, ResponseSpec] = dict(problem)
            if handler.opt.get("sse"):
                extra[200] = ResponseSpec(
                    data_container=str, media_type="text/event-stream", description="Server-Sent Events; id = seq"
                )
            handler.responses = {**extra, **(handler.responses or {})}
