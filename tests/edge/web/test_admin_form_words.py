"""The admin service form reports a refused value in the field's own words, in the page's language (Indonesian by
default, English by the staff language cookie), never msgspec's "Expected `str` matching regex …"."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from edge.web.staff.session import LANG_COOKIE
from tests.edge.web.conftest import Api
from tests.edge.web.test_staff import Staff, _service_form

CASES = [
    ({"prefix": "A1"}, "Prefiks: 1 sampai 3 huruf kapital.", "Prefix: 1 to 3 capital letters."),
    ({"id": "teller baru!"}, "Id: huruf, angka, titik", "Id: letters, digits, dot, dash and underscore"),
    ({"digits": "9"}, "Digit: bilangan bulat 1 sampai 6.", "Digits: a whole number from 1 to 6."),
    ({"sla_minutes": "sepuluh"}, "Target SLA: 1 sampai 1440 menit.", "SLA target: 1 to 1440 minutes."),
    ({"outcome_codes": "ok, tidak ok"}, "Kode hasil: huruf, angka", "Outcome codes: letters, digits"),
]


@pytest.fixture
def staff(client: TestClient[Any]) -> Staff:
    return Staff(client)


@pytest.mark.parametrize(("changes", "indonesian", "english"), CASES)
def test_a_refused_service_value_is_named_in_the_pages_language(
    staff: Staff, api: Api, changes: dict[str, str], indonesian: str, english: str
) -> None:
    staff.login("admin")
    r = staff.client.post("/staff/admin/config/service", data=_service_form(staff, 1, **changes))
    assert r.status_code == 422
    assert indonesian in r.text, r.text
    assert "Expected" not in r.text
    assert "$." not in r.text
    staff.client.cookies.set(LANG_COOKIE, "en")
    r = staff.client.post("/staff/admin/config/service", data=_service_form(staff, 1, **changes))
    assert r.status_code == 422
    assert english in r.text, r.text
    assert "Expected" not in r.text
    assert api.config()[1] == '"1"'  # nothing applied
