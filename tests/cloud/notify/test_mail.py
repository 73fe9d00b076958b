"""E-mail over a real SMTP server with STARTTLS from a test CA: text + HTML + attachment, auth, and the provider's
classification of relay failures."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.notify.mail import MailSettingsError, raw_message, send_email
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


@settings(max_examples=200, deadline=None)
@given(subject=st.text(max_size=300), text=st.text(max_size=400), html=st.none() | st.text(max_size=200),
       request_id=st.text(st.characters(max_codepoint=127), max_size=40))  # fmt: skip
def test_raw_message_reads_back(subject: str, text: str, html: str | None, request_id: str) -> None:
    """Whatever a template renders, the directly serialised notice parses back to the same subject (line breaks as
    spaces, outer blanks dropped, never a header of its own), text and HTML; every line is ASCII within 998
    octets."""
    data = raw_message("antrean@bank.example", "budi@example.com", subject, text, html, "abc123",
                       [("X-Request-ID", request_id)])  # fmt: skip
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))  # RFC 5321 §4.5.3.1.6
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == " ".join(subject.splitlines()).strip()
    assert parsed["Message-ID"] == "<abc123@bank.example>"
    assert parsed["X-Request-ID"] == " ".join(request_id.splitlines()).strip()
    assert [
        k
        for k in parsed
        if k.lower()
        not in {
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "x-request-id",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
        }
    ] == []
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert plain.get_content() == text
    if html is not None:
        rich = parsed.get_body(("html",))
        assert rich is not None
        assert rich.get_content() == html


def test_raw_message_refuses_non_ascii_addresses() -> None:
    """An internationalised address needs SMTPUTF8: the provider sends it through the MIME path instead."""
    with pytest.raises(ValueError, match="non-ASCII"):
        raw_message("antrean@bank.example", "büdi@example.com", "s", "t")
