"""Retry-After parsing (seconds or an HTTP date) and the retry/permanent split of HTTP answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
from hypothesis import given
from hypothesis import strategies as st

from cloud.notify.providers.http_outcome import parse_retry_after, transient

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=10**9))
def test_delay_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == float(seconds)


@given(st.integers(min_value=-(10**6), max_value=10**7))
def test_http_date_is_the_wait_until_then(offset: int) -> None:
    stamp = format_datetime(NOW + timedelta(seconds=offset), usegmt=True)
    assert parse_retry_after(stamp, NOW) == max(0.0, float(offset))


@given(st.text(max_size=40))
def test_anything_else_is_none_or_a_wait_never_an_error(text: str) -> None:
    wait = parse_retry_after(text, NOW)
    assert wait is None or wait >= 0


def test_only_429_and_5xx_are_transient() -> None:
    assert transient(httpx.Response(429, headers={"Retry-After": "5"})).retry_after == 5.0  # type: ignore[union-attr]
    assert transient(httpx.Response(503)).outcome == "retry"  # type: ignore[union-attr]
    assert transient(httpx.Response(400)) is None
    assert transient(httpx.Response(201)) is None
