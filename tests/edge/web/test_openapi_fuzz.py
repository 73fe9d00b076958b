"""Schemathesis against the real server: the OpenAPI document describes what the API does.

Every documented operation gets a bounded number of generated requests (real ids mixed in, so ticket actions reach
the engine rather than stopping at 404) with an admin's token; every response must pass schemathesis' checks:
no 5xx, a documented status code, the documented content type and headers, and a body matching its schema.
`GET /events` is a never-ending stream; its documented media type and its refusals are checked directly.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.appliance import RunningAppliance

EXAMPLES_PER_OPERATION = 6  # per mode (valid, invalid); ~35 operations: a few hundred requests in all
STREAMS = {("GET", "/api/v1/events")}
# Every check runs. A schema-valid request may still be refused by a business rule the schema cannot express (an
# agent must name a counter, a config's service must exist, a ticket must be waiting): the API documents those as
# 422 problems, so positive-data acceptance also expects 412 and 422 besides its defaults.
CONFIG = SchemathesisConfig.from_str(
    """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]
"""
)

CROSS_FIELD_RULES = {"/api/v1/kpis", "/api/v1/reports/tickets.csv"}


def _real_ids(appliance: RunningAppliance, headers: dict[str, str]) -> list[str]:
    tickets = []
    for service in ("teller", "cs", "teller", "teller"):
        r = httpx.post(f"{appliance.api}/tickets", json={"service_id": service}, headers=headers, timeout=10)
        assert r.status_code == 201, r.text
        tickets.append(r.json()["ticket_id"])
    httpx.post(f"{appliance.api}/counters/1/call-next", headers=headers, timeout=10).raise_for_status()
    return tickets


def _with_real_ids(case: Any, data: st.DataObject, tickets: list[str]) -> None:
    """Sometimes swap generated ids for real ones so the request gets past the lookups."""
    services, counters = st.sampled_from(["teller", "cs"]), st.sampled_from(["1", "2", "3"])
    real = {"ticket_id": st.sampled_from(tickets), "counter_id": counters, "device_id": st.just("kiosk-1"),
            "service_id": services, "to_service_id": services, "to_counter_id": counters}  # fmt: skip
    for container in (case.path_parameters, case.body if isinstance(case.body, dict) else None):
        for key in list(container or {}):
            if key in real and data.draw(st.integers(0, 3), label=f"real {key}"):
                container[key] = data.draw(real[key])


def _fuzz(operation: Any, base_url: str, headers: dict[str, str], tickets: list[str], mode: GenerationMode) -> None:
    """Run one operation's bounded examples (schema-valid, or schema-violating: must be refused) through every check."""

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def exercise(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:  # a real id could turn an invalid case into a valid one
            _with_real_ids(case, data, tickets)
        # The report filters' calendar and range rules (a real date, from <= to) are not expressible in OpenAPI:
        # a schema-valid but impossible date is a 400 `invalid_query` there; every other check still runs.
        excluded = [positive_data_acceptance] if operation.path in CROSS_FIELD_RULES else []
        case.call_and_validate(base_url=base_url, headers=headers, timeout=30, excluded_checks=excluded)

    try:
        exercise()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no parameters, no body)


@pytest.mark.timeout(240)
def test_every_operation_conforms_to_the_openapi_document(appliance: RunningAppliance) -> None:
    headers = appliance.headers("admin")
    tickets = _real_ids(appliance, headers)
    document = httpx.get(f"{appliance.base_url}/schema/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    checked = 0
    for operation in operations:
        key = (operation.method.upper(), operation.path)
        if key not in STREAMS:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, appliance.base_url, headers, tickets, mode)
            checked += 1
    assert checked >= 30
    assert "Traceback" not in appliance.log()


def test_the_event_stream_is_documented_as_sse_and_refuses_as_problems(appliance: RunningAppliance) -> None:
    document = httpx.get(f"{appliance.base_url}/schema/openapi.json", timeout=10).json()
    responses = document["paths"]["/api/v1/events"]["get"]["responses"]
    assert list(responses["200"]["content"]) == ["text/event-stream"]
    assert "application/problem+json" in responses["401"]["content"]
    r = httpx.get(f"{appliance.api}/events", timeout=10)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    body_schemas = [s for name, s in document["components"]["schemas"].items() if name != "Problem"]
    assert all(s.get("additionalProperties") is False for s in body_schemas)  # unknown fields are refused: say so
    r = httpx.post(f"{appliance.api}/tickets", json={"service_id": "teller", "colour": "red"},
                   headers=appliance.headers("admin"), timeout=10)  # fmt: skip
    assert r.status_code == 400
