"""A tenant's analytics settings: whether drill-downs show (masked) contacts at all (the PII switch) and who receives
its anomaly alert e-mails. One row per tenant in `analytics_tenant_settings`; every change is a hub audit entry in
the change's own transaction (addresses are the tenant's own staff, so they are recorded as given)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cloud.admin.audit import record
from cloud.analytics.tables import tenant_settings
from cloud.store import transaction

MAX_RECIPIENTS = 20
MAX_ADDRESS = 254
# One address: no spaces, control characters, separators or angle brackets; something before and after one @, a dot
# in the domain.
ADDRESS = re.compile(r"[^@\s,;<>\"'\x00-\x1f\x7f]{1,64}@[^@\s,;<>\"'\x00-\x1f\x7f]+\.[^@\s,;<>\"'.\x00-\x1f\x7f]{2,}")
SEPARATORS = re.compile(r"[\s,;]+")


class SettingInvalid(ValueError):
    """A setting that cannot be stored (`field` names it)."""

    def __init__(self, field: str, message: str) -> None:
        """Keep the field's name beside the message."""
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


@dataclass(frozen=True)
class TenantAnalytics:
    """What the tenant chose (defaults: contacts shown masked, no alert recipients)."""

    show_contacts: bool = True
    alert_recipients: tuple[str, ...] = ()


def load(conn: Connection, tenant: str) -> TenantAnalytics:
    """The tenant's settings (the defaults when it never saved any)."""
    row = conn.execute(sa.select(tenant_settings).where(tenant_settings.c.tenant_id == tenant)).first()
    if row is None:
        return TenantAnalytics()
    return TenantAnalytics(bool(row.show_contacts), tuple(json.loads(row.alert_recipients or "[]")))


def check_addresses(addresses: Sequence[str], field: str = "alert_recipients") -> tuple[str, ...]:
    """Each entry one e-mail address; duplicates dropped (case-insensitive), order kept. SettingInvalid (naming
    `field`) for the first entry that is not one address, or for more than MAX_RECIPIENTS. Used by the forms, the JSON
    API and scheduled reports alike."""
    found: list[str] = []
    for address in addresses:
        if len(address) > MAX_ADDRESS or not ADDRESS.fullmatch(address):
            raise SettingInvalid(field, f"not an e-mail address: {str(address)[:80]!r}")
        if address.lower() not in {f.lower() for f in found}:
            found.append(address)
    if len(found) > MAX_RECIPIENTS:
        raise SettingInvalid(field, f"at most {MAX_RECIPIENTS} addresses")
    return tuple(found)


def parse_recipients(text: str) -> tuple[str, ...]:
    """Addresses separated by commas, semicolons, spaces or new lines (the form's text), checked by
    `check_addresses`."""
    return check_addresses([a for a in SEPARATORS.split(text.strip()) if a])


def _save(conn: Connection, tenant: str, values: dict[str, object], now: datetime) -> None:
    exists = conn.execute(sa.select(tenant_settings.c.tenant_id).where(tenant_settings.c.tenant_id == tenant)).first()
    if exists is None:
        defaults = {"show_contacts": True, "alert_recipients": None}
        conn.execute(sa.insert(tenant_settings).values(tenant_id=tenant, **{**defaults, **values},
                                                       updated_at=now.isoformat()))  # fmt: skip
    else:
        key = tenant_settings.c.tenant_id == tenant
        conn.execute(sa.update(tenant_settings).where(key).values(**values, updated_at=now.isoformat()))


def set_show_contacts(engine: Engine, tenant: str, show: bool, actor: str, source_ip: str | None = None) -> bool:
    """Turn the tenant's contacts in drill-downs on or off (audited); returns whether it changed."""
    now = datetime.now(UTC)
    with transaction(engine) as conn:
        before = load(conn, tenant)
        if before.show_contacts == show:
            return False
        _save(conn, tenant, {"show_contacts": show}, now)
        record(conn, actor=actor, action="analytics.pii", tenant=tenant, target="show_contacts", source_ip=source_ip,
               before={"show_contacts": before.show_contacts}, after={"show_contacts": show}, at=now)  # fmt: skip
    return True


def set_alert_recipients(engine: Engine, tenant: str, addresses: tuple[str, ...], actor: str,
                         source_ip: str | None = None) -> bool:  # fmt: skip
    """Replace the tenant's anomaly alert recipients (audited; at most MAX_RECIPIENTS, each checked again here);
    returns whether they changed."""
    check_addresses(addresses)
    now = datetime.now(UTC)
    with transaction(engine) as conn:
        before = load(conn, tenant)
        if before.alert_recipients == addresses:
            return False
        _save(conn, tenant, {"alert_recipients": json.dumps(list(addresses))}, now)
        record(conn, actor=actor, action="analytics.alert_recipients", tenant=tenant, target="alert_recipients",
               source_ip=source_ip, before=list(before.alert_recipients), after=list(addresses), at=now)  # fmt: skip
    return True
