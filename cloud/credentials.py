"""Per-branch NATS credentials: an NKey per branch, permissions limited to its own subject, inbox and config key,
and the nats-server `authorization` block that grants them (regenerated from the store on every change).

A branch may publish only `qms.evt.<tenant>.<branch>` (events) and `qms.hb.<tenant>.<branch>` (heartbeats) and read
only its own config key (a JetStream direct get of `$KV.qms_config.<tenant>.<branch>`); replies reach it on its own
inbox prefix. It cannot subscribe to events, read another branch's configuration, or call any other JetStream API.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nkeys
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.tables import branch_profiles
from cloud.store import branch_credentials, insert_ignore, register_branch, transaction, utcnow_iso
from sync.appointments import bookings_subject
from sync.config_watch import direct_get_subject
from sync.hq_alerts import alerts_subject
from sync.liveness import command_subject, heartbeat_subject
from sync.relay import config_key, event_subject, inbox_prefix
from sync.staff import staff_subject

HUB_KEY = "hub.nk"


@dataclass(frozen=True)
class Issued:
    """A branch's new credentials: where its seed file was written, and its public key."""

    seed_file: Path
    public_key: str


def new_seed() -> tuple[bytes, str]:
    """A fresh NKey user seed and its public key (`U…`)."""
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    pair = nkeys.from_seed(bytearray(seed))
    return seed, pair.public_key.decode()


def public_key_of(seed_file: Path) -> str:
    """The public key of a seed file."""
    return str(nkeys.from_seed(bytearray(seed_file.read_bytes().strip())).public_key.decode())


def write_seed(path: Path, seed: bytes) -> None:
    """Write a seed readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(seed + b"\n")


def branch_permissions(tenant: str, branch_id: str) -> dict[str, object]:
    """What one branch's user may do."""
    return {
        "publish": {
            "allow": [
                event_subject(tenant, branch_id),
                heartbeat_subject(tenant, branch_id),
                direct_get_subject(tenant, branch_id),
                staff_subject(tenant, branch_id),  # HQ's staff accounts for it
                bookings_subject(tenant, branch_id),  # today's and tomorrow's bookings (appointments)
                alerts_subject(tenant, branch_id),  # HQ's open anomaly alerts for its floor
            ]
        },
        # its reply inbox, and HQ's interventions (answered on the requester's inbox: allow_responses)
        "subscribe": {"allow": [f"{inbox_prefix(tenant, branch_id)}.>", command_subject(tenant, branch_id)]},
        "allow_responses": True,
    }


def hub_key(keys_dir: Path) -> str:
    """The hub's own NKey (created on first use); it may do everything."""
    path = keys_dir / HUB_KEY
    if not path.exists():
        seed, _public = new_seed()
        write_seed(path, seed)
    return public_key_of(path)


def issue(engine: Engine, keys_dir: Path, tenant: str, branch_id: str) -> Issued:
    """Create (or rotate) a branch's NKey: the seed goes to `<keys_dir>/<tenant>.<branch>.nk`, the public key
    to the store; the branch is registered (listed from now on, "never connected" until it sends)."""
    seed, public = new_seed()
    path = keys_dir / f"{config_key(tenant, branch_id)}.nk"
    write_seed(path, seed)
    with transaction(engine) as conn:
        conn.execute(
            sa.delete(branch_credentials).where(
                branch_credentials.c.tenant_id == tenant, branch_credentials.c.branch_id == branch_id
            )
        )
        conn.execute(
            insert_ignore(conn, branch_credentials).values(
                tenant_id=tenant, branch_id=branch_id, public_key=public, created_at=utcnow_iso()
            )
        )
        register_branch(conn, tenant, branch_id)
    return Issued(seed_file=path, public_key=public)


def authorization_block(source: Engine | Connection, keys_dir: Path) -> str:
    """The nats-server `authorization { users = [...] }` block for the hub and every branch HQ has not retired (a
    retired branch's appliance is refused; reactivating it restores its user)."""
    users: list[dict[str, object]] = [{"nkey": hub_key(keys_dir)}]
    with _connection(source) as conn:
        rows = conn.execute(
            sa.select(branch_credentials)
            .select_from(
                branch_credentials.outerjoin(
                    branch_profiles,
                    sa.and_(
                        branch_profiles.c.tenant_id == branch_credentials.c.tenant_id,
                        branch_profiles.c.branch_id == branch_credentials.c.branch_id,
                    ),
                )
            )
            .where(sa.or_(branch_profiles.c.status.is_(None), branch_profiles.c.status != "retired"))
            .order_by(branch_credentials.c.tenant_id, branch_credentials.c.branch_id)
        ).all()
    users += [{"nkey": r.public_key, "permissions": branch_permissions(r.tenant_id, r.branch_id)} for r in rows]
    body = ",\n    ".join(json.dumps(u) for u in users)  # JSON objects are valid nats-server config values
    header = "# generated by qms-cloud; include it from nats-server.conf and reload the server"
    return f"{header}\nauthorization {{\n  users = [\n    {body}\n  ]\n}}\n"


@contextmanager
def _connection(source: Engine | Connection) -> Iterator[Connection]:
    """The caller's connection (inside its transaction and locks), or a fresh one from an engine."""
    if isinstance(source, Connection):
        yield source
        return
    with source.connect() as conn:
        yield conn


def write_authorization(source: Engine | Connection, keys_dir: Path, out: Path) -> bool:
    """Regenerate the include file atomically; whether it changed."""
    return replace_file(out, authorization_block(source, keys_dir))


def replace_file(out: Path, text: str) -> bool:
    """Write `text` to `out` atomically (a temporary file in the same directory, then a rename, so nats-server never
    reads half a file); unchanged content is left alone. Whether the file changed."""
    try:
        if out.read_text() == text:
            return False
        mode = stat.S_IMODE(out.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644  # public keys only: nats-server (often another user) must read it
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True
