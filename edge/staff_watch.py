"""The branch's side of central staff accounts (sync/staff.py): poll the branch's key in the `qms_staff` KV bucket
and make the document's accounts the appliance's users (hashes as sent; counters, role, active), audited.

It is the config watcher with another bucket (sync.config_watch.ConfigWatch). The usernames HQ manages are kept in
`<data>/staff.json`, so an account HQ drops is deactivated here while accounts created on the appliance stay."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from nats.aio.client import Client as NatsClient

from edge.audit import AuditEntry
from edge.audit import insert as insert_audit
from edge.service import QueueService
from edge.store.datadir import write_private
from sync.config_watch import ConfigEntry, ConfigWatch, fetch_last
from sync.relay import LinkSettings, config_key
from sync.staff import StaffDocument, staff_decoder, staff_subject

log = logging.getLogger("qms.staff")
STAFF_FILE = "staff.json"


async def fetch_staff(nc: NatsClient, tenant: str, branch_id: str) -> ConfigEntry | None:
    """The key's current value (None: HQ never pushed accounts for this branch)."""
    config_key(tenant, branch_id)  # both must be plain tokens (raises otherwise)
    return await fetch_last(nc, staff_subject(tenant, branch_id))


def apply_staff(conn: sqlite3.Connection, document: StaffDocument, previous: set[str]) -> set[str]:
    """Upsert the document's accounts, deactivate those HQ dropped; returns the usernames HQ now manages."""
    now = datetime.now(UTC)
    names = {a.username for a in document.accounts}
    for a in document.accounts:
        conn.execute(
            "INSERT INTO users (username, password_hash, role, counters, active, created_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role,"
            " counters = excluded.counters, active = excluded.active",
            (a.username, a.password_hash, a.role, json.dumps(a.counters), int(a.active), now.isoformat()),
        )
    dropped = sorted(previous - names)
    for username in dropped:
        conn.execute("UPDATE users SET active = 0 WHERE username = ? AND role != 'device'", (username,))
    insert_audit(
        conn,
        AuditEntry(
            actor="hq",
            action="staff_sync",
            role="hq",
            target=f"staff:v{document.version}",
            detail={"accounts": sorted(names), "deactivated": dropped},
        ),
        now,
    )
    return names


class StaffWatch(ConfigWatch):
    """Polls the branch's staff key and applies each newer document through the appliance's single writer."""

    def __init__(self, link: LinkSettings, service: QueueService, *, poll_seconds: float = 5.0) -> None:
        self.service = service
        self.path = Path(service.data_dir) / STAFF_FILE
        self.applied = asyncio.Event()  # set whenever a document was applied (tests wait on it)
        super().__init__(link, self._apply, poll_seconds=poll_seconds, subject=staff_subject, label="staff watch")

    def _managed(self) -> set[str]:
        try:
            return set(json.loads(self.path.read_text())["usernames"])
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    async def _apply(self, entry: ConfigEntry) -> None:
        try:
            document = staff_decoder.decode(entry.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("staff push %s ignored: %s", entry.revision, exc)
            return
        if (document.tenant_id, document.branch_id) != (self.link.tenant, self.link.branch_id):
            log.warning("staff push %s ignored: it is for another branch", entry.revision)
            return
        previous = self._managed()
        names = await asyncio.wrap_future(self.service.submit_store(lambda conn: apply_staff(conn, document, previous)))
        write_private(self.path, json.dumps({"version": document.version, "usernames": sorted(names)}).encode())
        log.info("staff accounts v%d from HQ applied (%d accounts)", document.version, len(names))
        self.applied.set()
