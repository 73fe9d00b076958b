"""The kiosk takes only languages the appliance or the branch speaks: a ticket's language becomes `<html lang>` on
its status page and the words of its paper, so an unknown code is a 422 naming `lang`, never a page in "zz"; the
staff API's `POST /tickets` refuses it the same way."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from edge.auth import load_secret
from sync.links import link_key, sign
from tests.edge.web.conftest import Api, assert_problem


def issue(api: Api, lang: str, request_id: str) -> Any:
    return api.client.post("/kiosk/api/tickets", json={"service_id": "cs", "lang": lang, "request_id": request_id},
                           headers=api.h("admin"))  # fmt: skip


@pytest.mark.parametrize("lang", ["zz", "fr"])
def test_a_language_nobody_here_speaks_is_a_422_naming_lang(api: Api, lang: str) -> None:
    body = assert_problem(issue(api, lang, f"k-{lang}"), 422, "lang_not_spoken")
    assert [e["key"] for e in body["errors"]] == ["lang"], body
    assert lang in body["detail"]
    listed = api.get("/tickets")
    assert listed.status_code == 200, listed.text
    assert [t for t in listed.json()["tickets"] if t.get("lang") == lang] == []


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_appliances_languages_issue_and_their_status_page_speaks_them(api: Api, lang: str) -> None:
    r = issue(api, lang, f"k-{lang}")
    assert r.status_code == 201, r.text
    page = api.client.get(urlsplit(r.json()["status_url"]).path)
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text


def test_a_check_in_in_an_unknown_language_is_refused_before_the_code(api: Api) -> None:
    r = api.client.post("/kiosk/api/checkin", json={"code": "NOPE", "lang": "zz"}, headers=api.h("admin"))
    body = assert_problem(r, 422, "lang_not_spoken")
    assert [e["key"] for e in body["errors"]] == ["lang"], body


@pytest.mark.parametrize("lang", ["zz", "fr"])
def test_a_staff_ticket_in_a_language_nobody_here_speaks_is_the_kiosks_422(api: Api, lang: str) -> None:
    """The staff API refuses what the kiosk refuses, with the same code: the ticket's status page and notices would
    speak a language the branch does not have."""
    body = assert_problem(api.post("/tickets", {"service_id": "cs", "lang": lang, "request_id": f"s-{lang}"}), 422,
                          "lang_not_spoken")  # fmt: skip
    assert [e["key"] for e in body["errors"]] == ["lang"], body
    assert lang in body["detail"]
    assert [t for t in api.get("/tickets").json()["tickets"] if t.get("lang") == lang] == []


def test_a_staff_ticket_in_a_branch_language_issues_and_its_page_speaks_it(api: Api) -> None:
    r = api.post("/tickets", {"service_id": "cs", "lang": "en", "request_id": "s-en"})
    assert r.status_code == 201, r.text
    token = sign(link_key(load_secret(api.data_dir)), "jkt-sudirman", f"t:{r.json()['ticket_id']}")
    page = api.client.get(f"/t/{token}")
    assert page.status_code == 200
    assert '<html lang="en">' in page.text


def test_an_offline_ticket_in_an_unknown_language_is_kept_in_the_branchs_first(api: Api) -> None:
    """An offline ticket is a customer already holding paper: not refused, its language set to the branch's own."""
    lease = api.client.post("/kiosk/api/leases", json={"service_id": "cs"}, headers=api.h("admin"))
    assert lease.status_code == 201, lease.text
    body = lease.json()
    first = body["numbers"][0]
    item = {"temp_id": first["temp_id"], "lease_id": body["lease_id"], "seq_no": first["seq_no"],
            "issued_at": "2026-01-01T00:00:00Z", "lang": "zz"}  # fmt: skip
    r = api.client.post("/kiosk/api/offline", json={"tickets": [item]}, headers=api.h("admin"))
    (result,) = r.json()["results"]
    assert result["ok"], result
    ticket = api.get(f"/tickets/{result['ticket_id']}").json()
    assert ticket["lang"] == "id", ticket
    page = api.client.get(urlsplit(first["status_url"]).path)
    assert '<html lang="id">' in page.text
