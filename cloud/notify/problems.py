"""The notify area's refusals as RFC 9457 problem+json (type `urn:qms:problem:<code>`, title, status, detail and a
stable `code`), like the rest of the hub (`cloud.ops.web`): raised here, answered by Litestar's problem-details
plugin."""

from __future__ import annotations

from http import HTTPStatus

from litestar.plugins.problem_details import ProblemDetailsException

NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # the status page's answers


def refusal(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> ProblemDetailsException:
    """A problem to raise: `code` is what callers act on, `detail` says it in words."""
    return ProblemDetailsException(status_code=status, detail=detail, title=HTTPStatus(status).phrase,
                                   type_=f"urn:qms:problem:{code}", extra={"code": code}, headers=headers)  # fmt: skip
