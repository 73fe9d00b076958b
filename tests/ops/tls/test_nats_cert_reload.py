"""The NATS link presents the renewed LAN certificate (issue 16): the relay reads its client certificate and key each
time it connects, so after the hub renews the appliance's certificate (`edge.tls.renew` against a real hub with a
CA) the open connection carries on with the old one and the next connection — here after nats-server restarts —
presents the new one, as nats-server itself reports it (`/connz`, `tls_peer_certs`), and events keep flowing to
JetStream. nats-server requires client certificates from the hub's CA (`verify: true`)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from cloud.consumer import ensure_stream
from cloud.ops import ca as hub_ca
from edge import tls
from edge.engine import commands as c
from edge.replication import ServiceSource
from edge.service import QueueService
from sync.relay import STREAM, LinkSettings, Relay
from tests.images.conftest import running_hub
from tests.support.appliance import free_port, seed_demo
from tests.support.nats_server import NatsServer

pytestmark = pytest.mark.slow
TENANT, BRANCH = "acme", "jkt-sudirman"
CONNECTION_NAME = f"qms-edge {TENANT}.{BRANCH}"  # LinkSettings.connect names the relay's connection so


def issue_files(
    authority: hub_ca.Authority, folder: Path, name: str, days: int = hub_ca.CERT_DAYS
) -> tuple[Path, Path]:
    """A key made here and a certificate from the hub's CA for `name` and 127.0.0.1: (certificate, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, csr = tls.new_key_and_csr(name)
    (folder / f"{name}.key").write_bytes(key)
    (folder / f"{name}.crt").write_text(
        hub_ca.issue(authority, csr, dns_names=[name], addresses=["127.0.0.1"], days=days)
    )
    return folder / f"{name}.crt", folder / f"{name}.key"


def fingerprint(cert_file: Path) -> str:
    """SHA-256 of the first certificate in the file (DER), as nats-server reports a peer's `cert_sha256`."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def presented(monitor: int) -> list[str]:
    """The client certificate of each relay connection nats-server holds now (its monitoring endpoint)."""
    connz = httpx.get(f"http://127.0.0.1:{monitor}/connz?auth=true", timeout=5).json()
    return [conn["tls_peer_certs"][0]["cert_sha256"] for conn in connz.get("connections") or []
            if conn.get("name") == CONNECTION_NAME]  # fmt: skip


async def until(condition: Callable[[], object], what: str, seconds: float = 30.0) -> None:
    """Await a condition (checked in a thread: some probe the monitoring endpoint) or fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await asyncio.to_thread(condition):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def enrolled(tmp_path: Path) -> tuple[hub_ca.Authority, Path]:
    """The hub's CA and an appliance data dir with the certificate enrolment gave it, due for renewal (10 days)."""
    authority = hub_ca.init_ca(tmp_path / "ca")
    data = tmp_path / "qms"
    seed_demo(data, users=[])
    key, csr = tls.new_key_and_csr(f"qms-{BRANCH}.local")
    tls.keep_key(data, key)
    cert = hub_ca.issue(authority, csr, dns_names=[f"qms-{BRANCH}.local"], addresses=["127.0.0.1"], days=10)
    (data / tls.TLS_DIR / tls.CERT_FILE).write_text(cert)
    (data / tls.TLS_DIR / tls.CA_FILE).write_text(authority.cert_pem)
    return authority, data


def mutual_tls_nats(tmp_path: Path, authority: hub_ca.Authority, monitor: int) -> NatsServer:
    """nats-server with JetStream, a certificate from the hub's CA, client certificates from it required."""
    server_cert, server_key = issue_files(authority, tmp_path / "nats-tls", "nats.qms.test")
    ca_file = tmp_path / "ca" / hub_ca.CA_CERT
    return NatsServer(tmp_path / "nats", extra_args=("-m", str(monitor)), config=(
        f'tls {{\n  cert_file: "{server_cert}"\n  key_file: "{server_key}"\n'
        f'  ca_file: "{ca_file}"\n  verify: true\n  timeout: 5\n}}\n'
    )).start()  # fmt: skip


async def test_a_renewed_certificate_is_presented_on_the_next_nats_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority, data = enrolled(tmp_path)
    monkeypatch.setenv(hub_ca.CA_DIR_ENV, str(tmp_path / "ca"))  # the hub below renews with this CA
    folder = data / tls.TLS_DIR
    old = fingerprint(folder / tls.CERT_FILE)

    monitor = free_port()
    server = mutual_tls_nats(tmp_path, authority, monitor)
    url = f"tls://127.0.0.1:{server.port}"
    hub_cert, hub_key = issue_files(authority, tmp_path / "hub-tls", "qms-cloud")
    hub_tls = tls.client_context(folder / tls.CA_FILE, hub_cert, hub_key)

    async def stream_messages() -> int:
        nc = await nats.connect(url, tls=hub_tls, allow_reconnect=False)
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            return int((await js.stream_info(STREAM)).state.messages)
        finally:
            await nc.close()

    service = QueueService(data)
    service.start()
    link = LinkSettings(servers=(url,), tenant=TENANT, branch_id=BRANCH, tls_ca=str(folder / tls.CA_FILE),
                        tls_cert=str(folder / tls.CERT_FILE), tls_key=str(folder / tls.KEY_FILE),
                        connect_timeout=3)  # fmt: skip
    relay = Relay(link, ServiceSource(service), cursor=0, backoff_initial=0.1, backoff_max=0.5)
    try:
        assert await stream_messages() == 0
        relay.start()
        await asyncio.to_thread(lambda: service.execute(c.Enqueue(service_id="teller")))
        await until(lambda: relay.status.acked_seq == service.state.seq, "the first events at the hub")
        assert await asyncio.to_thread(presented, monitor) == [old]

        def renew_through_the_hub() -> bool:
            with running_hub(tmp_path) as (hub, _code, _store):
                seed = (tmp_path / "keys" / f"{TENANT}.{BRANCH}.nk").read_bytes().strip()
                return tls.renew(data, hub, TENANT, BRANCH, seed)

        assert await asyncio.to_thread(renew_through_the_hub) is True
        new = fingerprint(folder / tls.CERT_FILE)
        assert new != old
        assert await asyncio.to_thread(presented, monitor) == [old]  # the open connection keeps its handshake

        await asyncio.to_thread(server.stop)
        await until(lambda: relay.status.state == "disconnected", "the relay to lose the server")
        await asyncio.to_thread(server.start)  # same port and store: the relay's next connection
        await until(lambda: presented(monitor) == [new], "the relay to reconnect with the renewed certificate")
        await asyncio.to_thread(lambda: service.execute(c.Enqueue(service_id="cs")))
        await until(lambda: relay.status.acked_seq == service.state.seq, "events over the new connection")
        assert await stream_messages() == service.state.seq
    finally:
        await relay.stop()
        service.stop()
        server.stop()
