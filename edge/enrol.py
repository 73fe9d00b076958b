"""Pairing a new appliance with its hub: `qms-edge enrol --hub URL --code CODE` (or `--from-file` the enrolment file a
technician puts on the boot partition, read by the image's first-boot service).

The hub's `POST /api/v1/enrol` {code} spends the one-time code and answers with the branch's tenant, id, NATS
servers and NKey seed, and its newest configuration (cloud/admin/web.py). The appliance keeps the seed in its data
dir (0600), applies the configuration when it has none yet, stores any TLS files the hub sends under `<data>/tls/`
and the hub's public keys (backups are sealed to `backup-recipient.pem`, releases verified with `release.pub`),
and writes `<data>/cloud.env` — the link settings the systemd unit reads (`EnvironmentFile=`). Nothing is written
until the hub has answered, and `cloud.env` last: a half-done enrolment is retried, never half-applied.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from edge import tls as lan_tls
from edge.store.datadir import ensure_private, write_private

ENV_FILE = "cloud.env"
SEED_FILE = "nats.nk"
TLS_DIR = "tls"
BACKUP_RECIPIENT_FILE = "backup-recipient.pem"  # edge/backup_ship.py seals scheduled backups to it
RELEASE_KEY_FILE = "release.pub"  # `qms-edge update` verifies release bundles with it
TIMEOUT = 15.0
RETRY_SECONDS = 10.0


class EnrolmentFailed(Exception):
    """The hub refused the code, or answered something the appliance cannot use; the message says what to do."""


class HubUnreachable(Exception):
    """The network or the hub is down: worth retrying."""


@dataclass(frozen=True)
class Enrolment:
    """What the appliance kept from the hub's answer (never the seed itself)."""

    hub: str
    tenant: str
    branch_id: str
    nats_servers: list[str]
    config_version: int | None  # the configuration applied from the hub, None when it sent none or one existed
    files: list[Path]


def read_enrolment_file(path: Path) -> tuple[str, str]:
    """`{"hub": URL, "code": CODE}` from the boot partition."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        hub, code = str(doc["hub"]).strip(), str(doc["code"]).strip()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EnrolmentFailed(f'cannot read {path}: {exc} (expected {{"hub": URL, "code": CODE}})') from None
    if not hub or not code:
        raise EnrolmentFailed(f'{path} needs both "hub" and "code"')
    return hub, code


def request_credentials(
    hub: str, code: str, client: httpx.Client | None = None, *, csr: str | None = None
) -> dict[str, Any]:
    """Spend the code at the hub (with a CSR, for the LAN certificate the hub's CA signs: edge/tls.py); HubUnreachable
    on network trouble or a 5xx, EnrolmentFailed on a refusal."""
    url = f"{hub.rstrip('/')}/api/v1/enrol"
    owned = client is None
    client = client or httpx.Client(timeout=TIMEOUT)
    request: dict[str, Any] = {"code": code}
    if csr:
        request["csr"] = csr
        request["addresses"] = [a for a in [lan_tls.lan_address(hub)] if a]
    try:
        response = client.post(url, json=request)
    except httpx.HTTPError as exc:
        raise HubUnreachable(f"cannot reach the hub at {url}: {exc}") from None
    finally:
        if owned:
            client.close()
    if response.status_code >= 500:  # noqa: PLR2004 - server errors are the hub's, worth a retry
        raise HubUnreachable(f"the hub answered {response.status_code}")
    if response.status_code == 404:  # noqa: PLR2004 - the hub's one answer for unknown, used or expired
        raise EnrolmentFailed("the hub refused the code: unknown, already used or expired — ask HQ for a new one")
    if not response.is_success:
        raise EnrolmentFailed(f"the hub answered {response.status_code}: {response.text[:200]}")
    body = response.json()
    for key in ("tenant", "branch_id", "nats_seed"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise EnrolmentFailed(f"the hub's answer lacks {key!r}: is {hub} a QMS hub?")
    return dict(body)


def apply(data_dir: Path, hub: str, body: dict[str, Any], tls_key: bytes | None = None) -> Enrolment:
    """Keep what the hub sent: seed, TLS files (with our own key when the hub signed our CSR), configuration (when
    the branch has none), then `cloud.env`."""
    ensure_private(data_dir)
    written: list[Path] = []
    if tls_key is not None and isinstance(body.get("tls_cert"), str) and body["tls_cert"]:
        written.append(lan_tls.keep_key(data_dir, tls_key))
    seed = data_dir / SEED_FILE
    write_private(seed, body["nats_seed"].strip().encode() + b"\n")
    written.append(seed)
    tls = {"tls_cert": "appliance.crt", "tls_key": "appliance.key", "tls_ca": "hub-ca.crt"}
    for key, name in tls.items():
        if isinstance(body.get(key), str) and body[key]:
            (data_dir / TLS_DIR).mkdir(mode=0o700, exist_ok=True)
            write_private(data_dir / TLS_DIR / name, body[key].encode())
            written.append(data_dir / TLS_DIR / name)
    keys = {"backup_public_key": BACKUP_RECIPIENT_FILE, "release_public_key": RELEASE_KEY_FILE}
    for key, name in keys.items():  # public keys: the hub's backup key (seal to it), its release key (verify with it)
        if isinstance(body.get(key), str) and body[key].startswith("-----BEGIN PUBLIC KEY-----"):
            write_private(data_dir / name, body[key].encode())
            written.append(data_dir / name)
    version = _apply_config(data_dir, body.get("config"))
    servers = [str(s) for s in body.get("nats_servers") or []]
    lines = {
        "QMS_HUB_URL": hub.rstrip("/"),
        "QMS_NATS_URL": ",".join(servers),
        "QMS_TENANT": body["tenant"],
        "QMS_BRANCH": body["branch_id"],
        "QMS_NATS_NKEY": str(seed),
    }
    env = data_dir / ENV_FILE
    text = "# Written by `qms-edge enrol`; read by the qms-edge unit (EnvironmentFile=).\n"
    text += "".join(f"{key}={value}\n" for key, value in lines.items() if value)
    write_private(env, text.encode())
    written.append(env)
    return Enrolment(hub, body["tenant"], body["branch_id"], servers, version, written)


def _apply_config(data_dir: Path, raw: object) -> int | None:
    """Apply the hub's configuration as the branch's first one; an already configured branch keeps its own (the hub
    distributes newer versions over the link)."""
    if not isinstance(raw, dict):
        return None
    from edge.engine import commands as c
    from edge.service import QueueService
    from sync.contract_config import BranchConfig

    try:
        config = msgspec.convert(raw, BranchConfig)
    except msgspec.ValidationError as exc:
        raise EnrolmentFailed(f"the hub's configuration does not validate: {exc}") from None
    service = QueueService(data_dir)
    try:
        if service.state.config is not None:
            return None
        outcome = service.execute(c.ApplyConfig(actor="enrol", config=config, base_version=0, source="cloud"))
        return int(outcome.response["version"])
    finally:
        service.stop()


def enrol(
    data_dir: Path,
    hub: str,
    code: str,
    *,
    retry: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[str], None] | None = None,
) -> Enrolment:
    """Pair with the hub; with `retry`, wait out an unreachable network or hub (first boot before DHCP/DNS)."""
    key, csr = lan_tls.new_key_and_csr("qms-appliance")  # the key stays here; kept only if the hub signs it
    while True:
        try:
            body = request_credentials(hub, code, csr=csr)
        except HubUnreachable as exc:
            if not retry:
                raise EnrolmentFailed(f"{exc} (check the network and the hub address)") from None
            if on_retry:
                on_retry(f"{exc}; retrying in {RETRY_SECONDS:.0f} s")
            sleep(RETRY_SECONDS)
            continue
        return apply(data_dir, hub, body, tls_key=key)
