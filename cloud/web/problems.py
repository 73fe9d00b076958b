"""A hub refusal to raise as RFC 9457 problem+json: `type` urn:qms:problem:<code>, the status phrase as `title`,
`detail` in words and the stable `code` callers act on (answered by Litestar's problem-details plugin)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar.plugins.problem_details import ProblemDetailsException


def refusal(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> ProblemDetailsException:  # fmt: skip
    """The problem to raise; `extra` adds members (e.g. `fields`, `errors`)."""
    return ProblemDetailsException(status_code=status, title=HTTPStatus(status).phrase, type_=f"urn:qms:problem:{code}",
                                   detail=detail, headers=headers, extra={"code": code, **extra})  # fmt: skip
