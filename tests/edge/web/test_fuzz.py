"""Hypothesis against the API boundary: any body gives a 2xx or a problem+json 4xx, never a 5xx, and a refusal
never changes the queue."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.edge.web.conftest import Api

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)
known = st.sampled_from(
    [
        "service_id",
        "priority",
        "channel",
        "phone",
        "email",
        "customer_ref",
        "lang",
        "request_id",
        "counter_id",
        "outcome",
        "reason",
        "to_service_id",
        "to_counter_id",
        "appointment_at",
        "status",
    ]
)
field_values = st.one_of(values, st.sampled_from(["teller", "cs", "loan", "1", "4", "A001", "", "../x", "0812345678"]))
bodies = st.one_of(values, st.dictionaries(known, field_values, max_size=5))
paths = st.sampled_from(
    [
        "/tickets",
        "/counters/1/call-next",
        "/tickets/{t}/start",
        "/tickets/{t}/transfer",
        "/tickets/{t}/cancel",
        "/tickets/{t}/hold",
        "/tickets/{t}/call",
        "/tickets/{t}/complete",
    ]
)


def test_any_body_is_answered_cleanly(api: Api) -> None:
    ticket = api.enqueue("teller")["ticket_id"]

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(path=paths, body=bodies, user=st.sampled_from(["admin", "agent1", "agent3"]))
    def exercise(path: str, body: Any, user: str) -> None:
        before = api.snapshot()
        r = api.post(path.replace("{t}", ticket), body, user=user)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json"), r.text
            problem = r.json()
            assert problem["status"] == r.status_code
            assert isinstance(problem["code"], str)
            assert api.snapshot() == before, f"refused {path} {body!r} changed the queue"

    exercise()
