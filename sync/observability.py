"""Correlation ids and structured logs, shared by the appliance and the hub (issue 16, E-PLAT-01).

One id follows one customer action: accepted from `X-Request-ID` (when well-formed) or generated per HTTP request,
echoed in the response, bound in a contextvar for the request's log lines, kept beside the events it caused
(`CorrelationBook`, read by the relay), carried in the NATS message headers (`NATS_CORRELATION_HEADER`) and bound
again by the hub's consumer while it applies them. Provider calls (SMS, e-mail, web push) read
`current_correlation_id()` and send it as `REQUEST_ID_HEADER`.

Log lines are JSON objects (`JsonFormatter`, standard library only: no extra dependency on a Pi) and pass through
`scrub`, so phone numbers, e-mail addresses, passwords, bearer tokens and status-link tokens never reach a log file,
whatever a caller put into a message or an exception.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"  # HTTP, both directions; also what provider calls send
NATS_CORRELATION_HEADER = "Qms-Correlation-Id"  # on each replicated event's NATS message
LOG_FORMAT_ENV = "QMS_LOG_FORMAT"  # `json` (default) or `text` for a person at a terminal
access_log = logging.getLogger("qms.http")
_VALID_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_correlation: ContextVar[str] = ContextVar("qms_correlation_id", default="")


def current_correlation_id() -> str:
    """The id of the request or event being handled ("" outside one)."""
    return _correlation.get()


def new_correlation_id() -> str:
    """A fresh id (32 hex digits)."""
    return uuid.uuid4().hex


def valid_correlation_id(value: str | None) -> str | None:
    """`value` when it is a safe id (1-128 of letters, digits, `._:-`), else None: a header is attacker input and
    ends up in every log line, so nothing else (newlines, quotes, megabytes) is accepted."""
    return value if value and _VALID_ID.fullmatch(value) else None


def bind_correlation_id(value: str) -> Token[str]:
    """Bind `value` for the current context; give the token back to `reset_correlation_id`."""
    return _correlation.set(value)


def reset_correlation_id(token: Token[str]) -> None:
    """Undo `bind_correlation_id`."""
    _correlation.reset(token)


@contextmanager
def correlation_scope(value: str | None) -> Iterator[str]:
    """Bind a valid `value` (or a new id) while the block runs; yields the id bound."""
    bound = valid_correlation_id(value) or new_correlation_id()
    token = _correlation.set(bound)
    try:
        yield bound
    finally:
        _correlation.reset(token)


_event_correlations: ContextVar[Mapping[tuple[str, str, int], str]] = ContextVar(
    "qms_event_correlations", default=MappingProxyType({})
)


def correlation_for_event(tenant: str, branch_id: str, seq: int) -> str:
    """The id that came with this replicated event ("" when none), while the hub's consumer applies its batch:
    notification triggers store it on the outbox row so the provider call carries it."""
    return _event_correlations.get().get((tenant, branch_id, seq), "")


@contextmanager
def event_correlations(ids: Mapping[tuple[str, str, int], str]) -> Iterator[None]:
    """Make the batch's `(tenant, branch, seq) -> id` map readable by `correlation_for_event` inside the block."""
    token = _event_correlations.set(ids)
    try:
        yield
    finally:
        _event_correlations.reset(token)


class CorrelationMiddleware:
    """Pure ASGI: bind the request's id (its valid `X-Request-ID`, else a new one) and echo it in the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Wrap one HTTP request; anything else passes through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = REQUEST_ID_HEADER.lower().encode()
        sent = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == header), None)
        bound = valid_correlation_id(sent) or new_correlation_id()

        started = time.perf_counter()

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != header]
                message = {**message, "headers": [*headers, (header, bound.encode())]}
                # The access line (debug): the path only, never the query string; `scrub` hides status-link tokens.
                access_log.debug("%s %s -> %d in %.1f ms", scope["method"], scope["path"], message["status"],
                                 (time.perf_counter() - started) * 1000)  # fmt: skip
            await send(message)

        token = _correlation.set(bound)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _correlation.reset(token)


class CorrelationBook:
    """Which correlation id caused which event seq, for the relay to put on the NATS message.

    In memory and bounded (the newest `capacity` seqs): an event shipped after a restart, or long after it was
    written, simply goes without one. Thread-safe: the writer thread notes, the relay's worker thread reads.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, seqs: Iterator[int] | list[int], correlation_id: str) -> None:
        """Remember that these seqs were written while handling `correlation_id` (ignored when empty)."""
        if not correlation_id:
            return
        with self._lock:
            for seq in seqs:
                self._ids[seq] = correlation_id
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)

    def get(self, seq: int) -> str:
        """The id noted for `seq` ("" when none)."""
        with self._lock:
            return self._ids.get(seq, "")


# ---- redaction -------------------------------------------------------------------------------------------------

_SCRUBBERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[token]"),  # JWTs anywhere
    (
        re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key|seed|nkey)(['\"]?\s*[=:]\s*['\"]?)[^\s'\",&}]+"),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(/t/)[A-Za-z0-9._~-]{8,}"), r"\1[token]"),  # public status links: the path is the secret
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # Indonesian and international numbers (+62…, 62…, 08…, 9-15 digits, spaces or dashes between); not dates,
    # seqs or epoch seconds, which start otherwise.
    (re.compile(r"(?<![\w.:/-])(?:\+|0|62)[ -]?\d(?:[ -]?\d){7,13}(?![\w.:/-])"), "[phone]"),
)


def scrub(text: str) -> str:
    """`text` without secrets or contacts (passwords, tokens, status links, e-mail addresses, phone numbers)."""
    for pattern, replacement in _SCRUBBERS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, correlation id, exception; all scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` (its message and traceback pass through `scrub`)."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if correlation_id := getattr(record, "correlation_id", "") or current_correlation_id():
            line["correlation_id"] = correlation_id
        if record.exc_info:
            line["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The human format (`QMS_LOG_FORMAT=text`), scrubbed the same way, with the correlation id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render and scrub; append `[cid=…]`."""
        text = scrub(super().format(record))
        correlation_id = getattr(record, "correlation_id", "") or current_correlation_id()
        return f"{text} [cid={correlation_id}]" if correlation_id else text


def log_formatter(fmt: str | None = None) -> logging.Formatter:
    """The formatter for `fmt` (`json`/`text`; default: `QMS_LOG_FORMAT`, else json)."""
    chosen = (fmt or os.environ.get(LOG_FORMAT_ENV) or "json").strip().lower()
    if chosen not in {"json", "text"}:
        raise ValueError(f"{LOG_FORMAT_ENV} must be json or text, not {chosen!r}")
    return JsonFormatter() if chosen == "json" else TextFormatter()


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """The process's logging: one stderr handler on the root logger with the chosen formatter (replacing any);
    uvicorn's loggers propagate to it (run uvicorn with `log_config=None`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
