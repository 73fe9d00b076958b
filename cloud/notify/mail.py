"""Sending one e-mail over SMTP (STARTTLS + auth, text + HTML, attachments): used by the e-mail notification provider
and by anything else at the hub that mails (scheduled reports). One function so that TLS and error handling live in
one place.

Settings (a mapping, as stored per tenant in the e-mail provider's settings):
`host`, `port` (587), `username`, `password` (secret), `sender` (the From address), `security` = `starttls`
(default: upgrade a plain connection, refuse to send if the server cannot) | `tls` (implicit TLS, port 465) |
`none` (only for a relay on localhost), `ca_file` (a PEM bundle to trust instead of the system's, for a private
relay), `timeout` seconds (30).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING, Any, Literal

import aiosmtplib

if TYPE_CHECKING:  # a type only: importing the providers package here would import its e-mail provider, and us
    from cloud.notify.providers.base import Attachment

Security = Literal["starttls", "tls", "none"]
SECRETS = ("password",)
MAX_PORT = 65535


class MailSettingsError(ValueError):
    """The e-mail settings are incomplete or malformed (a configuration problem, not a delivery one)."""


@dataclass(frozen=True)
class SmtpSettings:
    """Validated SMTP settings; `from_mapping` is the one place the stored dict is read."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    security: Security = "starttls"
    ca_file: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> SmtpSettings:
        """Read and check the stored settings; raises MailSettingsError naming the field (never its value)."""
        host = str(settings.get("host") or "").strip()
        sender = str(settings.get("sender") or "").strip()
        if not host:
            raise MailSettingsError("e-mail settings: host is required")
        if "@" not in sender:
            raise MailSettingsError("e-mail settings: sender must be an e-mail address")
        security = str(settings.get("security") or "starttls")
        if security not in ("starttls", "tls", "none"):
            raise MailSettingsError("e-mail settings: security must be starttls, tls or none")
        try:
            port = int(settings.get("port") or (465 if security == "tls" else 587))
            timeout = float(settings.get("timeout") or 30.0)
        except (TypeError, ValueError):
            raise MailSettingsError("e-mail settings: port and timeout must be numbers") from None
        if not 0 < port <= MAX_PORT or timeout <= 0:
            raise MailSettingsError("e-mail settings: port or timeout out of range")
        return cls(
            host=host,
            port=port,
            sender=sender,
            username=str(settings["username"]) if settings.get("username") else None,
            password=str(settings["password"]) if settings.get("password") else None,
            security=security,  # type: ignore[arg-type]  # checked above
            ca_file=str(settings["ca_file"]) if settings.get("ca_file") else None,
            timeout=timeout,
        )

    def tls_context(self) -> ssl.SSLContext:
        """The context that verifies the relay's certificate (system CAs, or `ca_file` for a private relay)."""
        return ssl.create_default_context(cafile=self.ca_file)


def build_message(
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    message_id: str | None = None,
) -> Message:
    """The MIME message: text, an HTML alternative when given, then attachments. A stable `message_id` (from the
    outbox key) lets a mail client collapse the rare duplicate of an at-least-once resend. Built with the `email.mime`
    classes: the modern header registry costs ~8 ms a message, a dispatcher's whole budget at 100 messages/s."""
    body: Message = MIMEText(text, "plain", "utf-8")
    if html:
        alternative = MIMEMultipart("alternative")
        alternative.attach(body)
        alternative.attach(MIMEText(html, "html", "utf-8"))
        body = alternative
    files = list(attachments)
    msg: Message = body
    if files:
        msg = MIMEMultipart("mixed")
        msg.attach(body)
        for item in files:
            maintype, _, subtype = item.content_type.partition("/")
            part = MIMEBase(maintype, subtype or "octet-stream")
            part.set_payload(item.data)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=item.filename)
            msg.attach(part)
    domain = sender.rpartition("@")[2] or None
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = str(Header(subject, "utf-8")) if not subject.isascii() else subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{message_id}@{domain}>" if message_id else make_msgid(domain=domain)
    return msg


def raw_message(
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    message_id: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """`build_message` without attachments, serialised directly: CRLF lines, UTF-8 parts in base64, the subject as
    RFC 2047 encoded words when it is not plain ASCII. The email package's generator spends ~10 ms a message folding
    headers: most of a dispatcher's CPU at 100 messages/s. Header values never carry a line break (no injection);
    addresses and other header values must be ASCII (ValueError: send those through `build_message`, SMTPUTF8)."""
    if not all(v.isascii() for v in (sender, to, *(value for _, value in headers))):
        raise ValueError("raw_message: non-ASCII address or header")
    domain = sender.rpartition("@")[2] or None
    lines = [f"From: {_one_line(sender)}", f"To: {_one_line(to)}", f"Subject: {encoded_subject(subject)}",
             f"Date: {formatdate(localtime=False)}",
             f"Message-ID: {f'<{message_id}@{domain}>' if message_id else make_msgid(domain=domain)}",
             *(f"{name}: {_one_line(value)}" for name, value in headers), "MIME-Version: 1.0"]  # fmt: skip
    if html is None:
        lines += _text_part("plain", text)
    else:
        boundary = f"=_qms_{secrets.token_hex(12)}"  # "=_" never occurs in base64 bodies
        lines += [f'Content-Type: multipart/alternative; boundary="{boundary}"', "", f"--{boundary}",
                  *_text_part("plain", text), f"--{boundary}", *_text_part("html", html),
                  f"--{boundary}--"]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _one_line(value: str) -> str:
    """A header value on one line, without the leading and trailing blanks a parser would drop anyway."""
    return " ".join(value.splitlines()).strip()


def _text_part(subtype: str, body: str) -> list[str]:
    data = base64.b64encode(body.encode("utf-8")).decode("ascii")
    return [f'Content-Type: text/{subtype}; charset="utf-8"', "Content-Transfer-Encoding: base64", "",
            *(data[i : i + 76] for i in range(0, len(data), 76))]  # fmt: skip


ENCODED_WORD_BYTES = 45  # 45 bytes of UTF-8 are 60 base64 characters: one encoded word stays within 75


def encoded_subject(subject: str) -> str:
    """The subject as one line of printable ASCII, or as RFC 2047 encoded words (whole characters each, folded)."""
    subject = _one_line(subject)
    if subject.isascii() and subject.isprintable() and len(subject) <= 900:  # noqa: PLR2004  # under 998
        return subject
    words, chunk = [], b""
    for char in subject:
        data = char.encode("utf-8")
        if len(chunk) + len(data) > ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


async def send_email(
    settings: Mapping[str, Any] | SmtpSettings,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    message_id: str | None = None,
) -> str:
    """Send one e-mail; returns the server's final reply. Raises MailSettingsError for bad settings and
    aiosmtplib's SMTPException subclasses (or TimeoutError/OSError) for delivery problems: the caller decides
    whether they are worth a retry (see `cloud.notify.providers.email.classify`)."""
    smtp = settings if isinstance(settings, SmtpSettings) else SmtpSettings.from_mapping(settings)
    msg = build_message(smtp.sender, to, subject, text, html, attachments, message_id)
    tls = smtp.tls_context() if smtp.security != "none" else None
    _errors, reply = await aiosmtplib.send(
        msg,
        hostname=smtp.host,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        use_tls=smtp.security == "tls",
        start_tls=smtp.security == "starttls",
        tls_context=tls,
        timeout=smtp.timeout,
    )
    return reply


class SmtpPool:
    """A few open, authenticated connections to one relay, reused across messages: a TLS handshake and AUTH per
    message would cap a dispatcher at a few dozen e-mails a second. A connection that fails is dropped (the caller
    classifies the error); one idle for a while is checked with NOOP first (the relay may have closed it) and
    replaced when it did. One used within `FRESH_SECONDS` is trusted as is: a NOOP per message cost a round trip."""

    FRESH_SECONDS = 5.0  # far below any relay's idle timeout (RFC 5321 §4.5.3.2: at least 5 minutes)

    def __init__(self, settings: SmtpSettings, size: int = 10) -> None:
        self.settings = settings
        self.idle: list[tuple[float, aiosmtplib.SMTP]] = []  # (last used, monotonic), most recent last
        self.slots = asyncio.Semaphore(size)

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = self.settings
        client = aiosmtplib.SMTP(
            hostname=smtp.host, port=smtp.port, use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            tls_context=smtp.tls_context() if smtp.security != "none" else None, timeout=smtp.timeout,
        )  # fmt: skip
        await client.connect()
        if smtp.username and smtp.password:
            await client.login(smtp.username, smtp.password)
        return client

    async def _checkout(self) -> aiosmtplib.SMTP:
        """The most recently used idle connection still open, or a new one."""
        while self.idle:
            used, candidate = self.idle.pop()
            if time.monotonic() - used < self.FRESH_SECONDS and candidate.is_connected:
                return candidate
            try:
                await candidate.noop()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                candidate.close()
            else:
                return candidate
        return await self._connect()

    async def send(self, msg: Message) -> None:
        """Send a MIME message (flattened by aiosmtplib) over a pooled connection; errors propagate."""
        async with self.slots:
            client = await self._checkout()
            try:
                await client.send_message(msg)
            except BaseException:
                client.close()
                raise
            self.idle.append((time.monotonic(), client))

    async def send_raw(self, sender: str, recipient: str, data: bytes) -> None:
        """Send a serialised message (`raw_message`) over a pooled connection; errors propagate."""
        async with self.slots:
            client = await self._checkout()
            try:
                await client.sendmail(sender, [recipient], data)
            except BaseException:
                client.close()
                raise
            self.idle.append((time.monotonic(), client))

    async def close(self) -> None:
        """QUIT every idle connection."""
        while self.idle:
            _used, client = self.idle.pop()
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit()
