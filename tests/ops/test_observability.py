"""Correlation ids, the JSON log line and its redaction (sync.observability), as units (issue 16, E-PLAT-01)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.observability import (
    CorrelationBook,
    JsonFormatter,
    TextFormatter,
    correlation_for_event,
    correlation_scope,
    current_correlation_id,
    event_correlations,
    log_formatter,
    scrub,
    valid_correlation_id,
)

SECRETS = {
    "phone": ["+6281234567890", "081234567890", "62 812 3456 7890", "0812-3456-7890"],
    "email": ["budi.santoso@example.co.id", "x+tag@mail.example.com"],
    "credential": [
        "Authorization: Bearer abc.DEF-123_x",
        "Basic YWRtaW46ZGVtbw==",
        "password=hunter2",
        '{"password": "s3cret!"}',
        "api_key: k-123",
        "token=eyJhbGciOi.eyJzdWIi.sig-1",
    ],
}


def _provider_refuses() -> None:
    raise ValueError("provider refused +6281234567890 with api_key=sk-live-999")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """A logger writing through the JSON formatter into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("qms.test.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("text", [t for group in SECRETS.values() for t in group])
def test_contacts_and_credentials_are_scrubbed(text: str) -> None:
    secret = text.split("=", 1)[-1].split(": ", 1)[-1].strip('{}" ').split(" ", 1)[-1]
    assert secret not in scrub(f"before {text} after")


def test_ordinary_figures_survive_scrubbing() -> None:
    line = "2026-12-04 18:35:31 seq 1234567 at 1733300000.5 port 8080 ticket A012 v3 10.0.0.12:4222 uuid 0193ab"
    assert scrub(line) == line


def test_the_json_line_carries_the_bound_id_and_hides_secrets_in_messages_and_tracebacks(
    captured: io.StringIO,
) -> None:
    logger = logging.getLogger("qms.test.observability")
    with correlation_scope("req-42"):
        try:
            _provider_refuses()
        except ValueError:
            logger.exception("sms to %s failed", "budi@example.com")
    logger.info("outside", extra={"correlation_id": "evt-7"})
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["correlation_id"] == "req-42"
    assert first["level"] == "error"
    assert first["message"] == "sms to [email] failed"
    assert "6281234567890" not in first["exc"]
    assert "sk-live-999" not in first["exc"]
    assert second["correlation_id"] == "evt-7"
    assert current_correlation_id() == ""


def test_the_text_format_is_scrubbed_too() -> None:
    record = logging.LogRecord("qms.x", logging.INFO, __file__, 1, "mail %s", ("a@b.example",), None)
    with correlation_scope("abc"):
        assert TextFormatter().format(record).endswith("mail [email] [cid=abc]")
    assert isinstance(log_formatter("json"), JsonFormatter)
    with pytest.raises(ValueError, match="QMS_LOG_FORMAT"):
        log_formatter("xml")


@given(st.text(max_size=200))
def test_only_safe_ids_are_accepted(value: str) -> None:
    accepted = valid_correlation_id(value)
    if accepted is not None:
        assert accepted == value
        assert len(value) <= 128
        assert all(c.isascii() and (c.isalnum() or c in "._:-") for c in value)


def test_a_bad_header_value_gets_a_fresh_id() -> None:
    with correlation_scope("evil\nline") as bound:
        assert bound != "evil\nline"
        assert len(bound) == 32
    with correlation_scope("x" * 129) as bound:
        assert len(bound) == 32


def test_the_book_keeps_the_newest_and_the_batch_map_is_scoped() -> None:
    book = CorrelationBook(capacity=3)
    book.note([1, 2], "a")
    book.note([3, 4], "b")
    book.note([5], "")  # no request: nothing noted
    assert [book.get(seq) for seq in range(1, 6)] == ["", "a", "b", "b", ""]
    with event_correlations({("acme", "jkt", 7): "k-1"}):
        assert correlation_for_event("acme", "jkt", 7) == "k-1"
        assert correlation_for_event("acme", "jkt", 8) == ""
    assert correlation_for_event("acme", "jkt", 7) == ""
