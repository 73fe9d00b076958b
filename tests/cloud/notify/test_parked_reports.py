"""Parked delivery reports in the store (`cloud.notify.reports`), on SQLite and PostgreSQL:

* a signed report for a message id no send of ours recorded is parked once (a provider retrying its callback parks
  nothing twice), is never applied to another tenant's or another provider's message with that id, and is swept after
  10 minutes (logged at info, without the id or any contact), after which nothing takes it;
* Hypothesis: whatever the order in which the send is recorded and the provider's reports arrive (each possibly
  twice), the message ends in the status of its latest report (`sent` < `delivered` | `failed` → `dead`), and nothing
  stays parked.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from cloud.notify import outbox, policy, reports
from cloud.notify.providers import twilio
from cloud.notify.providers.base import DeliveryUpdate, OutgoingMessage, SendResult
from cloud.notify.tables import outbox as outbox_table
from cloud.notify.tables import parked_reports
from cloud.notify.web import apply_reports
from cloud.store import create_store_engine
from cloud.web.app import CloudSettings, create_app
from tests.support.providers.twilio import TwilioStandIn

HUB = "http://hub.test"
PHONE = "+6281234567890"
NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
_tickets = itertools.count(1)


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    """A migrated hub store (SQLite or PostgreSQL)."""
    found = create_store_engine(store_url)
    yield found
    found.dispose()


def sending(engine: sa.Engine, tenant: str, provider: str) -> outbox.Job:
    """A claimed SMS row (`sending`, first attempt) of a ticket of its own, as `outbox.claim` leaves it; its job."""
    ticket = f"T{next(_tickets)}"
    stamp = NOW.isoformat()
    with engine.begin() as conn:
        inserted = conn.execute(
            outbox_table.insert().values(
                tenant_id=tenant, branch_id="jkt-sudirman", ticket_id=ticket, trigger="ticket.called", channel="sms",
                status="sending", lang="id", vars="{}", attempts=1, lease_until=(NOW + outbox.LEASE).isoformat(),
                provider=provider, created_at=stamp, updated_at=stamp,
            )
        ).inserted_primary_key  # fmt: skip
    assert inserted is not None
    row_id = int(inserted[0])
    message = OutgoingMessage(key=f"{tenant}/jkt-sudirman/{ticket}/ticket.called/sms", channel="sms", to=PHONE,
                              text="Nomor A001 dipanggil")  # fmt: skip
    return outbox.Job(row_id, 1, 1, tenant, "sms", provider, {}, "", message, 5, "none", "ticket.called")


def record_sent(engine: sa.Engine, job: outbox.Job, message_id: str, now: datetime = NOW) -> str:
    """Record the provider's acceptance of the job under `message_id`; the row's status afterwards."""
    outbox.record_many(engine, [(job, SendResult("sent", provider_message_id=message_id))], now)
    return status_of(engine, job)


def status_of(engine: sa.Engine, job: outbox.Job) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(outbox_table.c.status).where(outbox_table.c.id == job.outbox_id)).scalar())


def parked(engine: sa.Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
            sa.select(parked_reports.c.tenant_id, parked_reports.c.provider, parked_reports.c.provider_message_id,
                      parked_reports.c.status).order_by(parked_reports.c.provider_message_id))]  # fmt: skip


def twilio_callback(client: TestClient, stand_in: TwilioStandIn, sid: str, status: str) -> dict[str, int]:
    """Twilio's status callback for `sid`, signed over our webhook URL as Twilio signs it; the hub's answer."""
    url = f"{HUB}/api/v1/notify/webhooks/twilio/acme"
    params = {"AccountSid": stand_in.account_sid, "ApiVersion": "2010-04-01", "From": "+15005550006",
              "MessageSid": sid, "MessageStatus": status, "SmsSid": sid, "SmsStatus": status, "To": PHONE}  # fmt: skip
    headers = {"X-Twilio-Signature": stand_in.sign(url, params), "Content-Type": "application/x-www-form-urlencoded"}
    answer = client.post("/api/v1/notify/webhooks/twilio/acme", content=urlencode(params), headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, int] = answer.json()
    return found


def test_a_report_for_an_unknown_message_is_swept_and_never_applied_to_another(
    store_url: str, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in = TwilioStandIn()  # its credentials and signature only: nothing is sent here
    settings = {"account_sid": stand_in.account_sid, "auth_token": stand_in.auth_token,
                "from_number": "+15005550006", "webhook_url": f"{HUB}/api/v1/notify/webhooks/twilio/acme"}  # fmt: skip
    with engine.begin() as conn:
        policy.save_provider(conn, "acme", "sms", "twilio", settings, twilio.SECRETS)
    sid = "SM" + "5" * 32
    with TestClient(app=create_app(CloudSettings(db_url=store_url)), base_url=HUB) as client:
        assert twilio_callback(client, stand_in, sid, "delivered") == {"updates": 1, "applied": 0}
        assert twilio_callback(client, stand_in, sid, "delivered") == {"updates": 1, "applied": 0}  # a retry
        assert twilio_callback(client, stand_in, sid, "sent") == {"updates": 1, "applied": 0}  # not worth keeping
    assert parked(engine) == [("acme", "twilio", sid, "delivered")]

    # the same id from another tenant's Twilio or from acme's other provider is another message: not applied
    assert record_sent(engine, sending(engine, "other", "twilio"), sid) == "sent"
    assert record_sent(engine, sending(engine, "acme", "infobip"), sid) == "sent"
    assert parked(engine) == [("acme", "twilio", sid, "delivered")]

    caplog.set_level(logging.INFO, logger="qms.notify")
    received = datetime.now(UTC)  # the webhook stamped the report with the real clock
    assert reports.sweep(engine, received - timedelta(minutes=1) + timedelta(minutes=10)) == 0  # not 10 minutes yet
    assert reports.sweep(engine, received + timedelta(minutes=11)) == 1
    assert parked(engine) == []
    (line,) = [r.getMessage() for r in caplog.records if "delivery report" in r.getMessage()]
    assert line == ("notify: dropped 1 twilio delivery report(s) of tenant acme: no send of ours recorded their "
                    "message within 10 minutes")  # fmt: skip
    assert sid not in caplog.text
    assert PHONE not in caplog.text
    assert PHONE[1:] not in caplog.text
    # swept: a later send that happens to get that id is not touched by it
    assert record_sent(engine, sending(engine, "acme", "twilio"), sid) == "sent"


FINAL = {"sent": "sent", "delivered": "delivered", "failed": "dead"}


def test_any_order_of_the_record_and_the_reports_ends_in_the_latest_status(store_url: str, engine: sa.Engine) -> None:
    ids = itertools.count(1)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(last=st.sampled_from(["sent", "delivered", "failed"]), data=st.data())
    def check(last: str, data: st.DataObject) -> None:
        chain = ["sent"] if last == "sent" else ["sent", last]
        sent_twice = data.draw(st.lists(st.booleans(), min_size=len(chain), max_size=len(chain)), label="twice")
        events = ["record"] + [s for s, twice in zip(chain, sent_twice, strict=True) for _ in range(1 + twice)]
        order = data.draw(st.permutations(events), label="order")
        job = sending(engine, "acme", "twilio")
        sid = f"SM{next(ids):032d}"
        for event in order:
            if event == "record":
                record_sent(engine, job, sid)
            else:
                apply_reports(engine, "acme", "twilio", [DeliveryUpdate(sid, event)], NOW)  # type: ignore[arg-type]
        assert status_of(engine, job) == FINAL[last]
        assert [p for p in parked(engine) if p[2] == sid] == []

    check()
