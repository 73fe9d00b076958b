"""The appointments staff side through the real hub app (SQLite and PostgreSQL): who may change which calendar entries
(a branch manager only its branches', 403 for tenant and region, 404 for another branch), scopes, kinds, days and
.ics files checked with the reason shown in id/en and nothing stored, the import's count, the bookings left on days
closed after they were made; the bookable-service and check-in policy forms refused whole (400, errors beside the
fields, nothing changed), services only from the branch's configuration (and no longer offered once removed there);
the staff page's service names, ticket numbers and derived capacity."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from cloud.appointments import booking
from cloud.appointments.tables import appt_calendar, appt_services, appt_settings
from cloud.hq_users import upsert_user
from cloud.store import branches, config_versions, create_store_engine, tickets, transaction, utcnow_iso
from cloud.web.app import CloudSettings, create_app
from edge.demo import demo_config
from sync.contract_config import config_hash
from tests.cloud.admin.conftest import PASSWORD, sign_in
from tests.cloud.appointments.support import NOW, SLOT, add_branch

TENANT, BRANCH, OTHER = "demo-bank", "jkt-sudirman", "bdg-dago"
Hub = tuple[TestClient[Any], Engine]


def _configure(engine: Engine, version: int, drop: tuple[str, ...] = ()) -> None:
    """HQ distributed version `version` of the demo configuration to jkt-sudirman (without the `drop` services)."""
    config = demo_config()
    config = msgspec.structs.replace(config, version=version,
                                     services=[s for s in config.services if s.id not in drop])  # fmt: skip
    with transaction(engine) as conn:
        conn.execute(config_versions.insert().values(tenant_id=TENANT, branch_id=BRANCH, version=version,
                                                     doc=msgspec.json.encode(config).decode(),
                                                     created_at=utcnow_iso()))  # fmt: skip


@pytest.fixture
def hub(store_url: str, tmp_path: Path) -> Iterator[Hub]:
    """demo-bank's jkt-sudirman (configured: teller, cs, loan; `cs` bookable) and bdg-dago, another tenant's x-01;
    ana the tenant's admin, rina the manager of jkt-sudirman only."""
    engine = create_store_engine(store_url)
    add_branch(engine, TENANT, BRANCH)
    add_branch(engine, TENANT, OTHER)
    add_branch(engine, "acme", "x-01")
    _configure(engine, 1)
    upsert_user(engine, "ana", PASSWORD, "tenant_admin", [TENANT])
    upsert_user(engine, "rina", PASSWORD, "branch_manager", [TENANT], [f"{TENANT}/{BRANCH}"])
    app = create_app(CloudSettings(db_url=store_url, keys_dir=tmp_path / "keys"))
    app.state["appt_clock"] = lambda: NOW
    app.state["appt_mail_seconds"] = 3600
    with TestClient(app=app) as client:
        yield client, engine
    engine.dispose()


def _entries(engine: Engine) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(appt_calendar.c.scope, appt_calendar.c.day, appt_calendar.c.kind)).all()
    return {(r.scope, r.day, r.kind) for r in rows}


def _post_entry(client: TestClient[Any], lang: str = "en", **fields: str) -> Any:
    form = {"day": "2027-03-04", "scope": "tenant", "kind": "blackout", "name": "Audit"} | fields
    return client.post(f"/appointments/{TENANT}/calendar?lang={lang}", data=form, follow_redirects=False)


def _import(client: TestClient[Any], ics: bytes, lang: str = "en", **fields: str) -> Any:
    return client.post(f"/appointments/{TENANT}/calendar?lang={lang}", data={"scope": "tenant"} | fields,
                       files={"ics": ("c.ics", ics, "text/calendar")}, follow_redirects=False)  # fmt: skip


def _ics(*events: str) -> bytes:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{i}\r\nDTSTAMP:20270101T000000Z\r\n{e}END:VEVENT\r\n"
                   for i, e in enumerate(events))  # fmt: skip
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n{body}END:VCALENDAR\r\n".encode()


def test_a_branch_manager_changes_only_its_own_branches_entries(hub: Hub) -> None:
    client, engine = hub
    sign_in(client, "ana")
    assert _post_entry(client, scope="tenant", day="2027-03-05", name="Rapat").status_code == 303
    assert _post_entry(client, scope=f"branch:{OTHER}", day="2027-03-08", name="Renovasi Dago").status_code == 303
    before = _entries(engine)
    sign_in(client, "rina")
    for scope in ("tenant", "region:jabar"):
        assert _post_entry(client, scope=scope).status_code == 403, scope
        assert _post_entry(client, scope=scope, day="2027-03-05", delete="1").status_code == 403, scope
        assert _import(client, _ics("DTSTART;VALUE=DATE:20270310\r\n"), scope=scope).status_code == 403, scope
    assert _post_entry(client, scope="region", region="jabar").status_code == 403
    for scope in (f"branch:{OTHER}", "branch:nonexist", "branch:x-01"):  # never confirms another branch exists
        assert _post_entry(client, scope=scope).status_code == 404, scope
    assert _post_entry(client, scope=f"branch:{OTHER}", day="2027-03-08", delete="1").status_code == 404
    assert _entries(engine) == before
    own = _post_entry(client, scope=f"branch:{BRANCH}", name="Audit cabang")
    assert own.status_code == 303
    assert _import(client, _ics("DTSTART;VALUE=DATE:20270310\r\n"), scope=f"branch:{BRANCH}").status_code == 303
    assert _entries(engine) == before | {(f"branch:{BRANCH}", "2027-03-04", "blackout"),
                                         (f"branch:{BRANCH}", "2027-03-10", "blackout")}  # fmt: skip
    page = client.get(f"/appointments/{TENANT}/calendar?lang=en").text
    assert "Renovasi Dago" not in page  # another branch's entry is not shown at all
    rows = dict(re.findall(r'<tr data-scope="([^"]+)" data-day="2027-03-0[45]">(.*?)</tr>', page, re.S))
    assert "Delete" not in rows["tenant"]  # shown, not editable
    assert "read-only" in rows["tenant"]
    assert "Delete" in rows[f"branch:{BRANCH}"]
    assert 'value="tenant"' not in page  # the scope picker offers only its branch
    assert 'value="branch:bdg-dago"' not in page
    assert client.post(f"/appointments/{TENANT}/calendar", data={"scope": f"branch:{BRANCH}", "day": "2027-03-04",
                       "delete": "1"}, follow_redirects=False).status_code == 303  # fmt: skip
    assert (f"branch:{BRANCH}", "2027-03-04", "blackout") not in _entries(engine)


@pytest.mark.parametrize(("fields", "field", "said"), [
    ({"scope": "branch:nonexist"}, "scope", "not one of this tenant"),
    ({"scope": "branch:x-01"}, "scope", "not one of this tenant"),  # another tenant's branch
    ({"scope": "region:jawa barat"}, "scope", "Not a valid scope"),
    ({"scope": "region", "region": "x" * 33}, "scope", "Not a valid scope"),
    ({"scope": "everything"}, "scope", "Not a valid scope"),
    ({"kind": "weird"}, "kind", "Unknown kind"),
    ({"day": "2027-13-01"}, "day", "That date is not valid"),
    ({"day": "tomorrow"}, "day", "That date is not valid"),
    ({"day": "1999-12-31"}, "day", "That date is not valid"),
    ({"name": "x" * 201}, "name", "Name up to 200 characters"),
])  # fmt: skip
def test_calendar_entries_are_checked_and_nothing_is_stored(hub: Hub, fields: dict[str, str], field: str,
                                                            said: str) -> None:  # fmt: skip
    client, engine = hub
    sign_in(client, "ana")
    refused = _post_entry(client, **fields)
    assert refused.status_code == 400
    assert f'id="error-{field}"' in refused.text
    assert said in refused.text
    assert _entries(engine) == set()
    assert "Belum tersimpan" in _post_entry(client, lang="id", **fields).text


def test_ics_refusals_say_why_and_an_import_says_how_many(hub: Hub) -> None:
    client, engine = hub
    sign_in(client, "ana")
    cases = [
        (b"not a calendar", "not an iCalendar (.ics) file"),
        (_ics("SUMMARY:x\r\n"), "has no start date"),
        (_ics("DTSTART;VALUE=DATE:20270101\r\nDTEND;VALUE=DATE:20280301\r\n"), "longer than a year"),
        (_ics("DTSTART;VALUE=DATE:18990101\r\n"), "outside 2000"),
        (
            _ics(
                *[
                    f"DTSTART;VALUE=DATE:{y}{m:02d}{d:02d}\r\n"
                    for y in (2027, 2028)
                    for m in range(1, 13)
                    for d in range(1, 29)
                ]
            ),
            "Too many days",
        ),
        (_ics(), "holds no event"),
        (b"BEGIN:VCALENDAR\r\n" + b"X" * 1_000_001, "too large"),
    ]
    for ics, said in cases:
        refused = _import(client, ics)
        assert refused.status_code == 400, said
        assert said in refused.text, said
        assert 'id="error-ics"' in refused.text
    weird = _import(client, _ics("DTSTART;VALUE=DATE:20270310\r\n"), kind="weird")
    assert weird.status_code == 400
    assert "Unknown kind" in weird.text
    assert _entries(engine) == set()
    done = _import(client, _ics("DTSTART;VALUE=DATE:20270310\r\nDTEND;VALUE=DATE:20270313\r\n"), kind="holiday")
    assert done.status_code == 303
    assert "imported=3" in done.headers["location"]
    assert "3 entries imported" in client.get(done.headers["location"]).text
    assert "3 entri diimpor" in client.get(done.headers["location"].replace("lang=en", "lang=id")).text
    assert {k for _, _, k in _entries(engine)} == {"holiday"}
    odd = client.get(f"/appointments/{TENANT}/calendar?lang=en&error=%3Cb%3Epwned%3C/b%3E").text
    assert "pwned" not in odd
    assert 'id="error"' not in odd
    for legacy in ("invalid", "scope"):  # the old raw codes no longer show
        assert 'id="error"' not in client.get(f"/appointments/{TENANT}/calendar?error={legacy}").text
    known = client.get(f"/appointments/{TENANT}/calendar?lang=id&error=err_scope").text
    assert "Cakupan tidak valid" in known


def test_bookings_on_a_day_closed_later_are_listed_with_a_link(hub: Hub) -> None:
    client, engine = hub
    with transaction(engine) as conn:
        branch = booking.load_branch(conn, TENANT, BRANCH)
        assert branch is not None
        for name in ("Siti", "Budi"):
            booking.book(conn, branch, "cs", SLOT, name=name, email=None, phone=None, lang="id", actor="public",
                         now=NOW)  # fmt: skip
    sign_in(client, "ana")
    assert 'id="closed-bookings"' not in client.get(f"/appointments/{TENANT}/calendar").text
    assert _post_entry(client, scope=f"branch:{BRANCH}", day="2027-03-03", name="Listrik padam").status_code == 303
    page = client.get(f"/appointments/{TENANT}/calendar?lang=en").text
    assert "2 bookings on closed days" in page
    assert f'href="/appointments?tenant={TENANT}&branch={BRANCH}&day=2027-03-03&lang=en"' in page
    assert "Listrik padam" in page
    assert "pemesanan pada hari tutup" in client.get(f"/appointments/{TENANT}/calendar?lang=id").text
    sign_in(client, "rina")  # a manager sees its own branch's
    assert "2 bookings on closed days" in client.get(f"/appointments/{TENANT}/calendar?lang=en").text
    _post_entry(client, scope=f"branch:{BRANCH}", day="2027-03-03", kind="open", name="")  # reopened
    assert 'id="closed-bookings"' not in client.get(f"/appointments/{TENANT}/calendar").text


SERVICE = {"service_id": "cs", "name": "Layanan nasabah", "slot_minutes": "20", "capacity": "", "counters": "3",
           "mean_service_minutes": "10", "quota_pct": "50", "priority": "1", "day": "2027-03-03"}  # fmt: skip


def _services(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(appt_services).order_by(appt_services.c.tenant_id,
                                                                   appt_services.c.branch_id,
                                                                   appt_services.c.service_id)))  # fmt: skip


def _settings(client: TestClient[Any], lang: str = "en", **form: str) -> Any:
    return client.post(f"/appointments/{TENANT}/{BRANCH}/settings?lang={lang}", data=form, follow_redirects=False)


@pytest.mark.parametrize(("changes", "field", "said"), [
    ({"slot_minutes": "-5"}, "slot_minutes", "Enter 5-240 minutes"),
    ({"slot_minutes": "241"}, "slot_minutes", "Enter 5-240 minutes"),
    ({"capacity": "abc"}, "capacity", "leave it empty to derive it"),
    ({"capacity": "0"}, "capacity", "leave it empty to derive it"),
    ({"counters": "x"}, "counters", "Enter 1-100 counters"),
    ({"counters": "0"}, "counters", "Enter 1-100 counters"),
    ({"quota_pct": "500"}, "quota_pct", "Enter 0-100 %"),
    ({"mean_service_minutes": "0"}, "mean_service_minutes", "Enter 1-240 minutes"),
    ({"priority": "10"}, "priority", "Enter 0-9"),
    ({"name": ""}, "name", "Enter the service's name"),
    ({"name": "n" * 121}, "name", "Enter the service's name"),
    ({"service_id": "ghost"}, "service_id", "Choose a service of the branch's configuration"),
    ({"service_id": "bad id!"}, "service_id", "Choose a service of the branch's configuration"),
])  # fmt: skip
def test_a_bad_service_form_changes_nothing(hub: Hub, changes: dict[str, str], field: str, said: str) -> None:
    client, engine = hub
    sign_in(client, "ana")
    before = _services(engine)
    refused = _settings(client, **(SERVICE | changes))
    assert refused.status_code == 400
    assert re.search(
        rf'<span class="error" id="error-service-{field}">[^<]*{re.escape(said)}', html.unescape(refused.text)
    )
    assert "Not saved: check the marked fields." in refused.text
    assert _services(engine) == before
    assert 'aria-invalid="true"' in refused.text
    assert "Belum tersimpan" in _settings(client, lang="id", **(SERVICE | changes)).text


@pytest.mark.parametrize(("changes", "field"), [
    ({"before": "-1"}, "before"), ({"after": "99999"}, "after"), ({"before": ""}, "before"),
    ({"late": "maybe"}, "late"), ({"region": "r" * 100}, "region"), ({"region": "jawa barat"}, "region"),
])  # fmt: skip
def test_a_bad_policy_form_changes_nothing(hub: Hub, changes: dict[str, str], field: str) -> None:
    client, engine = hub
    sign_in(client, "ana")
    policy = {"region": "jabar", "before": "20", "after": "10", "late": "refuse", "day": "2027-03-03"}
    assert _settings(client, **policy).status_code == 303
    with engine.connect() as conn:
        before = conn.execute(sa.select(appt_settings)).all()
    refused = _settings(client, **(policy | changes))
    assert refused.status_code == 400
    assert f'id="error-policy-{field}"' in refused.text
    with engine.connect() as conn:
        assert conn.execute(sa.select(appt_settings)).all() == before
    assert 'value="jabar"' in _settings(client, **(policy | {"before": "-1"})).text  # the form keeps what was typed


def test_bookable_services_come_from_the_branch_configuration(hub: Hub) -> None:
    client, engine = hub
    sign_in(client, "ana")
    page = client.get(f"/appointments?tenant={TENANT}&branch={BRANCH}&lang=en").text
    select = re.search(r'<select name="service_id" id="sf-service".*?</select>', page, re.S)
    assert select is not None
    assert re.findall(r'<option value="([^"]+)"', select.group(0)) == ["teller", "cs", "loan"]
    saved = _settings(client, **(SERVICE | {"service_id": "teller", "name": "Teller"}))
    assert saved.status_code == 303
    assert "saved=1" in saved.headers["location"]
    (teller,) = [s for s in _services(engine) if s.branch_id == BRANCH and s.service_id == "teller"]
    assert (teller.name, teller.slot_minutes, teller.capacity, teller.counters, teller.priority) == (
        "Teller",
        20,
        None,
        3,
        1,
    )
    with transaction(engine) as conn:  # a service saved before the check, or since removed from the configuration
        booking.save_service(conn, TENANT, BRANCH, "ghost", name="Ghost", slot_minutes=30, capacity=2)
    public = client.get(f"/book/{TENANT}/{BRANCH}?lang=en").text
    assert "Ghost" not in public
    assert "Teller" in public
    assert (
        client.get(f"/api/v1/appointments/{TENANT}/{BRANCH}/slots?service_id=ghost&day=2027-03-03").status_code == 404
    )
    assert "not in the branch&#39;s configuration" in client.get(f"/appointments?tenant={TENANT}&branch={BRANCH}"
                                                                 "&lang=en").text  # fmt: skip
    _configure(engine, 2, drop=("teller",))  # HQ removes the teller service
    public = client.get(f"/book/{TENANT}/{BRANCH}?lang=en").text
    assert "Teller" not in public
    assert "Customer service" in public
    assert _settings(client, **(SERVICE | {"service_id": "teller", "name": "Teller"})).status_code == 400


def test_the_staff_page_names_services_ticket_numbers_and_the_derived_capacity(hub: Hub) -> None:
    client, engine = hub
    with transaction(engine) as conn:
        booking.save_service(conn, TENANT, BRANCH, "teller", name="Teller", slot_minutes=30, counters=3,
                             mean_service_minutes=10, quota_pct=50)  # fmt: skip
        branch = booking.load_branch(conn, TENANT, BRANCH)
        assert branch is not None
        made = booking.book(conn, branch, "cs", SLOT, name="Siti", email=None, phone=None, lang="id",
                            actor="public", now=NOW)  # fmt: skip
        ticket_id = "0190b1f2-7c3a-7d4e-9f00-1234567890ab"
        booking.mark_checked_in(conn, TENANT, BRANCH, made.booking_id, ticket_id, NOW.isoformat())
        conn.execute(tickets.insert().values(tenant_id=TENANT, branch_id=BRANCH, ticket_id=ticket_id, service_id="cs",
                                             ticket_number="B012", business_date="2027-03-03", status="waiting",
                                             updated_at=datetime.now(UTC).isoformat()))  # fmt: skip
    sign_in(client, "ana")
    page = client.get(f"/appointments?tenant={TENANT}&branch={BRANCH}&day=2027-03-03&lang=en").text
    row = re.search(rf'<tr data-booking="{made.booking_id}".*?</tr>', page, re.S)
    assert row is not None
    assert "<td>Customer service</td>" in row.group(0)
    assert "Ticket B012" in row.group(0)
    assert ticket_id[-8:] not in re.sub(r'data-ticket="[^"]+"', "", row.group(0))
    assert "derived (4)" in page  # 3 counters x 30 min / 10 min x 50 %
    times = re.search(r'<select name="starts_at" id="sb-time">.*?</select>', page, re.S)
    assert times is not None
    assert ">Teller 09:30" in times.group(0)
    assert ">cs " not in times.group(0)


def test_a_configuration_the_branch_applies_changes_what_is_offered(hub: Hub) -> None:
    client, engine = hub

    def applied(version: int, drop: tuple[str, ...] = ()) -> None:  # the consumer's record of a config.applied
        config = msgspec.structs.replace(demo_config(), version=version,
                                         services=[s for s in demo_config().services if s.id not in drop])  # fmt: skip
        values = {"config_version": version, "config_hash": config_hash(config), "updated_at": utcnow_iso()}
        with transaction(engine) as conn:
            if version > 1:
                conn.execute(config_versions.insert().values(tenant_id=TENANT, branch_id=BRANCH, version=version,
                                                             doc=msgspec.json.encode(config).decode(),
                                                             created_at=utcnow_iso()))  # fmt: skip
            if conn.execute(branches.update().where(branches.c.branch_id == BRANCH).values(**values)).rowcount == 0:
                conn.execute(branches.insert().values(tenant_id=TENANT, branch_id=BRANCH, next_seq=1,
                                                      last_hash="0" * 64, events=0, duplicates=0, status="ok",
                                                      **values))  # fmt: skip

    applied(1)
    with transaction(engine) as conn:
        booking.save_service(conn, TENANT, BRANCH, "teller", name="Teller", slot_minutes=30, capacity=2)
    assert "Teller" in client.get(f"/book/{TENANT}/{BRANCH}?lang=en").text
    assert "Teller" in client.get(f"/book/{TENANT}/{BRANCH}?lang=en").text  # asked again: the same answer
    _configure(engine, 2)  # distributed, not applied yet: what the branch runs still counts
    applied(3, drop=("teller",))
    assert "Teller" not in client.get(f"/book/{TENANT}/{BRANCH}?lang=en").text
    applied(4)  # back again
    assert "Teller" in client.get(f"/book/{TENANT}/{BRANCH}?lang=en").text
