"""E-mail over a real SMTP server with STARTTLS from a test CA: text + HTML + attachment, auth, and the provider's
classification of relay failures."""

from __future__ import annotations

import pytest

from cloud.notify.mail import MailSettingsError, send_email
from cloud.notify.providers import email as email_provider
from cloud.notify.providers.base import Attachment, OutgoingMessage
from tests.cloud.notify.smtp_server import SmtpServer


async def test_send_email_starttls_auth_text_html_attachment(smtp_server: SmtpServer) -> None:
    await send_email(
        smtp_server.settings,
        "nasabah@example.com",
        "Laporan harian",
        "Teks biasa",
        "<p>HTML</p>",
        [Attachment("tickets.csv", "text/csv", b"a,b\n1,2\n")],
    )
    (got,) = smtp_server.wait_for(1)
    assert got.recipients == ["nasabah@example.com"]
    assert got.message["Subject"] == "Laporan harian"
    body = got.message.get_body(("plain",))
    html = got.message.get_body(("html",))
    assert body is not None
    assert body.get_content().strip() == "Teks biasa"
    assert html is not None
    assert "<p>HTML</p>" in html.get_content()
    (attachment,) = list(got.message.iter_attachments())
    assert attachment.get_filename() == "tickets.csv"
    assert attachment.get_content() in (b"a,b\n1,2\n", "a,b\n1,2\n")


async def test_untrusted_certificate_is_refused(smtp_server: SmtpServer) -> None:
    settings = {**smtp_server.settings, "ca_file": None}
    provider = email_provider.build(settings)
    result = await provider.send(OutgoingMessage("k", "email", "a@example.com", "x", subject="s"))
    assert result.outcome == "retry"  # a certificate problem is a connection failure, never a plaintext fallback
    assert smtp_server.messages == []


async def test_provider_classifies_failures(smtp_server: SmtpServer) -> None:
    message = OutgoingMessage("t1/ticket.called/email", "email", "a@example.com", "Dipanggil", subject="A001")
    bad_auth = email_provider.build({**smtp_server.settings, "password": "wrong"})
    result = await bad_auth.send(message)
    assert (result.outcome, result.code) == ("permanent", "535")
    provider = email_provider.build(smtp_server.settings)
    smtp_server.fail_with("451 4.3.0 try later")
    assert (await provider.send(message)).outcome == "retry"
    smtp_server.fail_with("550 5.1.1 no such user")
    permanent = await provider.send(message)
    assert (permanent.outcome, permanent.code) == ("permanent", "550")
    smtp_server.fail_with(None)
    sent = await provider.send(message)
    assert sent.outcome == "sent"
    assert sent.provider_message_id
    smtp_server.stop()
    assert (await provider.send(message)).outcome == "retry"
    assert all("a@example.com" not in (r or "") for r in (result.reason, permanent.reason))


def test_settings_are_checked() -> None:
    with pytest.raises(MailSettingsError, match="host"):
        email_provider.build({"sender": "a@b.c"})
    with pytest.raises(MailSettingsError, match="sender"):
        email_provider.build({"host": "x", "sender": "nope"})
