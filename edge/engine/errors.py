"""Typed domain errors with a stable `code` and the HTTP status the web boundary maps them to."""

from __future__ import annotations


class DomainError(Exception):
    """A command the engine refuses; nothing changes."""

    status = 409
    code = "conflict"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None, **extra: object):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra


class NotFound(DomainError):
    """A referenced ticket, counter or service does not exist."""

    status = 404
    code = "not_found"


class InvalidTransition(DomainError):
    """The ticket's status does not allow the action."""

    status = 409
    code = "invalid_state"


class Invalid(DomainError):
    """The command is well-formed but its values are not acceptable."""

    status = 422
    code = "invalid"
