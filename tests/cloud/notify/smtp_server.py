"""A real SMTP server for the notify tests (aiosmtpd): STARTTLS required with a certificate from a test CA (trustme),
AUTH LOGIN/PLAIN with one account, every accepted message kept; `fail_with` makes it answer a reply code (451 for
"down for a while", 550 for a permanent refusal) to simulate a relay in trouble."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

USERNAME = "relay-user"
PASSWORD = "relay-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """One accepted message (parsed when a test first looks: parsing every message cost the benchmark's relay
    ~10 ms of CPU each, on the box the hub measures on)."""

    sender: str
    recipients: list[str]
    content: bytes
    at: float = field(default_factory=time.perf_counter)  # when the relay accepted it (for latency figures)

    @functools.cached_property
    def message(self) -> EmailMessage:
        """The message, parsed."""
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        """The plain-text body."""
        part = self.message.get_body(("plain",))
        return str(part.get_content()) if part is not None else ""


@dataclass
class _Handler:
    messages: list[Received] = field(default_factory=list)
    fail_with: str | None = None
    delay: float = 0.0  # seconds between receiving a message and answering (a slow relay)
    receiving: threading.Event = field(default_factory=threading.Event)
    journal: Any = None  # a text file: one line per accepted message (time, subject, Message-ID)
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # aiosmtpd's hook name
        del server, session
        if self.fail_with:
            return self.fail_with
        self.receiving.set()
        if self.delay:
            await asyncio.sleep(self.delay)  # like an MTA, the message is kept even if the client left meanwhile
        content = envelope.original_content or b""
        with self.changed:
            self.messages.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos), content))
            if self.journal is not None:  # a relay in its own process tells its parent what arrived, and when
                head = BytesHeaderParser(policy=policy.default).parsebytes(content)
                self.journal.write(f"{time.time()}\t{head['Subject']}\t{head['Message-ID']}\n")
                self.journal.flush()
            self.changed.notify_all()
        return "250 OK"


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    del server, session, envelope, mechanism
    ok = isinstance(data, LoginPassword) and data.login == USERNAME.encode() and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


class _Controller(Controller):
    def __init__(self, handler: _Handler, port: int, tls: ssl.SSLContext) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port)
        self.tls = tls

    def factory(self) -> SMTP:
        return SMTP(
            self.handler,
            hostname="smtp.test",
            tls_context=self.tls,
            require_starttls=True,
            auth_required=True,
            authenticator=_authenticate,
        )


class SmtpServer:
    """The server on a free port; `settings` are what a tenant would store for it."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.tls)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.port = free_port()
        self.handler = _Handler()
        self.controller: _Controller | None = None

    @property
    def messages(self) -> list[Received]:
        """Every accepted message, in order."""
        return self.handler.messages

    @property
    def settings(self) -> dict[str, Any]:
        """The e-mail provider settings for this server."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "sender": "antrean@bank.example",
            "username": USERNAME,
            "password": PASSWORD,
            "security": "starttls",
            "ca_file": str(self.ca_file),
            "timeout": 5,
        }

    def fail_with(self, reply: str | None) -> None:
        """Answer DATA with this reply (e.g. "451 4.3.0 try later") until set back to None."""
        self.handler.fail_with = reply

    def slow_down(self, seconds: float) -> threading.Event:
        """Hold every message this long before answering; the event is set when the next one arrives."""
        self.handler.delay = seconds
        self.handler.receiving.clear()
        return self.handler.receiving

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Block until at least `count` messages arrived."""
        with self.handler.changed:
            if not self.handler.changed.wait_for(lambda: len(self.handler.messages) >= count, timeout):
                raise AssertionError(f"expected {count} e-mails, got {len(self.handler.messages)}")
        return list(self.handler.messages)

    def start(self) -> SmtpServer:
        """Listen (again, on the same port after a stop)."""
        self.controller = _Controller(self.handler, self.port, self.tls)
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until `start`)."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def main(directory: str, port: str) -> None:
    """Run a relay in this process (a benchmark's provider apart from the hub's GIL) until killed; it writes its
    settings to `<directory>/settings.json` and one line per message to `<directory>/journal.tsv`."""
    import json
    import signal

    server = SmtpServer(Path(directory))
    server.port = int(port)
    server.handler.journal = (Path(directory) / "journal.tsv").open("a", encoding="utf-8")
    server.start()
    (Path(directory) / "settings.json").write_text(json.dumps(server.settings))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


if __name__ == "__main__":
    import sys

    main(sys.argv[1], sys.argv[2])
